"""The redemption hot path's SQL: read a batch's state under lock, then write its plan.

A batch costs a handful of statements whatever its size: the ledger head is locked first
(it orders all writers, so batches never deadlock), then idempotency keys, cards,
programmes with their open cycles, and the entitlements concerned are read with set-based
queries, and the plan is written with three ``executemany`` calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa

from canasta.adapters import ledger_repo
from canasta.adapters.db import transaction
from canasta.adapters.tables import (
    cards,
    cycles,
    entitlements,
    ledger_entries,
    programmes,
    redemptions,
)
from canasta.domain.errors import RedemptionRefused
from canasta.domain.model import (
    Beneficiary,
    BeneficiaryKind,
    Card,
    CardStatus,
    Cycle,
    CycleStatus,
    Entitlement,
    Programme,
)
from canasta.domain.redemption import (
    BatchPlan,
    BatchState,
    Receipt,
    RedeemQuota,
    StoredRedemption,
    plan_batch,
)

_ADD = (
    entitlements.update()
    .where(entitlements.c.id == sa.bindparam("eid"))
    .values(redeemed=entitlements.c.redeemed + sa.bindparam("delta"))
)


class SqlRedemptionStore:
    """Runs one batch of redemptions as one transaction on SQLite or PostgreSQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def run_batch(
        self, commands: Sequence[RedeemQuota], recorded_at: str, new_id: Callable[[], str]
    ) -> list[Receipt | RedemptionRefused]:
        with transaction(self.engine) as conn:
            state = read_state(conn, commands)
            plan = plan_batch(list(commands), state, recorded_at, new_id)
            write_plan(conn, plan)
        return plan.outcomes


def read_state(conn: sa.Connection, commands: Sequence[RedeemQuota]) -> BatchState:
    head_seq, head_hash = ledger_repo.lock_head(conn)
    keys = {(c.outlet, c.idempotency_key) for c in commands}
    existing = _existing(conn, keys)
    card_ids = {c.card_id for c in commands}
    card_map = {
        row.id: Card(
            id=row.id,
            beneficiary=Beneficiary(BeneficiaryKind(row.beneficiary_kind), int(row.beneficiary_id)),
            status=CardStatus(row.status),
        )
        for row in conn.execute(
            sa.select(cards.c.id, cards.c.beneficiary_kind, cards.c.beneficiary_id, cards.c.status).where(
                cards.c.id.in_(card_ids)
            )
        )
    }
    programme_map: dict[str, Programme] = {}
    open_cycles: dict[int, Cycle] = {}
    rows = conn.execute(
        sa.select(programmes, cycles.c.id.label("cycle_id"), cycles.c.starts_on, cycles.c.ends_on)
        .select_from(programmes)
        .outerjoin(
            cycles,
            sa.and_(cycles.c.programme_id == programmes.c.id, cycles.c.status == "open"),
        )
        .where(programmes.c.name.in_({c.programme for c in commands}))
    )
    for row in rows:
        programme_map[row.name] = Programme(
            id=int(row.id),
            name=row.name,
            unit=row.unit,
            per=BeneficiaryKind(row.per),
            cycle_days=row.cycle_days,
            quota_fixed=row.quota_fixed,
            quota_per_member=row.quota_per_member,
        )
        if row.cycle_id is not None:
            open_cycles[int(row.id)] = Cycle(
                id=int(row.cycle_id),
                programme_id=int(row.id),
                starts_on=row.starts_on,
                ends_on=row.ends_on,
                status=CycleStatus.OPEN,
            )
    wanted: set[tuple[int, Beneficiary]] = set()
    for c in commands:
        card = card_map.get(c.card_id)
        programme = programme_map.get(c.programme)
        if card is None or programme is None or programme.id is None:
            continue
        cycle = open_cycles.get(programme.id)
        if cycle is not None and cycle.id is not None:
            wanted.add((cycle.id, card.beneficiary))
    entitlement_map: dict[tuple[int, Beneficiary], Entitlement] = {}
    if wanted:
        # Plain IN lists on the leading index columns (row-value IN lists are not planned as
        # index look-ups on every database); rows of other kinds or cycles are dropped below.
        # Rows are locked in id order, so two writers can never lock them crosswise.
        query = (
            sa.select(entitlements)
            .where(
                entitlements.c.beneficiary_id.in_(sorted({b.id for _, b in wanted})),
                entitlements.c.cycle_id.in_(sorted({cycle_id for cycle_id, _ in wanted})),
            )
            .order_by(entitlements.c.id)
            .with_for_update()
        )
        for row in conn.execute(query):
            who = Beneficiary(BeneficiaryKind(row.beneficiary_kind), int(row.beneficiary_id))
            if (int(row.cycle_id), who) not in wanted:
                continue
            entitlement_map[(int(row.cycle_id), who)] = Entitlement(
                id=int(row.id),
                cycle_id=int(row.cycle_id),
                programme_id=int(row.programme_id),
                beneficiary=who,
                quantity=int(row.quantity),
                redeemed=int(row.redeemed),
            )
    return BatchState(
        existing=existing,
        cards=card_map,
        programmes=programme_map,
        open_cycles=open_cycles,
        entitlements=entitlement_map,
        head_seq=head_seq,
        head_hash=head_hash,
    )


def _existing(conn: sa.Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], StoredRedemption]:
    query = (
        sa.select(
            redemptions,
            programmes.c.name.label("programme"),
            programmes.c.unit,
            ledger_entries.c.entry_hash,
        )
        .join(programmes, programmes.c.id == redemptions.c.programme_id)
        .join(ledger_entries, ledger_entries.c.seq == redemptions.c.ledger_seq)
        .where(redemptions.c.idempotency_key.in_(sorted({key for _, key in keys})))
    )
    found = {}
    for row in conn.execute(query):
        if (row.outlet_code, row.idempotency_key) not in keys:
            continue
        receipt = Receipt(
            redemption_id=row.id,
            card_id=row.card_id,
            programme=row.programme,
            unit=row.unit,
            quantity=int(row.quantity),
            remaining=int(row.balance_after),
            outlet=row.outlet_code,
            recorded_at=row.recorded_at,
            ledger_seq=int(row.ledger_seq),
            entry_hash=row.entry_hash,
        )
        found[(row.outlet_code, row.idempotency_key)] = StoredRedemption(receipt, row.fingerprint)
    return found


def write_plan(conn: sa.Connection, plan: BatchPlan) -> None:
    if not plan.redemptions:
        return
    conn.execute(_ADD, [{"eid": eid, "delta": delta} for eid, delta in plan.deltas.items()])
    conn.execute(
        redemptions.insert(),
        [
            {
                "id": r.id,
                "card_id": r.card_id,
                "programme_id": r.programme_id,
                "cycle_id": r.cycle_id,
                "outlet_code": r.outlet,
                "quantity": r.quantity,
                "balance_after": r.balance_after,
                "idempotency_key": r.idempotency_key,
                "fingerprint": r.fingerprint,
                "recorded_at": r.recorded_at,
                "ledger_seq": r.ledger_seq,
            }
            for r in plan.redemptions
        ],
    )
    ledger_repo.write_entries(conn, plan.entries)
