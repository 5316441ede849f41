"""The staff dashboard's figures on the real databases: coverage and uptake by region."""

from datetime import date

import pytest
import sqlalchemy as sa

from canasta.adapters.redemption_repo import SqlRedemptionStore
from canasta.domain.model import BeneficiaryKind, CycleStatus, Outlet, OutletKind, Programme, Vehicle
from canasta.domain.quantity import to_milli
from canasta.domain.redemption import Receipt, RedeemQuota
from canasta.service import cards as card_service
from canasta.service import outlets as outlet_service
from canasta.service import programmes as programme_service
from canasta.service import registry as registry_service
from canasta.service.dashboard import (
    CycleInfo,
    Dashboard,
    Figures,
    ProgrammeDashboard,
    RegionFigures,
    dashboard,
)
from tests.helpers import household

CLOCK = "2026-11-05T00:00:00.000000Z"


def _programmes(engine: sa.Engine) -> None:
    programme_service.create_programme(
        engine, Programme("fuel", "litre", BeneficiaryKind.VEHICLE, 30, quota_fixed=to_milli(40))
    )
    programme_service.create_programme(
        engine,
        Programme(
            "food",
            "kg",
            BeneficiaryKind.HOUSEHOLD,
            30,
            quota_fixed=to_milli(2),
            quota_per_member=to_milli("1.5"),
        ),
    )
    # Never run: listed with no cycle.
    programme_service.create_programme(
        engine, Programme("soap", "bar", BeneficiaryKind.HOUSEHOLD, 30, quota_fixed=to_milli(1))
    )


def _redeem(engine: sa.Engine, commands: list[RedeemQuota]) -> None:
    outcomes = SqlRedemptionStore(engine).run_batch(commands, lambda: CLOCK)
    assert all(isinstance(outcome, Receipt) for outcome in outcomes), outcomes


def _cards(engine: sa.Engine) -> dict[str, str]:
    """Issue every card: household ref or plate → card id."""
    return {card.holder: card.card_id for card in card_service.issue_missing_cards(engine)}


@pytest.fixture
def world(engine: sa.Engine) -> dict[str, str]:
    """Norte: H1 (1 member, vehicle AB0001), H2 (2 members). Sur: H3 (3 members, vehicle
    AB0002) and, registered after the cycles opened, H5 (2 members, vehicle AB0003). Este:
    H4 (1 member, no vehicle), also registered after. Food and fuel cycles from 1 November,
    some of each redeemed; soap never run."""
    registry_service.import_households(
        engine, [household("H1", 1, "Norte"), household("H2", 2, "Norte"), household("H3", 3, "Sur")]
    )
    registry_service.import_vehicles(engine, [Vehicle("AB0001", "car", "H1"), Vehicle("AB0002", "car", "H3")])
    _programmes(engine)
    programme_service.open_cycle(engine, "fuel", date(2026, 11, 1))
    programme_service.open_cycle(engine, "food", date(2026, 11, 1))
    registry_service.import_households(engine, [household("H4", 1, "Este"), household("H5", 2, "Sur")])
    registry_service.import_vehicles(engine, [Vehicle("AB0003", "van", "H5")])
    outlet_service.create_outlets(
        engine,
        [
            Outlet("fs-1", "Estación Uno", OutletKind.FUEL_STATION, "Norte"),
            Outlet("shop-1", "Almacén Uno", OutletKind.SHOP, "Norte"),
        ],
    )
    cards = _cards(engine)
    _redeem(
        engine,
        [
            RedeemQuota(cards["H1"], "food", 2_000, "shop-1", "a"),
            RedeemQuota(cards["H3"], "food", 1_500, "shop-1", "b"),
            RedeemQuota(cards["AB0001"], "fuel", 12_500, "fs-1", "c"),
        ],
    )
    return cards


