"""Reading and appending ledger entries. Appends lock the ledger head, which orders every
writer (on SQLite the write transaction already does)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from canasta.adapters.tables import ledger_entries, ledger_head
from canasta.domain.ledger import LedgerEntry


def lock_head(conn: sa.Connection) -> tuple[int, str]:
    row = conn.execute(
        sa.select(ledger_head.c.seq, ledger_head.c.entry_hash).where(ledger_head.c.id == 1).with_for_update()
    ).one()
    return int(row.seq), str(row.entry_hash)


def read_head(conn: sa.Connection) -> tuple[int, str] | None:
    row = conn.execute(
        sa.select(ledger_head.c.seq, ledger_head.c.entry_hash).where(ledger_head.c.id == 1)
    ).one_or_none()
    if row is None:
        return None
    return (int(row.seq), str(row.entry_hash)) if row.seq else None


def encode_body(body: Mapping[str, Any]) -> str:
    """How an entry's body is stored (compact JSON; the hash is over the canonical form,
    which is recomputed from this on reading)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def write_entries(conn: sa.Connection, entries: Sequence[LedgerEntry]) -> None:
    """Insert entries planned on top of the locked head and move the head to the last."""
    if not entries:
        return
    conn.execute(
        ledger_entries.insert(),
        [
            {
                "seq": e.seq,
                "kind": e.kind,
                "recorded_at": e.recorded_at,
                "body": encode_body(e.body),
                "prev_hash": e.prev_hash,
                "entry_hash": e.entry_hash,
            }
            for e in entries
        ],
    )
    last = entries[-1]
    conn.execute(
        ledger_head.update().where(ledger_head.c.id == 1).values(seq=last.seq, entry_hash=last.entry_hash)
    )


def append(
    conn: sa.Connection, kind: str, bodies: Sequence[Mapping[str, Any]], recorded_at: str
) -> list[LedgerEntry]:
    """Append one entry per body, in order, inside the caller's transaction."""
    seq, prev = lock_head(conn)
    entries = []
    for body in bodies:
        seq += 1
        entry = LedgerEntry.create(seq, kind, recorded_at, body, prev)
        prev = entry.entry_hash
        entries.append(entry)
    write_entries(conn, entries)
    return entries


def iter_entries(conn: sa.Connection, chunk: int = 5000) -> Iterator[LedgerEntry]:
    """Every stored entry in ``seq`` order, read in chunks so memory stays flat."""
    last = None
    while True:
        query = sa.select(ledger_entries).order_by(ledger_entries.c.seq).limit(chunk)
        if last is not None:
            query = query.where(ledger_entries.c.seq > last)
        rows = conn.execute(query).all()
        for row in rows:
            yield _entry(row)
        if len(rows) < chunk:
            return
        last = rows[-1].seq


def _entry(row: sa.Row[Any]) -> LedgerEntry:
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
