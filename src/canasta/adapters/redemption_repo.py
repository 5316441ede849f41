"""The redemption hot path's SQL: read a batch's state under lock, then write its plan.

A batch costs the same nine statements whatever its size, in three rounds: lock the ledger
head (it orders every writer, so batches never deadlock) and read the idempotency keys
already used, the cards and the programmes with their open cycles; read the entitlements
concerned (locked); write balances, redemptions and ledger entries and move the head. On
PostgreSQL each round is one round trip (pipeline mode).

The statements are plain SQL run on the driver connection: on this path SQLAlchemy's
per-row work cost more than the database's. The text is the same on SQLite and PostgreSQL
but for the placeholder style, ``FOR UPDATE`` (SQLite's write transaction already holds the
only write lock) and how a list is passed as one parameter (``= ANY(%s)`` with an array on
PostgreSQL, ``IN (SELECT value FROM json_each(?))`` with a JSON array on SQLite), so every
statement keeps one text whatever the batch size and its plan is reused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import partial
from typing import Any

import psycopg
import sqlalchemy as sa

from canasta.adapters.db import transaction
from canasta.adapters.ledger_repo import encode_body, log_signer
from canasta.domain.card_token import expiry_for
from canasta.domain.errors import CanastaError, LedgerDamaged
from canasta.domain.merkle import Frontier
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
from canasta.domain.signed_note import Signer
from canasta.domain.transparency import Sealed, note_hash, seal

_KINDS = {kind.value: kind for kind in BeneficiaryKind}
_STATUSES = {status.value: status for status in CardStatus}


@dataclass(frozen=True, slots=True)
class _Sql:
    """The batch's statements in one database's dialect."""

    lock_head: str
    existing: str
    cards: str
    programmes: str
    entitlements: str
    add_redeemed: str
    insert_redemption: str
    insert_entry: str
    move_head: str
    insert_checkpoint: str
    postgres: bool

    @classmethod
    def for_dialect(cls, name: str) -> _Sql:
        postgres = name == "postgresql"
        lock = " FOR UPDATE" if postgres else ""

        def one_of(column: str) -> str:
            return f"{column} = ANY(?)" if postgres else f"{column} IN (SELECT value FROM json_each(?))"

        def rows(types: str) -> str:
            """Many rows in one statement: column arrays on PostgreSQL (one round trip, no
            per-row parsing), one row per ``executemany`` step on SQLite."""
            if postgres:
                return "SELECT * FROM unnest(" + ", ".join(f"?::{t}[]" for t in types.split()) + ")"
            return "VALUES (" + ", ".join("?" for _ in types.split()) + ")"

        def text(sql: str) -> str:
            return sql.replace("?", "%b") if postgres else sql

        return cls(
            lock_head=text(
                f"SELECT seq, entry_hash, log_frontier, checkpoint_hash FROM ledger_head WHERE id = 1{lock}"
            ),
            existing=text(
                "SELECT r.outlet_code, r.key_hash, r.ledger_seq, r.card_id, r.quantity, "
                "r.balance_after, r.recorded_at, r.fingerprint, p.name, p.unit, "
                "l.entry_hash FROM redemptions r "
                "JOIN programmes p ON p.id = r.programme_id "
                "JOIN ledger_entries l ON l.seq = r.ledger_seq "
                f"WHERE {one_of('r.key_hash')}"
            ),
            cards=text(
                "SELECT id, beneficiary_kind, beneficiary_id, status, issued_at FROM cards "
                f"WHERE {one_of('id')}"
            ),
            programmes=text(
                "SELECT p.id, p.name, p.unit, p.per, p.cycle_days, p.quota_fixed, "
                "p.quota_per_member, c.id, c.starts_on, c.ends_on FROM programmes p "
                "LEFT JOIN cycles c ON c.programme_id = p.id AND c.status = 'open'"
            ),
            entitlements=text(
                "SELECT id, cycle_id, programme_id, beneficiary_kind, beneficiary_id, quantity, "
                f"redeemed FROM entitlements WHERE {one_of('beneficiary_id')} "
                f"AND {one_of('cycle_id')} ORDER BY id{lock}"
            ),
            add_redeemed=text(
                "UPDATE entitlements AS e SET redeemed = e.redeemed + d.delta "
                "FROM unnest(?::bigint[], ?::bigint[]) AS d(delta, id) WHERE e.id = d.id"
                if postgres
                else "UPDATE entitlements SET redeemed = redeemed + ? WHERE id = ?"
            ),
            insert_redemption=text(
                "INSERT INTO redemptions (ledger_seq, card_id, programme_id, cycle_id, outlet_code, "
                "quantity, balance_after, key_hash, fingerprint, recorded_at) "
                + rows("bigint text bigint bigint text bigint bigint text text text")
            ),
            insert_entry=text(
                "INSERT INTO ledger_entries "
                "(seq, kind, recorded_at, body, prev_hash, entry_hash, salt, commitment) "
                + rows("bigint text text text text text bytea bytea")
            ),
            move_head=text(
                "UPDATE ledger_head SET seq = ?, entry_hash = ?, log_frontier = ?, "
                "checkpoint_hash = COALESCE(?, checkpoint_hash) WHERE id = 1"
            ),
            insert_checkpoint=text(
                "INSERT INTO log_checkpoints (size, root, signed_at, note) VALUES (?, ?, ?, ?)"
            ),
            postgres=postgres,
        )

    def values(self, items: Iterable[Any]) -> Any:
        """A list as one parameter: an array for PostgreSQL, JSON text for SQLite."""
        return list(items) if self.postgres else json.dumps(list(items))

    def many(self, rows: list[tuple[Any, ...]]) -> Any:
        """Parameters for a many-row statement: column arrays, or the rows themselves."""
        return tuple(list(column) for column in zip(*rows, strict=True)) if self.postgres else rows


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a batch; ``rows`` says whether its result rows are wanted back."""

    sql: str
    params: Any = None
    rows: bool = False


