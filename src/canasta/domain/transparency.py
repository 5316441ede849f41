"""How ledger entries enter the transparency log, as one pure step per batch of entries.

Entry ``seq`` is leaf ``seq - 1``. For each new entry a fresh salt is drawn and the leaf's
data is the commitment ``SHA-256(salt ‖ canonical entry)`` (see ``receipt``). The writer
holds the tree's right edge (its ``Frontier``, kept in the ledger head), folds the new leaves
into it, signs a checkpoint of the new tree when it has the log key, and can prove every new
entry's inclusion from the old frontier and the new leaves alone, so a receipt with its
proof is ready the moment the batch commits, with nothing read back.

The checkpoint is the C2SP format with two extension lines: ``time <ISO 8601 UTC>``, the
moment it was signed (the time of the batch's entries), and ``prev <hex>``, the SHA-256 of
the previous checkpoint's signed note (64 zeros for the first). The checkpoints therefore
chain like the ledger's entries: one taken out of the stored sequence breaks the next one's
link, and the ledger head holds the hash of the last.

This module does no I/O.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from canasta.domain.errors import NotFound
from canasta.domain.ledger import LedgerEntry
from canasta.domain.merkle import Frontier, GrowingTree, leaf_hash, node_hash
from canasta.domain.receipt import SALT_BYTES, LogReceipt, commitment
from canasta.domain.signed_note import Checkpoint, Signer

TIME_PREFIX = "time "
PREV_PREFIX = "prev "
NO_CHECKPOINT = "0" * 64
_GROUP = re.compile(r"x[0-9]{3}")
_LAST = re.compile(r"[0-9]{3}")


def checkpoint_time(checkpoint: Checkpoint) -> str | None:
    for line in checkpoint.extensions:
        if line.startswith(TIME_PREFIX):
            return line[len(TIME_PREFIX) :]
    return None


def checkpoint_prev(checkpoint: Checkpoint) -> str | None:
    for line in checkpoint.extensions:
        if line.startswith(PREV_PREFIX):
            return line[len(PREV_PREFIX) :]
    return None


def note_hash(note: str) -> str:
    return hashlib.sha256(note.encode()).hexdigest()


def sign_checkpoint(signer: Signer, size: int, root: bytes, signed_at: str, prev: str) -> str:
    extensions = (TIME_PREFIX + signed_at, PREV_PREFIX + prev)
    return signer.sign(Checkpoint(signer.name, size, root, extensions).text())


@dataclass(frozen=True, slots=True)
class Sealed:
    """A batch of entries as the log takes them."""

    entries: Sequence[LedgerEntry]
    salts: list[bytes]
    commitments: list[bytes]
    frontier: Frontier
    root: bytes
    #: The signed checkpoint of the new tree (None when the writer has no log key; the
    #: next writer or publisher that has it signs a checkpoint covering these entries).
    note: str | None
    tree: GrowingTree

    def receipts(self) -> list[LogReceipt]:
        """Every entry's receipt, in order, the proofs found together (``inclusions``)."""
        if self.note is None:
            raise ValueError("no checkpoint was signed for this batch")
        if not self.entries:
            return []
        first = self.entries[0].seq - 1
        proofs = self.tree.inclusions(first, first + len(self.entries))
        return [
            LogReceipt(entry, salt, entry.seq - 1, tuple(proof), self.note)
            for entry, salt, proof in zip(self.entries, self.salts, proofs, strict=True)
        ]

    def receipt(self, position: int) -> LogReceipt:
        """The receipt of the batch's entry at ``position``, proved against ``note``."""
        if self.note is None:
            raise ValueError("no checkpoint was signed for this batch")
        entry = self.entries[position]
        index = entry.seq - 1
        return LogReceipt(entry, self.salts[position], index, tuple(self.tree.inclusion(index)), self.note)


def seal(
    entries: Sequence[LedgerEntry],
    frontier: Frontier,
    signer: Signer | None,
    signed_at: str,
    prev_checkpoint: str = NO_CHECKPOINT,
    salts: Sequence[bytes] | None = None,
    encodings: Sequence[bytes] | None = None,
) -> Sealed:
    """Take ``entries`` (the next ones after ``frontier``, in order) into the log;
    ``prev_checkpoint`` is the hash of the last signed checkpoint's note, ``encodings`` the
    entries' canonical encodings when the caller has them."""
    for offset, entry in enumerate(entries):
        if entry.seq != frontier.size + offset + 1:
            raise ValueError(f"entry {entry.seq} is not the next leaf of a log of {frontier.size + offset}")
    if salts is None:
        pool = secrets.token_bytes(SALT_BYTES * len(entries))  # one call for the batch
        salts = [pool[i : i + SALT_BYTES] for i in range(0, len(pool), SALT_BYTES)]
    else:
        salts = list(salts)
    if encodings is None:
        commitments = [commitment(e, s) for e, s in zip(entries, salts, strict=True)]
    else:
        commitments = [hashlib.sha256(s + x).digest() for s, x in zip(salts, encodings, strict=True)]
    leaves = [leaf_hash(c) for c in commitments]
    tree = GrowingTree(frontier, leaves)
    grown = Frontier(frontier.size, list(frontier.peaks))
    for leaf in leaves:
        grown.append(leaf)
    root = grown.root()
    note = (
        sign_checkpoint(signer, grown.size, root, signed_at, prev_checkpoint)
        if signer and entries  # no second note for a size already signed
        else None
    )
    return Sealed(entries, salts, commitments, grown, root, note, tree)


def parse_tile_index(path: str) -> tuple[int, int | None]:
    """``x001/x234/067`` → 1234067; ``067.p/5`` → (67, 5). Raises NotFound for any other
    spelling, as a static file server would."""
    width: int | None = None
    if ".p/" in path:
        path, _, raw_width = path.partition(".p/")
        if (
            not (raw_width.isascii() and raw_width.isdigit())
            or not 1 <= int(raw_width) <= 255
            or raw_width.startswith("0")
        ):
            raise NotFound(f"{raw_width!r} is not a partial tile's width (1 to 255)")
        width = int(raw_width)
    groups = path.split("/")
    if not groups or not _LAST.fullmatch(groups[-1]) or not all(_GROUP.fullmatch(g) for g in groups[:-1]):
        raise NotFound(f"{path!r} is not a tile index (groups of three digits: x001/x234/067)")
    digits = "".join(g.lstrip("x") for g in groups)
    if len(groups) > 1 and groups[0] == "x000":
        raise NotFound(f"{path!r} has a leading group of zeros")
    return int(digits), width


def tile_path(index: int, width: int | None = None) -> str:
    """The tlog-tiles spelling of a tile index (and partial width)."""
    text = f"{index:03d}"
    text = "0" * (-len(text) % 3) + text
    groups = [text[i : i + 3] for i in range(0, len(text), 3)]
    path = "/".join([*("x" + g for g in groups[:-1]), groups[-1]])
    return path if width is None else f"{path}.p/{width}"


def expand_tile(base: Sequence[bytes]) -> tuple[bytes, tuple[int, ...]]:
    """A tile's hashes followed by every complete node above them, level by level, as one
    byte string, with the index (in hashes) where each level starts. A full tile of 256 is
    511 hashes and ends with its root; that is how full tiles are stored, so a proof reads
    its siblings from one row without hashing."""
    levels = [list(base)]
    while len(levels[-1]) > 1:
        row = levels[-1]
        levels.append([node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)])
    offsets, at = [], 0
    for row in levels:
        offsets.append(at)
        at += len(row)
    return b"".join(h for row in levels for h in row), tuple(offsets)
