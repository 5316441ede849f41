"""The transparency log's public tables: commitments (a column of the ledger), signed
checkpoints and stored tiles; and the keys a database was first used with."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from canasta.adapters.tables import ledger_entries, log_checkpoints, log_tiles, signing_keys


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root: bytes
    signed_at: str
    note: str


def _checkpoint(row: Any) -> StoredCheckpoint:
    return StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2]), str(row[3]))


_CHECKPOINT_COLUMNS = (
    log_checkpoints.c.size,
    log_checkpoints.c.root,
    log_checkpoints.c.signed_at,
    log_checkpoints.c.note,
)


def latest_checkpoint(conn: sa.Connection) -> StoredCheckpoint | None:
    row = conn.execute(
        sa.select(*_CHECKPOINT_COLUMNS).order_by(log_checkpoints.c.size.desc()).limit(1)
    ).one_or_none()
    return None if row is None else _checkpoint(row)


def checkpoint_at(conn: sa.Connection, size: int) -> StoredCheckpoint | None:
    row = conn.execute(sa.select(*_CHECKPOINT_COLUMNS).where(log_checkpoints.c.size == size)).one_or_none()
    return None if row is None else _checkpoint(row)


def first_checkpoint_covering(conn: sa.Connection, size: int) -> StoredCheckpoint | None:
    row = conn.execute(
        sa.select(*_CHECKPOINT_COLUMNS)
        .where(log_checkpoints.c.size >= size)
        .order_by(log_checkpoints.c.size)
        .limit(1)
    ).one_or_none()
    return None if row is None else _checkpoint(row)


def checkpoints(conn: sa.Connection, after: int = 0, limit: int | None = None) -> list[StoredCheckpoint]:
    """Checkpoints of trees larger than ``after``, smallest first."""
    query = (
        sa.select(*_CHECKPOINT_COLUMNS).where(log_checkpoints.c.size > after).order_by(log_checkpoints.c.size)
    )
    if limit is not None:
        query = query.limit(limit)
    return [_checkpoint(row) for row in conn.execute(query)]


def iter_checkpoints(conn: sa.Connection, chunk: int = 5000) -> Iterator[StoredCheckpoint]:
    after = 0
    while True:
        found = checkpoints(conn, after, chunk)
        yield from found
        if len(found) < chunk:
            return
        after = found[-1].size


def insert_checkpoint(conn: sa.Connection, checkpoint: StoredCheckpoint) -> None:
    conn.execute(
        log_checkpoints.insert().values(
            size=checkpoint.size, root=checkpoint.root, signed_at=checkpoint.signed_at, note=checkpoint.note
        )
    )


def commitments(conn: sa.Connection, start: int, end: int) -> list[bytes]:
    """The commitments of leaves ``start`` to ``end - 1`` (entries ``start + 1`` to ``end``)."""
    rows = conn.execute(
        sa.select(ledger_entries.c.seq, ledger_entries.c.commitment)
        .where(ledger_entries.c.seq > start, ledger_entries.c.seq <= end)
        .order_by(ledger_entries.c.seq)
    ).all()
    if len(rows) != end - start or (rows and (rows[0][0] != start + 1 or rows[-1][0] != end)):
        raise LookupError(f"leaves {start} to {end - 1} are not all stored")
    return [bytes(row[1]) for row in rows]


def entry_with_salt(conn: sa.Connection, seq: int) -> sa.Row[tuple[object, ...]] | None:
    return conn.execute(sa.select(ledger_entries).where(ledger_entries.c.seq == seq)).one_or_none()


_TILE = "SELECT hashes FROM log_tiles WHERE level = ? AND idx = ?"


def tile(conn: sa.Connection, level: int, index: int) -> bytes | None:
    """One stored tile. On the driver: a proof for an old leaf is one of these reads, and
    building the statement through SQLAlchemy cost more than running it."""
    sql = _TILE.replace("?", "%s") if conn.dialect.name == "postgresql" else _TILE
    row = conn.exec_driver_sql(sql, (level, index)).first()
    return None if row is None else bytes(row[0])


def tiles(conn: sa.Connection, level: int, start: int, end: int) -> dict[int, bytes]:
    rows = conn.execute(
        sa.select(log_tiles.c.idx, log_tiles.c.hashes).where(
            log_tiles.c.level == level, log_tiles.c.idx >= start, log_tiles.c.idx < end
        )
    )
    return {int(idx): bytes(hashes) for idx, hashes in rows}


def stored_tile_count(conn: sa.Connection, level: int) -> int:
    """How many full tiles of ``level`` are stored from tile 0 on without a gap (tiles are
    stored in order, so a gap is damage; what follows it is stored again over it)."""
    expected = 0
    for (index,) in conn.execute(
        sa.select(log_tiles.c.idx).where(log_tiles.c.level == level).order_by(log_tiles.c.idx)
    ):
        if int(index) != expected:
            break
        expected += 1
    return expected


def tile_indexes(conn: sa.Connection) -> list[tuple[int, int]]:
    return [
        (int(level), int(idx))
        for level, idx in conn.execute(
            sa.select(log_tiles.c.level, log_tiles.c.idx).order_by(log_tiles.c.level, log_tiles.c.idx)
        )
    ]


def insert_tiles(conn: sa.Connection, rows: list[tuple[int, int, bytes]]) -> None:
    """Store full tiles; one another writer stored first is left as it is (tiles are a
    function of the leaves, so both wrote the same)."""
    if not rows:
        return
    values = [{"level": level, "idx": idx, "hashes": hashes} for level, idx, hashes in rows]
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(log_tiles)
    conn.execute(insert.on_conflict_do_nothing(), values)


def recorded_keys(conn: sa.Connection) -> dict[str, str]:
    return {
        str(role): str(verifier)
        for role, verifier in conn.execute(sa.select(signing_keys.c.role, signing_keys.c.verifier))
    }


def record_key(conn: sa.Connection, role: str, verifier: str, now: str) -> None:
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(signing_keys)
    conn.execute(insert.on_conflict_do_nothing(), {"role": role, "verifier": verifier, "first_used_at": now})
