"""The outlet's journal: a local SQLite file written with ``synchronous=FULL``, so an entry
the cashier was told about survives a crash or a pulled plug (docs/offline.md).

Each row is a journal entry with its signature and what became of it locally:

* ``pending``: written before the online attempt; its fate is not known yet (a crash here
  leaves it pending, and the next sync sends it as void: the server keeps it as a conflict
  if it had redeemed it, so nothing is counted that was not handed out unseen);
* ``online``: the server acknowledged it;
* ``offline``: handed out offline under the allowance;
* ``void``: nothing was handed out (refused online or offline).

``synced`` marks rows the server has answered at sync, with its outcome.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canasta.domain.offline import JournalEntry, SignedEntry, sign_entry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    counter INTEGER PRIMARY KEY,
    card TEXT NOT NULL,
    programme TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    day TEXT NOT NULL,
    cycle_id INTEGER,
    void INTEGER NOT NULL,
    signature BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'online', 'offline', 'void')),
    synced INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    ledger_seq INTEGER
);
CREATE INDEX IF NOT EXISTS ix_entries_unsynced ON entries (synced, counter);
CREATE INDEX IF NOT EXISTS ix_entries_card ON entries (card, programme, cycle_id);
"""


_SELECT = (
    "SELECT counter, card, programme, quantity, recorded_at, void, signature, state, synced, outcome,"
    " cycle_id FROM entries WHERE"
)
_WHICH = {
    "all": " 1 = 1",
    "pending": " state = 'pending'",
    "unsynced": " synced = 0 AND state != 'pending'",
}


@dataclass(frozen=True, slots=True)
class Row:
    signed: SignedEntry
    state: str
    synced: bool
    outcome: str | None
    cycle_id: int | None


class Journal:
    """The journal of one outlet, signed with its key."""

    def __init__(self, path: Path, outlet: str, key: Ed25519PrivateKey) -> None:
        self.path = path
        self.outlet = outlet
        self._key = key
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # each commit reaches the disk
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def append(
        self, card: str, programme: str, quantity: int, recorded_at: str, cycle_id: int | None
    ) -> SignedEntry:
        """Write a new pending entry under the next counter, durably, and return it signed."""
        with self._transaction() as db:
            (last,) = db.execute("SELECT coalesce(max(counter), 0) FROM entries").fetchone()
            entry = JournalEntry(self.outlet, int(last) + 1, card, programme, quantity, recorded_at)
            signed = sign_entry(entry, self._key)
            db.execute(
                "INSERT INTO entries (counter, card, programme, quantity, recorded_at, day, cycle_id, void,"
                " signature, state) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, 'pending')",
                (
                    entry.counter,
                    card,
                    programme,
                    quantity,
                    recorded_at,
                    recorded_at[:10],
                    cycle_id,
                    signed.signature,
                ),
            )
        return signed

    def settle(self, counter: int, state: str) -> SignedEntry:
        """Record what became of a pending entry: ``online``, ``offline`` or ``void`` (then
        it is signed again as void: nothing was handed out for it)."""
        with self._transaction() as db:
            row = self._row(db, counter)
            if row is None:
                raise KeyError(counter)
            signed = row.signed
            if state == "void":
                signed = sign_entry(replace(signed.entry, void=True), self._key)
            db.execute(
                "UPDATE entries SET state = ?, void = ?, signature = ? WHERE counter = ? AND synced = 0",
                (state, int(signed.entry.void), signed.signature, counter),
            )
        return signed

    def void_pending(self) -> int:
        """Entries left pending by a crash become void: the cashier was never told they
        went through, so nothing is assumed handed out (see the module docstring)."""
        pending = [r.signed.entry.counter for r in self.rows("pending")]
        for counter in pending:
            self.settle(counter, "void")
        return len(pending)

    def unsynced(self, limit: int = 1000) -> list[SignedEntry]:
        return [r.signed for r in self.rows("unsynced", limit)]

    def mark_synced(self, outcomes: dict[int, tuple[str, int | None]]) -> None:
        with self._transaction() as db:
            db.executemany(
                "UPDATE entries SET synced = 1, outcome = ?, ledger_seq = ? WHERE counter = ?",
                [(outcome, seq, counter) for counter, (outcome, seq) in outcomes.items()],
            )

    def offline_spent(self, card: str, programme: str, cycle_id: int) -> int:
        """What this outlet handed ``card`` offline of ``programme`` in the cycle."""
        (total,) = self._db.execute(
            "SELECT coalesce(sum(quantity), 0) FROM entries WHERE state = 'offline' AND card = ?"
            " AND programme = ? AND cycle_id = ?",
            (card, programme, cycle_id),
        ).fetchone()
        return int(total)

    def day_spent(self, programme: str, day: str) -> int:
        """What this outlet handed out offline of ``programme`` on the UTC day ``day``."""
        (total,) = self._db.execute(
            "SELECT coalesce(sum(quantity), 0) FROM entries"
            " WHERE state = 'offline' AND programme = ? AND day = ?",
            (programme, day),
        ).fetchone()
        return int(total)

    def counts(self) -> dict[str, int]:
        """Entries by state, and how many wait to be synced."""
        found = {
            state: int(n)
            for state, n in self._db.execute("SELECT state, count(*) FROM entries GROUP BY state")
        }
        (waiting,) = self._db.execute("SELECT count(*) FROM entries WHERE synced = 0").fetchone()
        return {**found, "waiting": int(waiting)}

    def rows(self, which: str = "all", limit: int = 1_000_000) -> list[Row]:
        """Entries in counter order: ``all``, ``pending`` or ``unsynced`` (settled, not synced)."""
        where = _WHICH[which]
        return [
            self._from(r) for r in self._db.execute(_SELECT + where + " ORDER BY counter LIMIT ?", (limit,))
        ]

    def _row(self, db: sqlite3.Connection, counter: int) -> Row | None:
        found = db.execute(_SELECT + " counter = ?", (counter,)).fetchone()
        return None if found is None else self._from(found)

    def _from(self, r: Any) -> Row:
        counter, card, programme, quantity, at, void, signature, state, synced, outcome, cycle = r
        entry = JournalEntry(
            self.outlet, int(counter), str(card), str(programme), int(quantity), str(at), bool(void)
        )
        return Row(
            SignedEntry(entry, bytes(signature)),
            str(state),
            bool(synced),
            None if outcome is None else str(outcome),
            None if cycle is None else int(cycle),
        )
