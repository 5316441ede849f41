"""The staff dashboard: coverage and uptake of each programme's latest cycle, by region.

Only aggregates leave this module: counts of households or vehicles and sums of quantities
per region, never a name, a person or a beneficiary's id. Every figure comes from a few
set-based statements (one ``GROUP BY`` over the entitlements of all the cycles shown), read
on one snapshot, so the page costs the same whatever the number of regions or programmes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from canasta.adapters.db import transaction
from canasta.adapters.tables import cycles, entitlements, households, programmes, vehicles
from canasta.domain.model import BeneficiaryKind, CycleStatus

#: Regions with fewer registered beneficiaries than this are shown pooled, never alone.
MIN_REGION = 10


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(frozen=True, slots=True)
class Figures:
    """Coverage and uptake of one programme's cycle, in one region or in all of them."""

    #: Households (or vehicles, for a programme per vehicle) in the registry.
    registered: int
    #: Those with an entitlement greater than zero in the cycle.
    entitled: int
    #: What the cycle granted them, in thousandths of the programme's unit.
    granted: int
    #: What of that has been redeemed, in thousandths of the programme's unit.
    redeemed: int

    @property
    def coverage(self) -> float | None:
        """``entitled / registered`` (0 to 1), or None when nothing is registered."""
        return _ratio(self.entitled, self.registered)

    @property
    def uptake(self) -> float | None:
        """``redeemed / granted`` (0 to 1), or None when nothing was granted."""
        return _ratio(self.redeemed, self.granted)


@dataclass(frozen=True, slots=True)
class RegionFigures(Figures):
    """The figures of one region (``households.region``; a vehicle counts in its household's)."""

    region: str


@dataclass(frozen=True, slots=True)
class CycleInfo:
    """The cycle a programme's figures are of."""

    id: int
    starts_on: date
    ends_on: date
    status: CycleStatus


@dataclass(frozen=True, slots=True)
class ProgrammeDashboard:
    """One programme: its latest cycle (the open one, else the one that started last; None
    when it has never run), its figures in every region with anything registered (sorted by
    name) and their totals."""

    programme: str
    unit: str
    per: BeneficiaryKind
    cycle: CycleInfo | None
    regions: tuple[RegionFigures, ...]
    totals: Figures


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Every programme, sorted by name."""

    programmes: tuple[ProgrammeDashboard, ...]


def dashboard(engine: sa.Engine, min_region: int = MIN_REGION) -> Dashboard:
    """Coverage and uptake of every programme's latest cycle, by region.

    A programme that has never run a cycle is listed with ``cycle=None``: its regions show
    what is registered and nothing entitled. Regions with nothing registered are left out;
    regions with fewer than ``min_region`` registered are pooled into one row. The totals
    are the sums over all regions."""
    with transaction(engine, write=False) as conn:
        if conn.dialect.name == "postgresql":
            # One snapshot for the few statements below (SQLite reads one in a transaction
            # anyway): a cycle run or an import committed meanwhile is seen whole or not at all.
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        chosen = conn.execute(_latest_cycles()).all()
        kinds = {BeneficiaryKind(row.per) for row in chosen}
        registered = {kind: _registered(conn, kind) for kind in kinds}
        cycle_ids = [int(row.cycle_id) for row in chosen if row.cycle_id is not None]
        granted = _granted(conn, cycle_ids) if cycle_ids else {}
    return Dashboard(
        tuple(_programme(row, registered[BeneficiaryKind(row.per)], granted, min_region) for row in chosen)
    )


def _latest_cycles() -> sa.Select[tuple[object, ...]]:
    """Every programme with its latest cycle's columns (NULL when it has none)."""
    ranked = sa.select(
        cycles.c.id,
        cycles.c.programme_id,
        cycles.c.starts_on,
        cycles.c.ends_on,
        cycles.c.status,
        sa.func.row_number()
        .over(
            partition_by=cycles.c.programme_id,
            order_by=(
                sa.case((cycles.c.status == CycleStatus.OPEN.value, 0), else_=1),
                cycles.c.starts_on.desc(),
                cycles.c.id.desc(),
            ),
        )
        .label("rank"),
    ).subquery()
    return (
        sa.select(
            programmes.c.name,
            programmes.c.unit,
            programmes.c.per,
            ranked.c.id.label("cycle_id"),
            ranked.c.starts_on,
            ranked.c.ends_on,
            ranked.c.status,
        )
        .outerjoin(ranked, sa.and_(ranked.c.programme_id == programmes.c.id, ranked.c.rank == 1))
        .order_by(programmes.c.name)
    )


