from datetime import date

import pytest
import sqlalchemy as sa

from canasta.adapters.tables import entitlements
from canasta.domain.errors import Conflict, CycleClosed
from canasta.domain.redemption import RedeemQuota
from canasta.service import programmes as programme_service
from canasta.service.cards import card_balance
from tests.helpers import build_world


def test_opening_a_cycle_grants_fixed_and_per_member_quotas(engine: sa.Engine) -> None:
    build_world(engine, households=4, vehicles=3)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(entitlements.c.beneficiary_kind, entitlements.c.quantity).order_by(
                entitlements.c.beneficiary_kind, entitlements.c.beneficiary_id
            )
        ).all()
    food = [q for kind, q in rows if kind == "household"]
    fuel = [q for kind, q in rows if kind == "vehicle"]
    assert food == [3500, 5000, 6500, 8000]  # 2 kg + 1.5 kg per member, 1 to 4 members
    assert fuel == [40_000] * 3


def test_one_open_cycle_per_programme(engine: sa.Engine) -> None:
    build_world(engine)
    with pytest.raises(Conflict, match="already has an open cycle"):
        programme_service.open_cycle(engine, "fuel")
    closed = programme_service.close_cycle(engine, "fuel")
    assert closed.status == "closed"
    with pytest.raises(Conflict, match="no open cycle"):
        programme_service.close_cycle(engine, "fuel")
    reopened = programme_service.open_cycle(engine, "fuel", date(2026, 12, 1))
    assert reopened.ends_on == date(2026, 12, 30)
    assert {s.status for s in programme_service.list_cycles(engine) if s.programme == "fuel"} == {
        "open",
        "closed",
    }


def test_a_closed_cycle_refuses_redemptions(engine: sa.Engine) -> None:
    from canasta.adapters.redemption_repo import SqlRedemptionStore

    world = build_world(engine)
    programme_service.close_cycle(engine, "fuel")
    card = next(iter(world.vehicle_cards.values()))
    (outcome,) = SqlRedemptionStore(engine).run_batch(
        [RedeemQuota(card, "fuel", 1000, "fs-1", "k")], lambda: "2026-11-05T00:00:00.000000Z"
    )
    assert isinstance(outcome, CycleClosed)
    assert card_balance(engine, card)[1] == []
