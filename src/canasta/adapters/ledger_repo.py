"""Reading and appending ledger entries. Appends lock the ledger head, which orders every
writer (on SQLite the write transaction already does).

Every append also takes its entries into the transparency log (``domain.transparency``):
each entry is stored with its salt and commitment, the head with the tree's new right edge,
and, when the engine has the log key attached, a signed checkpoint of the new tree."""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from canasta.adapters.tables import ledger_entries, ledger_head, log_checkpoints
from canasta.domain.errors import LedgerDamaged
from canasta.domain.ledger import LedgerEntry
from canasta.domain.merkle import Frontier
from canasta.domain.signed_note import Signer
from canasta.domain.transparency import Sealed, note_hash, seal

_SIGNERS: weakref.WeakKeyDictionary[sa.Engine, Signer] = weakref.WeakKeyDictionary()


def attach_log_signer(engine: sa.Engine, signer: Signer) -> None:
    """Every append through ``engine`` signs a checkpoint with ``signer`` from now on."""
    _SIGNERS[engine] = signer


def log_signer(engine: sa.Engine) -> Signer | None:
    return _SIGNERS.get(engine)


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    entry_hash: str
    frontier: Frontier
    checkpoint_hash: str


def lock_head(conn: sa.Connection) -> Head:
    row = conn.execute(
        sa.select(
            ledger_head.c.seq,
            ledger_head.c.entry_hash,
            ledger_head.c.log_frontier,
            ledger_head.c.checkpoint_hash,
        )
        .where(ledger_head.c.id == 1)
        .with_for_update()
    ).one()
    seq = int(row.seq)
    try:
        frontier = Frontier.from_bytes(seq, bytes(row.log_frontier))
    except ValueError:
        raise LedgerDamaged(
            "the ledger head's record of the log's tree does not fit its size; nothing can be "
            "appended until 'canasta audit' has been run and the damage repaired"
        ) from None
    return Head(seq, str(row.entry_hash), frontier, str(row.checkpoint_hash))


def read_head(conn: sa.Connection) -> tuple[int, str] | None:
    row = conn.execute(
        sa.select(ledger_head.c.seq, ledger_head.c.entry_hash).where(ledger_head.c.id == 1)
    ).one_or_none()
    if row is None:
        return None
    return (int(row.seq), str(row.entry_hash)) if row.seq else None


def read_head_row(conn: sa.Connection) -> tuple[bytes, str] | None:
    """The head's log frontier and last checkpoint hash, as stored."""
    row = conn.execute(
        sa.select(ledger_head.c.log_frontier, ledger_head.c.checkpoint_hash).where(ledger_head.c.id == 1)
    ).one_or_none()
    return None if row is None else (bytes(row.log_frontier), str(row.checkpoint_hash))


def read_frontier(conn: sa.Connection) -> Frontier | None:
    row = conn.execute(
        sa.select(ledger_head.c.seq, ledger_head.c.log_frontier).where(ledger_head.c.id == 1)
    ).one_or_none()
    if row is None:
        return None
    try:
        return Frontier.from_bytes(int(row.seq), bytes(row.log_frontier))
    except ValueError:
        return None


def set_checkpoint_hash(conn: sa.Connection, checkpoint_hash: str) -> None:
    conn.execute(ledger_head.update().where(ledger_head.c.id == 1).values(checkpoint_hash=checkpoint_hash))


def encode_body(body: Mapping[str, Any]) -> str:
    """How an entry's body is stored (compact JSON; the hash is over the canonical form,
    which is recomputed from this on reading)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


_INSERT_SQLITE = (
    "INSERT INTO ledger_entries (seq, kind, recorded_at, body, prev_hash, entry_hash, salt, commitment) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_PG = (
    "INSERT INTO ledger_entries (seq, kind, recorded_at, body, prev_hash, entry_hash, salt, commitment) "
    "SELECT * FROM unnest("
    "%b::bigint[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::bytea[], %b::bytea[])"
)


def write_sealed(conn: sa.Connection, sealed: Sealed, signed_at: str) -> None:
    """Insert entries sealed on top of the locked head and move the head to the last."""
    if not sealed.entries:
        return
    rows = [
        (e.seq, e.kind, e.recorded_at, encode_body(e.body), e.prev_hash, e.entry_hash, salt, commitment)
        for e, salt, commitment in zip(sealed.entries, sealed.salts, sealed.commitments, strict=True)
    ]
    # On the driver: SQLAlchemy's per-row work cost as much as the database's, and a cycle
    # run or a bulk append writes entries by the thousand.
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_INSERT_PG, tuple(list(column) for column in zip(*rows, strict=True)))
    else:
        conn.exec_driver_sql(_INSERT_SQLITE, rows)
    last = sealed.entries[-1]
    values: dict[str, Any] = {
        "seq": last.seq,
        "entry_hash": last.entry_hash,
        "log_frontier": sealed.frontier.to_bytes(),
    }
    if sealed.note is not None:
        values["checkpoint_hash"] = note_hash(sealed.note)
    conn.execute(ledger_head.update().where(ledger_head.c.id == 1).values(**values))
    if sealed.note is not None:
        conn.execute(
            log_checkpoints.insert().values(
                size=sealed.frontier.size, root=sealed.root, signed_at=signed_at, note=sealed.note
            )
        )


def append(conn: sa.Connection, kind: str, bodies: Sequence[Mapping[str, Any]], recorded_at: str) -> Sealed:
    """Append one entry per body, in order, inside the caller's transaction."""
    head = lock_head(conn)
    seq, prev = head.seq, head.entry_hash
    entries, encodings = [], []
    for body in bodies:
        seq += 1
        entry, encoded = LedgerEntry.create_encoded(seq, kind, recorded_at, body, prev)
        prev = entry.entry_hash
        entries.append(entry)
        encodings.append(encoded)
    sealed = seal(
        entries,
        head.frontier,
        log_signer(conn.engine),
        recorded_at,
        head.checkpoint_hash,
        encodings=encodings,
    )
    write_sealed(conn, sealed, recorded_at)
    return sealed


def iter_entries(conn: sa.Connection, chunk: int = 5000) -> Iterator[LedgerEntry]:
    for entry, _, _ in iter_logged_entries(conn, chunk):
        yield entry


def iter_logged_entries(conn: sa.Connection, chunk: int = 5000) -> Iterator[tuple[LedgerEntry, bytes, bytes]]:
    """Every stored entry in ``seq`` order with its salt and log commitment."""
    for row in _iter_rows(conn, chunk):
        yield entry_from_row(row), bytes(row.salt), bytes(row.commitment)


def _iter_rows(conn: sa.Connection, chunk: int) -> Iterator[sa.Row[Any]]:
    """Every stored entry in ``seq`` order, read in chunks so memory stays flat."""
    last = None
    while True:
        query = sa.select(ledger_entries).order_by(ledger_entries.c.seq).limit(chunk)
        if last is not None:
            query = query.where(ledger_entries.c.seq > last)
        rows = conn.execute(query).all()
        yield from rows
        if len(rows) < chunk:
            return
        last = rows[-1].seq


def entry_from_row(row: sa.Row[Any]) -> LedgerEntry:
    try:
        body = json.loads(row.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        # Tampered beyond parsing: keep the raw text so the hash check names this entry.
        body = {"unreadable": str(row.body)}
    return LedgerEntry(
        seq=int(row.seq),
        kind=row.kind,
        recorded_at=row.recorded_at,
        body=body,
        prev_hash=row.prev_hash,
        entry_hash=row.entry_hash,
    )
