"""Programmes and their cycles. Opening a cycle grants every entitlement in one set-based
statement and records it in the ledger; closing stops redemptions."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta

import sqlalchemy as sa

from canasta.adapters import ledger_repo
from canasta.adapters.db import transaction
from canasta.adapters.tables import cycles, entitlements, programmes, redemptions
from canasta.domain.errors import Conflict, InvalidInput, NotFound
from canasta.domain.ledger import EntryKind
from canasta.domain.model import BeneficiaryKind, Cycle, CycleStatus, Programme
from canasta.policy.compile import compile_grant
from canasta.policy.document import parse_policy
from canasta.service import rules
from canasta.service.authz import Permission, Staff, require
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
        # Every cycle is run under a published policy; the first is the quota given here.
        _publish_fixed_quota(conn, programme)
    return programme


def _publish_fixed_quota(conn: sa.Connection, programme: Programme) -> None:
    text = rules.fixed_quota_policy(programme)
    rules.publish_checked(
        conn, parse_policy(text, f"{programme.name} v1", rules.catalogue(conn), rules.owner_of(programme))
    )


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
    """Open the next cycle of ``name`` from today (or ``starts_on``) under its current
    published policy: ``run_cycle`` for a cycle that does not exist yet."""
    return run_cycle(engine, name, starts_on or date.today())


def parse_period(text: str) -> date:
    """A cycle's first day from ``YYYY-MM`` (the first of the month) or ``YYYY-MM-DD``."""
    raw = text.strip()
    try:
        if len(raw) == 7:
            return date.fromisoformat(raw + "-01")
        if len(raw) == 10:
            return date.fromisoformat(raw)
    except ValueError:
        pass
    raise InvalidInput(f"{text!r} is not a period: write YYYY-MM for a month or YYYY-MM-DD for a first day")


def run_cycle(engine: sa.Engine, name: str, starts_on: date) -> CycleSummary:
    """Compute every entitlement of ``name``'s cycle starting on ``starts_on`` from the
    current published policy, in one set-based statement and one transaction, each stamped
    with the policy and the facts it read.

    A cycle that does not exist is opened (only one may be open per programme). An open
    cycle with no redemption yet is run again, replacing its entitlements whole (after a new
    policy is published, say); a cycle with redemptions, or a closed one, is refused."""
    with transaction(engine) as conn:
        # Lock the ledger first: it orders this against every redemption batch.
        ledger_repo.lock_head(conn)
        programme = get_programme(conn, name)
        assert programme.id is not None
        try:
            policy_id, policy = rules.current_policy(conn, programme)
        except NotFound:
            # A programme created before policies existed: its fixed quota becomes version 1.
            _publish_fixed_quota(conn, programme)
            policy_id, policy = rules.current_policy(conn, programme)
        existing = conn.execute(
            sa.select(cycles).where(cycles.c.programme_id == programme.id, cycles.c.starts_on == starts_on)
        ).one_or_none()
        now = utc_now_iso()
        rerun = existing is not None
        if existing is not None:
            cycle_id = int(existing.id)
            ends_on = existing.ends_on
            if existing.status != CycleStatus.OPEN.value:
                raise Conflict(
                    f"the {name} cycle from {starts_on.isoformat()} is closed; "
                    "closed cycles are not run again"
                )
            used = conn.scalar(
                sa.select(sa.func.count()).select_from(redemptions).where(redemptions.c.cycle_id == cycle_id)
            )
            if used:
                raise Conflict(
                    f"the {name} cycle from {starts_on.isoformat()} already has {used} redemption(s); "
                    "re-running it would change what people were told they have, so it is refused"
                )
            conn.execute(entitlements.delete().where(entitlements.c.cycle_id == cycle_id))
            conn.execute(cycles.update().where(cycles.c.id == cycle_id).values(policy_id=policy_id))
        else:
            if conn.scalar(
                sa.select(cycles.c.id).where(cycles.c.programme_id == programme.id, cycles.c.status == "open")
            ):
                raise Conflict(f"{name} already has an open cycle; close it first")
            cycle = Cycle(programme.id, starts_on, starts_on + timedelta(days=programme.cycle_days - 1))
            ends_on = cycle.ends_on
            cycle_id = conn.execute(
                cycles.insert().returning(cycles.c.id),
                {
                    "programme_id": programme.id,
                    "starts_on": cycle.starts_on,
                    "ends_on": cycle.ends_on,
                    "status": CycleStatus.OPEN.value,
                    "opened_at": now,
                    "policy_id": policy_id,
                },
            ).scalar_one()
        if conn.dialect.name == "postgresql":
            # For this one statement: the sessions' forced custom plans (right for the
            # redemption path) would re-plan lookups per row, and JIT-compiling the rule's
            # expressions costs more than it saves.
            conn.exec_driver_sql("SET LOCAL plan_cache_mode = auto")
            conn.exec_driver_sql("SET LOCAL jit = off")
        conn.exec_driver_sql(
            compile_grant(policy, rules.dialect_of(conn), starts_on, int(cycle_id), programme.id, policy_id)
        )
        count, total = conn.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(entitlements.c.quantity), 0)).where(
                entitlements.c.cycle_id == cycle_id
            )
        ).one()
        body = {
            "programme": name,
            "cycle": int(cycle_id),
            "starts_on": starts_on.isoformat(),
            "ends_on": ends_on.isoformat(),
            "entitlements": int(count),
            "total": int(total),
            "policy": policy.sha256,
        }
        if rerun:
            body["rerun"] = True
        ledger_repo.append(conn, EntryKind.CYCLE_OPENED, [body], now)
    return CycleSummary(name, int(cycle_id), starts_on, ends_on, "open", int(count), int(total), 0)


def run_cycle_for(engine: sa.Engine, actor: Staff, name: str, starts_on: date) -> CycleSummary:
    """A programme officer runs a cycle from the staff pages."""
    require(actor, Permission.RUN_CYCLES)
    return run_cycle(engine, name, starts_on)


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


def list_cycles(engine: sa.Engine, latest: int | None = None) -> list[CycleSummary]:
    """Every cycle by programme, oldest first; with ``latest``, only the ``latest`` cycles
    that started last (newest first), their sums read in one grouped statement."""
    if latest is None:
        with transaction(engine, write=False) as conn:
            rows = conn.execute(
                sa.select(cycles, programmes.c.name)
                .join(programmes, programmes.c.id == cycles.c.programme_id)
                .order_by(programmes.c.name, cycles.c.id)
            ).all()
            return [_summary(conn, row.name, row) for row in rows]
    with transaction(engine, write=False) as conn:
        rows = conn.execute(
            sa.select(cycles, programmes.c.name)
            .join(programmes, programmes.c.id == cycles.c.programme_id)
            .order_by(cycles.c.starts_on.desc(), cycles.c.id.desc())
            .limit(latest)
        ).all()
        sums = {
            int(s.cycle_id): (int(s.n), int(s.total), int(s.redeemed))
            for s in conn.execute(
                sa.select(
                    entitlements.c.cycle_id,
                    sa.func.count().label("n"),
                    sa.func.coalesce(sa.func.sum(entitlements.c.quantity), 0).label("total"),
                    sa.func.coalesce(sa.func.sum(entitlements.c.redeemed), 0).label("redeemed"),
                )
                .where(entitlements.c.cycle_id.in_([int(r.id) for r in rows]))
                .group_by(entitlements.c.cycle_id)
            )
        }
    return [
        CycleSummary(r.name, int(r.id), r.starts_on, r.ends_on, r.status, *sums.get(int(r.id), (0, 0, 0)))
        for r in rows
    ]
