"""The ledger: an append-only chain of typed entries, each holding the SHA-256 of the
canonical encoding of the one before it.

Entries are never updated or deleted; a correction is a new entry that names the old one.
The verification functions are pure and report every problem they find rather than
stopping at the first, so an auditor sees the whole damage at once. The entry format is
kept open for the Merkle transparency log: an entry's canonical encoding is what a log
leaf will commit to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

#: ``prev_hash`` of the first entry.
GENESIS_HASH = "0" * 64


class EntryKind(StrEnum):
    REDEMPTION = "redemption"
    CYCLE_OPENED = "cycle-opened"
    CYCLE_CLOSED = "cycle-closed"
    CARD_WITHDRAWN = "card-withdrawn"
    POLICY_PUBLISHED = "policy-published"
    #: One registration found to be the same person as another (automatically or by a
    #: reviewer) and no longer counted on its own; and such a merge undone.
    REGISTRATIONS_MERGED = "registrations-merged"
    REGISTRATIONS_UNMERGED = "registrations-unmerged"


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_PLAIN = (str, int, bool, type(None))


def canonical_json(value: Any) -> bytes:
    """The one byte encoding that is hashed: JSON with sorted keys, no spaces, UTF-8.

    Only strings, integers, booleans, None, lists and string-keyed mappings are allowed;
    floats are refused because their text is not canonical."""
    _check(value)
    return _ENCODER.encode(value).encode("utf-8")


def _check(value: Any) -> None:
    kind = type(value)
    if kind in _PLAIN:
        return
    if kind is float:
        raise TypeError("floats have no canonical encoding; use integers or decimal strings")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"mapping keys must be strings, not {key!r}")
            _check(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check(item)
    elif not isinstance(value, _PLAIN):  # subclasses such as StrEnum members
        raise TypeError(f"{kind.__name__} has no canonical encoding")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One entry of the ledger.

    seq: position in the ledger, from 1, without gaps.
    kind: what happened (see ``EntryKind``).
    recorded_at: when, as an ISO 8601 UTC timestamp with microseconds and ``Z``.
    body: what happened, as plain JSON values. Never personal data: a card pseudonym,
        programme, quantity, outlet and time at most.
    prev_hash: the ``entry_hash`` of entry ``seq - 1`` (``GENESIS_HASH`` for the first).
    entry_hash: SHA-256 (hex) of this entry's canonical encoding.
    """

    seq: int
    kind: str
    recorded_at: str
    body: Mapping[str, Any]
    prev_hash: str
    entry_hash: str

    @staticmethod
    def encode(seq: int, kind: str, recorded_at: str, body: Mapping[str, Any], prev_hash: str) -> bytes:
        return canonical_json(
            {"seq": seq, "kind": kind, "recorded_at": recorded_at, "body": body, "prev": prev_hash}
        )

    @classmethod
    def create(
        cls, seq: int, kind: str, recorded_at: str, body: Mapping[str, Any], prev_hash: str
    ) -> LedgerEntry:
        return cls.create_encoded(seq, kind, recorded_at, body, prev_hash)[0]

    @classmethod
    def create_encoded(
        cls, seq: int, kind: str, recorded_at: str, body: Mapping[str, Any], prev_hash: str
    ) -> tuple[LedgerEntry, bytes]:
        """The entry and its canonical encoding (which the transparency log also commits to,
        so a writer encodes each entry once)."""
        encoded = cls.encode(seq, kind, recorded_at, body, prev_hash)
        return cls(seq, kind, recorded_at, body, prev_hash, hashlib.sha256(encoded).hexdigest()), encoded

    def recompute_hash(self) -> str:
        return hashlib.sha256(
            self.encode(self.seq, self.kind, self.recorded_at, self.body, self.prev_hash)
        ).hexdigest()


@dataclass(frozen=True, slots=True)
class LedgerProblem:
    """Something wrong with the stored ledger, at entry ``seq``."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.problem}"


def verify_chain(entries: Iterable[LedgerEntry], head: tuple[int, str] | None) -> Iterator[LedgerProblem]:
    """Walk the entries in ``seq`` order and yield every problem: a gap, a reordering, an
    entry whose content no longer matches its hash, a broken link, or a head that does not
    match the last entry (``head`` is the ``(seq, entry_hash)`` recorded as the end of the
    ledger; None when the ledger should be empty)."""
    expected_seq = 1
    prev_hash = GENESIS_HASH
    last: tuple[int, str] | None = None
    for entry in entries:
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                missing = (
                    f"entry {expected_seq} is missing"
                    if entry.seq == expected_seq + 1
                    else f"entries {expected_seq} to {entry.seq - 1} are missing"
                )
                yield LedgerProblem(expected_seq, missing)
            else:
                yield LedgerProblem(entry.seq, f"appears again after entry {expected_seq - 1}")
        try:
            recomputed = entry.recompute_hash()
        except (TypeError, ValueError):  # e.g. a float written into the body by hand
            recomputed = ""
        if recomputed != entry.entry_hash:
            yield LedgerProblem(
                entry.seq, "content was changed: its hash no longer matches what was recorded"
            )
        if entry.prev_hash != prev_hash:
            yield LedgerProblem(entry.seq, "link to the previous entry is broken (prev_hash does not match)")
        # Link on the stored hash: an entry whose content alone was altered is named once,
        # and one whose stored hash was rewritten to match breaks the next link.
        prev_hash = entry.entry_hash
        expected_seq = max(expected_seq, entry.seq) + 1
        last = (entry.seq, entry.entry_hash)
    if head is None:
        if last is not None:
            yield LedgerProblem(last[0], "the ledger head says the ledger is empty")
    elif last is None:
        yield LedgerProblem(head[0], "the ledger head names an entry but no entries are stored")
    else:
        if head[0] > last[0]:
            yield LedgerProblem(
                last[0] + 1,
                f"entries {last[0] + 1} to {head[0]} are missing from the end"
                if head[0] > last[0] + 1
                else f"entry {head[0]} is missing from the end",
            )
        elif head[0] < last[0]:
            yield LedgerProblem(head[0] + 1, "entries were added after the recorded head")
        elif head[1] != last[1]:
            yield LedgerProblem(last[0], "does not match the hash recorded in the ledger head")