def test_coverage_and_uptake_by_region(engine: sa.Engine, world: dict[str, str]) -> None:
    board = dashboard(engine, min_region=1)
    assert [p.programme for p in board.programmes] == ["food", "fuel", "soap"]
    food, fuel, soap = board.programmes

    (food_cycle,) = [c.cycle_id for c in programme_service.list_cycles(engine) if c.programme == "food"]
    assert food == ProgrammeDashboard(
        programme="food",
        unit="kg",
        per=BeneficiaryKind.HOUSEHOLD,
        cycle=CycleInfo(food_cycle, date(2026, 11, 1), date(2026, 11, 30), CycleStatus.OPEN),
        regions=(
            # Registered after the cycle opened: nobody entitled yet.
            RegionFigures(registered=1, entitled=0, granted=0, redeemed=0, region="Este"),
            # 2 kg + 1.5 kg per member: 3.5 kg and 5 kg.
            RegionFigures(registered=2, entitled=2, granted=8_500, redeemed=2_000, region="Norte"),
            RegionFigures(registered=2, entitled=1, granted=6_500, redeemed=1_500, region="Sur"),
        ),
        totals=Figures(registered=5, entitled=3, granted=15_000, redeemed=3_500),
    )
    este, norte, sur = food.regions
    assert (este.coverage, este.uptake) == (0.0, None)
    assert (norte.coverage, norte.uptake) == (1.0, 2_000 / 8_500)
    assert (sur.coverage, sur.uptake) == (0.5, 1_500 / 6_500)
    assert food.totals.coverage == 3 / 5 and food.totals.uptake == 3_500 / 15_000

    # Per vehicle: counted in the vehicle's household's region; Este has no vehicle at all.
    assert fuel.per is BeneficiaryKind.VEHICLE and fuel.unit == "litre"
    assert fuel.cycle is not None and fuel.cycle.status is CycleStatus.OPEN
    assert fuel.regions == (
        RegionFigures(registered=1, entitled=1, granted=40_000, redeemed=12_500, region="Norte"),
        RegionFigures(registered=2, entitled=1, granted=40_000, redeemed=0, region="Sur"),
    )
    assert fuel.totals == Figures(registered=3, entitled=2, granted=80_000, redeemed=12_500)
    assert (fuel.regions[1].coverage, fuel.regions[1].uptake) == (0.5, 0.0)

    # Never run: what is registered, nothing entitled.
    assert soap.cycle is None
    assert [(r.region, r.registered, r.entitled, r.granted) for r in soap.regions] == [
        ("Este", 1, 0, 0),
        ("Norte", 2, 0, 0),
        ("Sur", 2, 0, 0),
    ]
    assert soap.totals == Figures(5, 0, 0, 0)
    assert (soap.totals.coverage, soap.totals.uptake) == (0.0, None)


def test_only_aggregates_leave_it(engine: sa.Engine, world: dict[str, str]) -> None:
    shown = repr(dashboard(engine, min_region=1))
    for personal in ["H1", "H3", "AB0001", "Pérez", "Ana", "Calle", "Alameda", *world.values()]:
        assert personal not in shown


def test_the_latest_cycle_is_the_open_one_else_the_last_to_start(engine: sa.Engine) -> None:
    registry_service.import_households(engine, [household("H1", 1, "Norte"), household("H2", 2, "Sur")])
    _programmes(engine)
    programme_service.open_cycle(engine, "food", date(2026, 11, 1))
    cards = _cards(engine)
    outlet_service.create_outlets(engine, [Outlet("shop-1", "Almacén Uno", OutletKind.SHOP, "Norte")])
    _redeem(engine, [RedeemQuota(cards["H1"], "food", 3_500, "shop-1", "a")])
    programme_service.close_cycle(engine, "food")
    november = dashboard(engine, min_region=1).programmes[0]
    assert november.cycle is not None and november.cycle.status is CycleStatus.CLOSED
    assert november.totals == Figures(2, 2, 8_500, 3_500)

    # Two closed cycles: the one that started last, with its own figures only.
    programme_service.open_cycle(engine, "food", date(2026, 12, 1))
    programme_service.close_cycle(engine, "food")
    (december, *_) = dashboard(engine, min_region=1).programmes
    assert december.cycle is not None
    assert (december.cycle.starts_on, december.cycle.status) == (date(2026, 12, 1), CycleStatus.CLOSED)
    assert december.totals == Figures(2, 2, 8_500, 0)
    assert december.totals.uptake == 0.0

    # An open cycle is shown even though another started later.
    programme_service.open_cycle(engine, "food", date(2026, 10, 1))
    (october, *_) = dashboard(engine, min_region=1).programmes
    assert october.cycle is not None
    assert (october.cycle.starts_on, october.cycle.status) == (date(2026, 10, 1), CycleStatus.OPEN)
    assert october.cycle.ends_on == date(2026, 10, 30)


def test_an_empty_registry(engine: sa.Engine) -> None:
    assert dashboard(engine, min_region=1) == Dashboard(programmes=())
    _programmes(engine)
    board = dashboard(engine, min_region=1)
    assert [(p.programme, p.cycle, p.regions) for p in board.programmes] == [
        ("food", None, ()),
        ("fuel", None, ()),
        ("soap", None, ()),
    ]
    assert all(p.totals == Figures(0, 0, 0, 0) for p in board.programmes)
    assert all(p.totals.coverage is None and p.totals.uptake is None for p in board.programmes)


def test_small_regions_are_pooled_so_no_row_is_one_familys(engine: sa.Engine, world: dict[str, str]) -> None:
    """Every region here is too small to show alone, and together still too small: only the
    totals say anything. With a threshold of 2, Norte (2 registered, 2 entitled) stands
    alone; Sur (1 entitled) and Este (1 registered) pool into 4 registered with 1 entitled,
    still one family's figures, so they are left to the totals."""
    exact = next(p for p in dashboard(engine, min_region=1).programmes if p.programme == "food")
    food = next(p for p in dashboard(engine).programmes if p.programme == "food")
    assert food.regions == () and food.totals == exact.totals
    two = next(p for p in dashboard(engine, min_region=2).programmes if p.programme == "food")
    assert [r.region for r in two.regions] == ["Norte"] and two.totals == exact.totals