Rows = list[tuple[Any, ...]]
#: Statements that do not depend on each other's results, sent together (one round trip on
#: PostgreSQL, in pipeline mode).
Round = tuple[Statement, ...]
Outcomes = list[Receipt | CanastaError]
BatchSteps = Generator[Round, list[Rows | None], tuple[Outcomes, Sealed | None]]


def batch_steps(
    sql: _Sql, commands: Sequence[RedeemQuota], clock: Callable[[], str], signer: Signer | None = None
) -> BatchSteps:
    """The whole batch as a conversation with the database, free of I/O: it yields rounds
    of statements and is sent back their rows, so deciding stays apart from talking.

    Three rounds: lock the head and read keys, cards and programmes; read (and lock) the
    entitlements concerned; write balances, redemptions, entries and the head."""
    state, frontier, last_checkpoint = yield from _read_state(sql, commands)
    # The time is read under the ledger lock, so entry times never go backwards, even with
    # several server processes.
    now = clock()
    plan = plan_batch(list(commands), state, now)
    if not plan.redemptions:
        return plan.outcomes, None
    sealed = seal(plan.entries, frontier, signer, now, last_checkpoint, encodings=plan.encodings)
    yield _write_plan(sql, plan, sealed, now)
    return plan.outcomes, sealed


def with_log_receipts(outcomes: Outcomes, sealed: Sealed | None) -> Outcomes:
    """Each new redemption's receipt with its inclusion proof (computed after the commit,
    outside the ledger lock, from what the batch already holds)."""
    if sealed is None or sealed.note is None:
        return outcomes
    first = sealed.entries[0].seq
    logs = sealed.receipts()
    return [
        replace(o, log=logs[o.ledger_seq - first]) if isinstance(o, Receipt) and not o.replayed else o
        for o in outcomes
    ]


def _read_state(
    sql: _Sql, commands: Sequence[RedeemQuota]
) -> Generator[Round, list[Rows | None], tuple[BatchState, Frontier, str]]:
    head, found_keys, found_cards, found_programmes = yield (
        Statement(sql.lock_head, rows=True),  # first: every read below is under the lock
        Statement(sql.existing, (sql.values({c.key_hash() for c in commands}),), rows=True),
        Statement(sql.cards, (sql.values({c.card_id for c in commands}),), rows=True),
        Statement(sql.programmes, rows=True),
    )
    assert head is not None
    ((head_seq, head_hash, head_frontier, head_checkpoint),) = head
    try:
        frontier = Frontier.from_bytes(head_seq, bytes(head_frontier))
    except ValueError:
        raise LedgerDamaged(
            "the ledger head's record of the log's tree does not fit its size; run 'canasta audit'"
        ) from None
    existing = {}
    for row in found_keys or ():
        (outlet, key_hash, seq, card, qty, after, at, fingerprint, name, unit, digest) = row
        receipt = Receipt(seq, card, name, unit, qty, after, outlet, at, seq, digest)
        existing[key_hash] = StoredRedemption(receipt, fingerprint)
    cards = {
        card_id: Card(
            card_id,
            Beneficiary(_KINDS[kind], bid),
            _STATUSES[status],
            expires_on=expiry_for(date.fromisoformat(str(issued)[:10])),
        )
        for card_id, kind, bid, status, issued in found_cards or ()
    }
    programmes: dict[str, Programme] = {}
    open_cycles: dict[int, Cycle] = {}
    for pid, name, unit, per, days, fixed, per_member, cid, starts, ends in found_programmes or ():
        programmes[name] = Programme(name, unit, _KINDS[per], days, fixed, per_member, pid)
        if cid is not None:
            open_cycles[pid] = Cycle(pid, _date(starts), _date(ends), CycleStatus.OPEN, cid)
    wanted: set[tuple[int, Beneficiary]] = set()
    for c in commands:
        card = cards.get(c.card_id)
        programme = programmes.get(c.programme)
        cycle = open_cycles.get(programme.id) if programme and programme.id else None
        if card is not None and cycle is not None and cycle.id is not None:
            wanted.add((cycle.id, card.beneficiary))
    entitlements: dict[tuple[int, Beneficiary], Entitlement] = {}
    if wanted:
        # Rows of the other kind or cycle that share an id come back too; they are dropped
        # here (and locked in id order, so writers never lock crosswise).
        (found,) = yield (
            Statement(
                sql.entitlements,
                (
                    sql.values(sorted({b.id for _, b in wanted})),
                    sql.values(sorted({cycle_id for cycle_id, _ in wanted})),
                ),
                rows=True,
            ),
        )
        for eid, cycle_id, pid, kind, bid, quantity, redeemed in found or ():
            who = Beneficiary(_KINDS[kind], bid)
            if (cycle_id, who) in wanted:
                entitlements[(cycle_id, who)] = Entitlement(cycle_id, pid, who, quantity, redeemed, eid)
    state = BatchState(existing, cards, programmes, open_cycles, entitlements, head_seq, head_hash)
    return state, frontier, head_checkpoint


