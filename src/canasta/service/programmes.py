"""Programmes and their cycles. Opening a cycle grants every entitlement in one set-based
statement and records it in the ledger; closing stops redemptions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

import sqlalchemy as sa

from canasta.adapters import ledger_repo
from canasta.adapters.db import transaction
from canasta.adapters.tables import cycles, entitlements, households, persons, programmes, vehicles
from canasta.domain.errors import Conflict, NotFound
from canasta.domain.ledger import EntryKind
from canasta.domain.model import BeneficiaryKind, Cycle, CycleStatus, Programme
from canasta.domain.quantity import MAX_MILLI
from canasta.service.clock import utc_now_iso


@dataclass(frozen=True, slots=True)
class CycleSummary:
    programme: str
    cycle_id: int
    starts_on: date
    ends_on: date
    status: str
    entitlements: int
    total: int
    redeemed: int


def create_programme(engine: sa.Engine, programme: Programme) -> Programme:
    with transaction(engine) as conn:
        if conn.scalar(sa.select(programmes.c.id).where(programmes.c.name == programme.name)):
            raise Conflict(f"a programme called {programme.name!r} already exists")
        programme.id = conn.execute(
            programmes.insert().returning(programmes.c.id),
            {
                "name": programme.name,
                "unit": programme.unit,
                "per": programme.per.value,
                "cycle_days": programme.cycle_days,
                "quota_fixed": programme.quota_fixed,
                "quota_per_member": programme.quota_per_member,
                "created_at": utc_now_iso(),
            },
        ).scalar_one()
    return programme


def get_programme(conn: sa.Connection, name: str) -> Programme:
    row = conn.execute(sa.select(programmes).where(programmes.c.name == name)).one_or_none()
    if row is None:
        raise NotFound(f"there is no programme called {name!r}")
    return Programme(
        id=int(row.id),
        name=row.name,
        unit=row.unit,
        per=BeneficiaryKind(row.per),
        cycle_days=row.cycle_days,
        quota_fixed=row.quota_fixed,
        quota_per_member=row.quota_per_member,
    )


def list_programmes(engine: sa.Engine) -> list[Programme]:
    with transaction(engine, write=False) as conn:
        names = conn.scalars(sa.select(programmes.c.name).order_by(programmes.c.name)).all()
        return [get_programme(conn, name) for name in names]


def open_cycle(engine: sa.Engine, name: str, starts_on: date | None = None) -> CycleSummary:
    """Open the next cycle of ``name`` and grant every entitlement, all or nothing."""
    starts = starts_on or date.today()
    with transaction(engine) as conn:
        # Lock the ledger first: it orders this against every redemption batch.
        ledger_repo.lock_head(conn)
        programme = get_programme(conn, name)
        assert programme.id is not None
        if conn.scalar(
            sa.select(cycles.c.id).where(cycles.c.programme_id == programme.id, cycles.c.status == "open")
        ):
            raise Conflict(f"{name} already has an open cycle; close it first")
        cycle = Cycle(programme.id, starts, starts + timedelta(days=programme.cycle_days - 1))
        now = utc_now_iso()
        cycle_id = conn.execute(
            cycles.insert().returning(cycles.c.id),
            {
                "programme_id": programme.id,
                "starts_on": cycle.starts_on,
                "ends_on": cycle.ends_on,
                "status": CycleStatus.OPEN.value,
                "opened_at": now,
            },
        ).scalar_one()
        conn.execute(_grant(programme, int(cycle_id)))
        count, total = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(entitlements.c.quantity), 0)).where(
                entitlements.c.cycle_id == cycle_id
            )
        ).one()
        ledger_repo.append(
            conn,
            EntryKind.CYCLE_OPENED,
            [
                {
                    "programme": name,
                    "cycle": int(cycle_id),
                    "starts_on": cycle.starts_on.isoformat(),
                    "ends_on": cycle.ends_on.isoformat(),
                    "entitlements": int(count),
                    "total": int(total),
                }
            ],
            now,
        )
    return CycleSummary(
        name, int(cycle_id), cycle.starts_on, cycle.ends_on, "open", int(count), int(total), 0
    )


def _grant(programme: Programme, cycle_id: int) -> sa.Insert:
    columns = [
        "cycle_id",
        "programme_id",
        "beneficiary_kind",
        "beneficiary_id",
        "household_id",
        "quantity",
        "redeemed",
    ]
    assert programme.id is not None
    if programme.per is BeneficiaryKind.VEHICLE:
        select = sa.select(
            sa.literal(cycle_id),
            sa.literal(programme.id),
            sa.literal("vehicle"),
            vehicles.c.id,
            vehicles.c.household_id,
            sa.literal(min(programme.quota_fixed, MAX_MILLI)),
            sa.literal(0),
        ).where(sa.literal(programme.quota_fixed) > 0)
    else:
        members = (
            sa.select(persons.c.household_id, sa.func.count().label("n"))
            .group_by(persons.c.household_id)
            .subquery()
        )
        raw = programme.quota_fixed + programme.quota_per_member * sa.func.coalesce(members.c.n, 0)
        quota = sa.case((raw > MAX_MILLI, MAX_MILLI), else_=raw)
        select = (
            sa.select(
                sa.literal(cycle_id),
                sa.literal(programme.id),
                sa.literal("household"),
                households.c.id,
                households.c.id,
                quota,
                sa.literal(0),
            )
            .select_from(households)
            .outerjoin(members, members.c.household_id == households.c.id)
            .where(raw > 0)
        )
    return entitlements.insert().from_select(columns, select)


def close_cycle(engine: sa.Engine, name: str) -> CycleSummary:
    with transaction(engine) as conn:
        ledger_repo.lock_head(conn)
        programme = get_programme(conn, name)
        row = conn.execute(
            sa.select(cycles).where(cycles.c.programme_id == programme.id, cycles.c.status == "open")
        ).one_or_none()
        if row is None:
            raise Conflict(f"{name} has no open cycle to close")
        now = utc_now_iso()
        conn.execute(cycles.update().where(cycles.c.id == row.id).values(status="closed", closed_at=now))
        summary = _summary(conn, name, row)
        ledger_repo.append(
            conn,
            EntryKind.CYCLE_CLOSED,
            [
                {
                    "programme": name,
                    "cycle": int(row.id),
                    "total": summary.total,
                    "redeemed": summary.redeemed,
                }
            ],
            now,
        )
    return replace(summary, status="closed")


def _summary(conn: sa.Connection, name: str, row: sa.Row) -> CycleSummary:  # type: ignore[type-arg]
    count, total, redeemed = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(entitlements.c.quantity), 0),
            sa.func.coalesce(sa.func.sum(entitlements.c.redeemed), 0),
        ).where(entitlements.c.cycle_id == row.id)
    ).one()
    return CycleSummary(
        name,
        int(row.id),
        row.starts_on,
        row.ends_on,
        row.status,
        int(count),
        int(total),
        int(redeemed),
    )


def list_cycles(engine: sa.Engine) -> list[CycleSummary]:
    with transaction(engine, write=False) as conn:
        rows = conn.execute(
            sa.select(cycles, programmes.c.name)
            .join(programmes, programmes.c.id == cycles.c.programme_id)
            .order_by(programmes.c.name, cycles.c.id)
        ).all()
        return [_summary(conn, row.name, row) for row in rows]