def _registered(conn: sa.Connection, kind: BeneficiaryKind) -> dict[str, int]:
    """How many households (or vehicles) each region has."""
    if kind is BeneficiaryKind.HOUSEHOLD:
        query = sa.select(households.c.region, sa.func.count()).group_by(households.c.region)
    else:
        query = (
            sa.select(households.c.region, sa.func.count())
            .select_from(vehicles)
            .join(households, households.c.id == vehicles.c.household_id)
            .group_by(households.c.region)
        )
    return {region: int(count) for region, count in conn.execute(query)}


def _granted(conn: sa.Connection, cycle_ids: list[int]) -> dict[int, dict[str, tuple[int, int, int]]]:
    """For each cycle and region: beneficiaries entitled, quantity granted and redeemed.

    One pass over the entitlements of every cycle shown, grouped in the database."""
    query = (
        sa.select(
            entitlements.c.cycle_id,
            households.c.region,
            sa.func.count(),
            sa.func.sum(entitlements.c.quantity),
            sa.func.sum(entitlements.c.redeemed),
        )
        .select_from(entitlements)
        .join(households, households.c.id == entitlements.c.household_id)
        .where(entitlements.c.cycle_id.in_(cycle_ids), entitlements.c.quantity > 0)
        .group_by(entitlements.c.cycle_id, households.c.region)
    )
    result: dict[int, dict[str, tuple[int, int, int]]] = defaultdict(dict)
    for cycle_id, region, entitled, quantity, redeemed in conn.execute(query):
        # SUM of a BIGINT is NUMERIC on PostgreSQL: back to exact integers.
        result[int(cycle_id)][region] = (int(entitled), int(quantity), int(redeemed))
    return result


def _programme(
    row: sa.Row[tuple[object, ...]],
    registered: dict[str, int],
    granted: dict[int, dict[str, tuple[int, int, int]]],
    min_region: int,
) -> ProgrammeDashboard:
    cycle = None
    by_region: dict[str, tuple[int, int, int]] = {}
    if row.cycle_id is not None:
        cycle = CycleInfo(int(row.cycle_id), row.starts_on, row.ends_on, CycleStatus(row.status))
        by_region = granted.get(cycle.id, {})
    shown = [
        RegionFigures(count, *by_region.get(region, (0, 0, 0)), region=region)
        for region, count in sorted(registered.items())
        if count > 0
    ]
    totals = Figures(
        sum(r.registered for r in shown),
        sum(r.entitled for r in shown),
        sum(r.granted for r in shown),
        sum(r.redeemed for r in shown),
    )

    # A region of a few households, or with a few entitled, would show those households'
    # grants and redemptions: such regions are pooled (as reports pool small groups), and a
    # pool that would itself be small, or one region alone, is left to the totals. So no
    # figure on the dashboard is one family's.
    def small(r: RegionFigures) -> bool:
        return r.registered < min_region or 0 < r.entitled < min_region

    few = [r for r in shown if small(r)]
    regions = tuple(r for r in shown if not small(r))
    pooled = RegionFigures(
        sum(r.registered for r in few),
        sum(r.entitled for r in few),
        sum(r.granted for r in few),
        sum(r.redeemed for r in few),
        region=f"({len(few)})",
    )
    if len(few) >= 2 and not small(pooled):
        regions = (*regions, pooled)
    return ProgrammeDashboard(row.name, row.unit, BeneficiaryKind(row.per), cycle, regions, totals)