def _write_plan(sql: _Sql, plan: BatchPlan, sealed: Sealed, now: str) -> Round:
    last = plan.entries[-1]
    checkpoint = (
        (Statement(sql.insert_checkpoint, (sealed.frontier.size, sealed.root, now, sealed.note)),)
        if sealed.note is not None
        else ()
    )
    return (
        Statement(sql.add_redeemed, sql.many([(delta, eid) for eid, delta in plan.deltas.items()])),
        Statement(
            sql.insert_redemption,
            sql.many(
                [
                    (
                        r.ledger_seq,
                        r.card_id,
                        r.programme_id,
                        r.cycle_id,
                        r.outlet,
                        r.quantity,
                        r.balance_after,
                        r.key_hash,
                        r.fingerprint,
                        r.recorded_at,
                    )
                    for r in plan.redemptions
                ]
            ),
        ),
        Statement(
            sql.insert_entry,
            sql.many(
                [
                    (e.seq, e.kind, e.recorded_at, encode_body(e.body), e.prev_hash, e.entry_hash, salt, leaf)
                    for e, salt, leaf in zip(plan.entries, sealed.salts, sealed.commitments, strict=True)
                ]
            ),
        ),
        Statement(
            sql.move_head,
            (
                last.seq,
                last.entry_hash,
                sealed.frontier.to_bytes(),
                None if sealed.note is None else note_hash(sealed.note),
            ),
        ),
        *checkpoint,
    )


class SqlRedemptionStore:
    """Runs one batch of redemptions as one transaction on SQLite or PostgreSQL."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.sql = _Sql.for_dialect(engine.dialect.name)

    def run_batch(
        self, commands: Sequence[RedeemQuota], clock: Callable[[], str]
    ) -> list[Receipt | CanastaError]:
        signer = log_signer(self.engine)
        with transaction(self.engine) as conn:
            outcomes, sealed = _drive(batch_steps(self.sql, commands, clock, signer), conn)
        return with_log_receipts(outcomes, sealed)


def redeem_in(
    conn: sa.Connection, commands: Sequence[RedeemQuota], clock: Callable[[], str]
) -> list[Receipt | CanastaError]:
    """Run one batch of redemptions inside the caller's transaction, for work that writes
    more beside them in the same transaction (an outlet's journal at sync)."""
    sql = _Sql.for_dialect(conn.dialect.name)
    outcomes, _ = _drive(batch_steps(sql, commands, clock, log_signer(conn.engine)), conn)
    return outcomes


def _drive(steps: BatchSteps, conn: sa.Connection) -> tuple[Outcomes, Sealed | None]:
    """Run the conversation on ``conn``: on PostgreSQL each round is pipelined into one
    round trip on the driver connection; on SQLite (in-process) statements simply run."""
    driver = conn.connection.driver_connection
    run_round: Callable[[Round], list[Rows | None]]
    if isinstance(driver, psycopg.Connection):
        run_round = partial(_pipelined, driver)
    else:
        run_round = partial(_one_by_one, conn)
    try:
        statements = next(steps)
        while True:
            statements = steps.send(run_round(statements))
    except StopIteration as done:
        result: tuple[Outcomes, Sealed | None] = done.value
        return result


def _pipelined(driver: psycopg.Connection[Any], statements: Round) -> list[Rows | None]:
    with driver.pipeline():
        cursors = [driver.execute(s.sql, s.params) for s in statements]
    return [
        [tuple(r) for r in cursor.fetchall()] if statement.rows else None
        for statement, cursor in zip(statements, cursors, strict=True)
    ]


def _one_by_one(conn: sa.Connection, statements: Round) -> list[Rows | None]:
    results: list[Rows | None] = []
    for statement in statements:
        found = conn.exec_driver_sql(statement.sql, statement.params)
        results.append([tuple(r) for r in found] if statement.rows else None)
    return results


def _date(value: Any) -> Any:
    """SQLite hands dates back as text on the driver connection."""
    return date.fromisoformat(value) if isinstance(value, str) else value
