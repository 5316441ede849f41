"""The transparency log as the server, the CLI and auditors use it: keys, checkpoints,
proofs, tiles and receipts.

Writers take entries into the log as they append them (``ledger_repo.append`` and the
redemption batch): each entry's commitment is stored with it, the head keeps the tree's
right edge, and each batch signs a checkpoint. Everything here only reads that, except two
things that are pure functions of it and may be written by anyone at any time:

- a checkpoint for the current head, when the last writer had no log key
  (``publish_checkpoint``);
- full tiles (tlog-tiles: 256 hashes at height 8·level), stored the first time a proof or a
  tile needs them, so later proofs read a few stored tiles instead of rehashing the log.

``LogView`` serves proofs for any leaf and any two tree sizes from stored tiles, the
commitments of the last, incomplete tile and a cache of expanded tiles.
"""

from __future__ import annotations

import base64
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa

from canasta.adapters import ledger_repo, log_repo
from canasta.adapters.db import reads, transaction
from canasta.adapters.log_repo import StoredCheckpoint
from canasta.domain.errors import InvalidInput, NotFound
from canasta.domain.merkle import (
    NodeReader,
    consistency_path,
    inclusion_path,
    leaf_hash,
    range_hash,
)
from canasta.domain.receipt import LogReceipt
from canasta.domain.transparency import expand_tile, note_hash, sign_checkpoint
from canasta.service.clock import utc_now_iso
from canasta.service.keys import KeyProblem, Keyring

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH = 32
#: A full tile as stored: its 256 hashes and the 255 nodes above them.
FULL_TILE_BYTES = (2 * TILE_WIDTH - 1) * HASH
FULL_OFFSETS = tuple(2 * TILE_WIDTH - (2 * TILE_WIDTH >> r) for r in range(TILE_HEIGHT + 1))
#: Most leaves one request for leaves returns (2 MiB of commitments).
MAX_LEAVES = 65_536
T = TypeVar("T")
Connect = Callable[[], sa.Connection]

_KEYRINGS: weakref.WeakKeyDictionary[sa.Engine, Keyring] = weakref.WeakKeyDictionary()


def bind_keys(engine: sa.Engine, keyring: Keyring, now: Callable[[], str] = utc_now_iso) -> None:
    """Use ``keyring`` with this database from now on. The first keys a database is used with
    are recorded in it, and a keyring with other keys is refused: checkpoints signed by two
    keys would split the log."""
    with transaction(engine) as conn:
        recorded = log_repo.recorded_keys(conn)
        for role, verifier in keyring.verifiers().items():
            known = recorded.get(role.value)
            if known is None:
                log_repo.record_key(conn, role.value, str(verifier), now())
            elif known != str(verifier):
                raise KeyProblem(
                    f"the {role.value} key offered is not this database's: the database was first "
                    f"used with {known}; point CANASTA_KEYS at that key's directory"
                )
    ledger_repo.attach_log_signer(engine, keyring.log)
    _KEYRINGS[engine] = keyring


def keyring_of(engine: sa.Engine) -> Keyring:
    keyring = _KEYRINGS.get(engine)
    if keyring is None:
        raise KeyProblem("no signing keys are loaded for this database")
    return keyring


def publish_checkpoint(engine: sa.Engine, now: Callable[[], str] = utc_now_iso) -> StoredCheckpoint | None:
    """The checkpoint of the log as it stands, signed now if no writer signed one at this
    size (None while the log is empty)."""
    with transaction(engine, write=False) as conn:
        head = ledger_repo.read_head(conn)
        if head is None:
            return None
        found = log_repo.checkpoint_at(conn, head[0])
        if found is not None:
            return found
    keyring = keyring_of(engine)
    with transaction(engine) as conn:
        locked = ledger_repo.lock_head(conn)
        found = log_repo.checkpoint_at(conn, locked.seq)
        if found is not None:
            return found
        at = now()
        root = locked.frontier.root()
        note = sign_checkpoint(keyring.log, locked.seq, root, at, locked.checkpoint_hash)
        checkpoint = StoredCheckpoint(locked.seq, root, at, note)
        log_repo.insert_checkpoint(conn, checkpoint)
        ledger_repo.set_checkpoint_hash(conn, note_hash(note))
        return checkpoint


