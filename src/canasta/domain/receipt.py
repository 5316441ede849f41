"""What the public transparency log holds for each ledger entry, and how a receipt proves it.

The log's leaf for an entry is a salted commitment: ``SHA-256(salt ‖ canonical entry)``,
with a fresh 32-byte salt per entry. The public log therefore shows only random-looking
hashes; whoever holds a receipt (the entry and its salt) can open the commitment and check
that the entry is in the log, and nobody else learns anything from the leaf.

A receipt carries the entry, its salt, the leaf's index, an inclusion proof, and a signed
checkpoint of a tree that contains it. ``verify_receipt`` needs nothing else but the log's
public key.

This module does no I/O.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canasta.domain.errors import InvalidInput
from canasta.domain.ledger import LedgerEntry
from canasta.domain.merkle import leaf_hash, verify_inclusion
from canasta.domain.signed_note import BadNote, Checkpoint, Verifier, open_note

SALT_BYTES = 32
FORMAT = "canasta-receipt/1"


class BadReceipt(InvalidInput):
    """A receipt that is malformed or does not prove what it claims."""

    code = "bad-receipt"


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def commitment(entry: LedgerEntry, salt: bytes, encoded: bytes | None = None) -> bytes:
    """The log leaf's data for ``entry``: a salted hash of its canonical encoding (pass
    ``encoded`` when it is at hand, to spare encoding the entry again)."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a salt is {SALT_BYTES} bytes")
    if encoded is None:
        encoded = LedgerEntry.encode(entry.seq, entry.kind, entry.recorded_at, entry.body, entry.prev_hash)
    return hashlib.sha256(salt + encoded).digest()


@dataclass(frozen=True, slots=True)
class LogReceipt:
    entry: LedgerEntry
    salt: bytes
    leaf_index: int
    proof: tuple[bytes, ...]
    #: A signed checkpoint (C2SP signed note) of a tree that holds the leaf.
    checkpoint: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "entry": {
                "seq": self.entry.seq,
                "kind": self.entry.kind,
                "recorded_at": self.entry.recorded_at,
                "body": dict(self.entry.body),
                "prev": self.entry.prev_hash,
                "hash": self.entry.entry_hash,
            },
            "salt": base64.b64encode(self.salt).decode(),
            "leaf_index": self.leaf_index,
            "inclusion_proof": [_hash_text(p) for p in self.proof],
            "checkpoint": self.checkpoint,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, indent=2) + "\n"

    def compact_json(self) -> str:
        """``as_dict`` as compact JSON, built from parts that repeat across a batch's
        receipts (the checkpoint, the upper proof hashes) without encoding them again: every
        redemption's answer carries one of these."""
        e = self.entry
        entry = _COMPACT.encode(
            {
                "seq": e.seq,
                "kind": e.kind,
                "recorded_at": e.recorded_at,
                "body": dict(e.body),
                "prev": e.prev_hash,
                "hash": e.entry_hash,
            }
        )
        proof = ",".join(f'"{_hash_text(p)}"' for p in self.proof)
        return (
            f'{{"format":"{FORMAT}","entry":{entry},"salt":"{base64.b64encode(self.salt).decode()}",'
            f'"leaf_index":{self.leaf_index},"inclusion_proof":[{proof}],'
            f'"checkpoint":{_note_text(self.checkpoint)}}}'
        )

    @classmethod
    def from_json(cls, text: str) -> LogReceipt:
        try:
            data = json.loads(text)
        except ValueError as error:
            raise BadReceipt(f"the receipt is not JSON ({error})") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> LogReceipt:
        try:
            if not isinstance(data, Mapping) or data.get("format") != FORMAT:
                raise BadReceipt(f"not a {FORMAT} receipt")
            raw = data["entry"]
            if not isinstance(raw["seq"], int) or not isinstance(data["leaf_index"], int):
                raise BadReceipt("a receipt's entry number and leaf index are whole numbers")
            entry = LedgerEntry(
                int(raw["seq"]),
                str(raw["kind"]),
                str(raw["recorded_at"]),
                dict(raw["body"]),
                str(raw["prev"]),
                str(raw["hash"]),
            )
            return cls(
                entry,
                _b64(data["salt"]),
                int(data["leaf_index"]),
                tuple(_b64(p) for p in data["inclusion_proof"]),
                str(data["checkpoint"]),
            )
        except BadReceipt:
            raise
        except (ValueError, KeyError, TypeError) as error:
            raise BadReceipt(f"the receipt is malformed ({type(error).__name__}: {error})") from None


_COMPACT = json.JSONEncoder(separators=(",", ":"))


@functools.lru_cache(maxsize=64)
def _note_text(note: str) -> str:
    return _COMPACT.encode(note)


@functools.lru_cache(maxsize=16384)
def _hash_text(node: bytes) -> str:
    """A proof's hash in base64; the log's upper nodes recur in every receipt, so their
    text is kept."""
    return base64.b64encode(node).decode()


def _b64(value: Any) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except binascii.Error:
        raise BadReceipt(f"{str(value)[:20]!r} is not base64") from None


@dataclass(frozen=True, slots=True)
class Verified:
    checkpoint: Checkpoint
    leaf_index: int
    entry: LedgerEntry


def verify_receipt(receipt: LogReceipt, verifiers: list[Verifier]) -> Verified:
    """Check that the receipt's entry is what its hash says, that the salt opens the leaf,
    that the checkpoint is signed by the log, and that the leaf is in the checkpoint's tree;
    ``BadReceipt`` names the first thing that fails."""
    if receipt.entry.recompute_hash() != receipt.entry.entry_hash:
        raise BadReceipt("the entry does not match its own hash: it was changed")
    try:
        head = Checkpoint.parse(open_note(receipt.checkpoint, verifiers))
    except BadNote as bad:
        raise BadReceipt(f"the checkpoint does not verify: {bad.message}") from None
    if receipt.leaf_index != receipt.entry.seq - 1:
        raise BadReceipt(
            f"entry {receipt.entry.seq} is leaf {receipt.entry.seq - 1} of the log, not {receipt.leaf_index}"
        )
    if len(receipt.salt) != SALT_BYTES:
        raise BadReceipt(f"the salt is {len(receipt.salt)} bytes, not {SALT_BYTES}")
    leaf = leaf_hash(commitment(receipt.entry, receipt.salt))
    if not verify_inclusion(receipt.leaf_index, head.size, leaf, receipt.proof, head.root):
        raise BadReceipt(
            f"the entry is not at leaf {receipt.leaf_index} of the log of {head.size} entries "
            "that the checkpoint signs"
        )
    return Verified(head, receipt.leaf_index, receipt.entry)