class ProofUnavailable(InvalidInput):
    code = "proof-unavailable"


@dataclass(frozen=True, slots=True)
class _Expanded:
    """A tile's hashes and every complete node above them (``expand_tile``)."""

    blob: bytes
    offsets: tuple[int, ...]

    @classmethod
    def of(cls, base: list[bytes]) -> _Expanded:
        return cls(*expand_tile(base))

    @classmethod
    def stored(cls, blob: bytes, where: str) -> _Expanded:
        if len(blob) != FULL_TILE_BYTES:
            raise ProofUnavailable(f"tile {where} is stored damaged ({len(blob)} bytes); run canasta audit")
        return cls(blob, FULL_OFFSETS)

    def node(self, height: int, index: int) -> bytes:
        at = (self.offsets[height] + index) * HASH
        return self.blob[at : at + HASH]

    @property
    def root(self) -> bytes:
        return self.blob[-HASH:]

    def base(self, width: int) -> bytes:
        return self.blob[: width * HASH]


class LogView:
    """Proofs, tiles and receipts read from one database (safe to share between threads)."""

    def __init__(self, engine: sa.Engine, cache_tiles: int = 4096) -> None:
        """``cache_tiles`` expanded tiles are kept (16 KiB each: 64 MiB at the default, every
        tile of a log of a million entries)."""
        self.engine = engine
        self._cache: OrderedDict[tuple[int, int, int], _Expanded] = OrderedDict()
        self._roots: dict[tuple[int, int], bytes] = {}
        self._cache_tiles = cache_tiles
        self._materialised = 0  # leaves whose full tiles are known to be stored
        self._head_seen = 0  # the largest log size read from the head
        self._ranges: OrderedDict[int, dict[tuple[int, int], bytes]] = OrderedDict()
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- checkpoints

    def checkpoint(self) -> StoredCheckpoint:
        checkpoint = publish_checkpoint(self.engine)
        if checkpoint is None:
            raise NotFound("the log is empty: nothing has been recorded yet")
        return checkpoint

    def checkpoints(self, after: int = 0, limit: int = 1000) -> list[StoredCheckpoint]:
        with transaction(self.engine, write=False) as conn:
            return log_repo.checkpoints(conn, after, limit)

    # ----------------------------------------------------------------- proofs

    def inclusion(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        if not 0 <= index < size:
            raise ProofUnavailable(f"leaf {index} is not in a tree of {size} leaves")
        return self._with_nodes(size, lambda node: inclusion_path(index, size, node, self._ranges_of(size)))

    def consistency(self, old: int, new: int) -> list[bytes]:
        self._check_size(new)
        if not 0 < old <= new:
            raise ProofUnavailable(f"there is no consistency proof from {old} leaves to {new}")
        return self._with_nodes(new, lambda node: consistency_path(old, new, node))

    def root(self, size: int) -> bytes:
        self._check_size(size)
        return self._with_nodes(size, lambda node: range_hash(0, size, node))

    def receipt(self, seq: int, first: bool = False) -> LogReceipt:
        """The receipt of ledger entry ``seq``, proved against the latest checkpoint, or with
        ``first`` against the first checkpoint that holds it (the one its batch signed, so a
        retried request gets back exactly the receipt it got the first time)."""
        latest = self.checkpoint()
        with transaction(self.engine, write=False) as conn:
            row = log_repo.entry_with_salt(conn, seq)
            covering = log_repo.first_checkpoint_covering(conn, seq) if first else None
        if row is None or seq > latest.size:
            raise NotFound(f"there is no ledger entry {seq}")
        checkpoint = covering or latest
        entry = ledger_repo.entry_from_row(row)
        proof = self.inclusion(seq - 1, checkpoint.size)
        return LogReceipt(entry, bytes(row.salt), seq - 1, tuple(proof), checkpoint.note)

    # ----------------------------------------------------------------- tiles

    def tile(self, level: int, index: int, width: int | None = None) -> bytes:
        """Tile ``index`` of ``level`` as tlog-tiles serves it: ``width`` hashes (all 256 of
        a full tile when None)."""
        size = self.checkpoint().size
        available = (size >> (TILE_HEIGHT * level)) - index * TILE_WIDTH
        wanted = TILE_WIDTH if width is None else width
        if not 1 <= wanted <= TILE_WIDTH or available < wanted:
            raise NotFound(f"tile {level}/{index} with {wanted} hashes is not in the log of {size}")
        self._materialise(size)
        with transaction(self.engine, write=False) as conn:
            expanded = self._expanded(lambda: conn, level, index, min(available, TILE_WIDTH))
        return expanded.base(wanted)

    def entry_bundle(self, index: int, width: int | None = None) -> bytes:
        """The log's entries (commitments) ``index·256`` onward, as tlog-tiles bundles them:
        each a big-endian 16-bit length, then the bytes."""
        wanted = TILE_WIDTH if width is None else width
        start = index * TILE_WIDTH
        if not 1 <= wanted <= TILE_WIDTH or index < 0:
            raise NotFound(f"entry bundle {index} with {wanted} entries is not in the log")
        with transaction(self.engine, write=False) as conn:  # one query: a bundle is read often
            try:
                found = log_repo.commitments(conn, start, start + wanted)
            except LookupError:
                raise NotFound(f"entry bundle {index} with {wanted} entries is not in the log") from None
        return b"".join(len(c).to_bytes(2, "big") + c for c in found)

    def leaves(self, start: int, count: int) -> bytes:
        """The commitments of leaves ``start`` to ``start + count - 1``, 32 bytes each, in
        one read: what a verifier fetches instead of thousands of entry bundles."""
        if start < 0 or not 1 <= count <= MAX_LEAVES:
            raise InvalidInput(f"ask for 1 to {MAX_LEAVES} leaves from a leaf of 0 or more")
        with transaction(self.engine, write=False) as conn:
            try:
                return b"".join(log_repo.commitments(conn, start, start + count))
            except LookupError:
                raise NotFound(f"leaves {start} to {start + count - 1} are not all in the log") from None

    # ----------------------------------------------------------------- internals

    def _ranges_of(self, size: int) -> dict[tuple[int, int], bytes]:
        """The right-edge subtree hashes of the tree of ``size`` (shared by every proof in it)."""
        with self._lock:
            found = self._ranges.get(size)
            if found is None:
                found = self._ranges[size] = {}
                while len(self._ranges) > 16:
                    self._ranges.popitem(last=False)
            return found

    def _check_size(self, size: int) -> None:
        """Refuse a tree larger than the log (the head is read only for a size larger than
        any seen before: the log never shrinks)."""
        if 1 <= size <= self._head_seen:
            return
        with transaction(self.engine, write=False) as conn:
            head = ledger_repo.read_head(conn)
        self._head_seen = max(self._head_seen, head[0] if head else 0)
        if size < 1 or size > self._head_seen:
            raise ProofUnavailable(f"the log has no tree of {size} leaves")

    def _with_nodes(self, size: int, compute: Callable[[NodeReader], T]) -> T:
        """``compute`` with a reader of the tree of ``size`` leaves; the database is opened
        only if a node is not in the cache."""
        self._materialise(size)
        with ExitStack() as stack:
            opened: list[sa.Connection] = []
            tiles: dict[tuple[int, int], _Expanded] = {}  # the few tiles one proof reads

            def connect() -> sa.Connection:
                if not opened:  # tiles and commitments never change: no transaction needed
                    opened.append(stack.enter_context(reads(self.engine)))
                return opened[0]

            def node(height: int, index: int) -> bytes:
                level, within = divmod(height, TILE_HEIGHT)
                tile = (index << within) >> TILE_HEIGHT  # the tile of the node's descendants
                expanded = tiles.get((level, tile))
                if expanded is None:
                    width = min(TILE_WIDTH, (size >> (TILE_HEIGHT * level)) - tile * TILE_WIDTH)
                    expanded = tiles[(level, tile)] = self._expanded(connect, level, tile, width)
                return expanded.node(within, index - (tile << (TILE_HEIGHT - within)))

            return compute(node)

    def _expanded(self, conn: Connect, level: int, tile: int, width: int) -> _Expanded:
        key = (level, tile, width)
        found = self._cache.get(key)  # eviction is oldest first, so a hit changes nothing
        if found is not None:
            return found
        if width == TILE_WIDTH:
            stored = log_repo.tile(conn(), level, tile)
            if stored is None:
                raise ProofUnavailable(f"tile {level}/{tile} is not stored yet")
            expanded = _Expanded.stored(stored, f"{level}/{tile}")
        else:
            expanded = _Expanded.of(self._partial_base(conn, level, tile, width))
        with self._lock:
            self._cache[key] = expanded
            if width == TILE_WIDTH:
                self._roots[(level, tile)] = expanded.root
            while len(self._cache) > self._cache_tiles:
                self._cache.popitem(last=False)
        return expanded

    def _partial_base(self, conn: Connect, level: int, tile: int, width: int) -> list[bytes]:
        """The hashes at height 8·level of nodes tile·256 to tile·256 + width - 1 (fewer
        than 256: the tile is not full, so not stored)."""
        start = tile * TILE_WIDTH
        if level == 0:
            return [leaf_hash(c) for c in log_repo.commitments(conn(), start, start + width)]
        return [self._tile_root(conn, level - 1, start + i) for i in range(width)]

    def _tile_root(self, conn: Connect, level: int, tile: int) -> bytes:
        found = self._roots.get((level, tile))
        if found is None:
            found = self._expanded(conn, level, tile, TILE_WIDTH).root
        return found

    def _materialise(self, size: int) -> None:
        """Store every full tile of the tree of ``size`` leaves that is not stored yet."""
        if size <= self._materialised:
            return
        with transaction(self.engine, write=False) as conn:
            missing = _missing_tiles(conn, size)
        for level, first, end in missing:
            for chunk in range(first, end, 64):
                with transaction(self.engine) as conn:
                    rows = []
                    for tile in range(chunk, min(end, chunk + 64)):
                        start = tile * TILE_WIDTH
                        if level == 0:
                            base = [
                                leaf_hash(c) for c in log_repo.commitments(conn, start, start + TILE_WIDTH)
                            ]
                        else:
                            base = [
                                self._tile_root(lambda: conn, level - 1, start + i) for i in range(TILE_WIDTH)
                            ]
                        expanded = _Expanded.of(base)
                        rows.append((level, tile, expanded.blob))
                        self._roots[(level, tile)] = expanded.root
                    log_repo.insert_tiles(conn, rows)
        self._materialised = max(self._materialised, size)


def _missing_tiles(conn: sa.Connection, size: int) -> list[tuple[int, int, int]]:
    """(level, first missing tile, end) for every level with full tiles not yet stored."""
    missing = []
    level = 0
    while size >> (TILE_HEIGHT * (level + 1)):
        full = size >> (TILE_HEIGHT * (level + 1))
        have = log_repo.stored_tile_count(conn, level)
        if have < full:
            missing.append((level, have, full))
        level += 1
    return missing


def encode_proof(proof: list[bytes]) -> list[str]:
    return [base64.b64encode(p).decode() for p in proof]
