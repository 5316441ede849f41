"""Merkle tree hashing and proofs as RFC 9162 (Certificate Transparency 2.0) defines them.

The transparency log's leaves are hashed with a 0x00 prefix and its interior nodes with
0x01, so a leaf can never pass for a node. The tree over n leaves splits at the largest power
of two below n. An *inclusion proof* shows that a leaf is at an index of a tree with a given
root; a *consistency proof* shows that the tree of one size is a prefix of the tree of a
larger size, so that a log cannot rewrite what it has shown. The verification algorithms
are those of RFC 9162 section 2.1.3.2 and 2.1.4.2, so any implementation of the RFC can
check canasta's proofs.

``Frontier`` keeps only the roots of the perfect subtrees on the log's right edge (at most
log2(n) hashes), which is all that appending a leaf and computing the new root need.

This module does no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """The tree head over ``leaves``, each already a leaf hash."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root(leaves[:k]), root(leaves[k:]))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree over ``leaves`` (RFC 9162 2.1.3.1)."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)}")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(index, leaves[:k]), root(leaves[k:])]
    return [*inclusion_proof(index - k, leaves[k:]), root(leaves[:k])]


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected: bytes) -> bool:
    """Whether ``proof`` shows ``leaf`` (a leaf hash) at ``index`` of the tree of ``size``
    leaves whose root is ``expected`` (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """The proof that the tree of ``old_size`` leaves is a prefix of the tree over
    ``leaves`` (RFC 9162 2.1.4.1)."""
    if not 0 < old_size <= len(leaves):
        raise ValueError(f"no consistency proof from size {old_size} to {len(leaves)}")
    return _subproof(old_size, leaves, complete=True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), root(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root(leaves[:k])]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree of ``old_size`` with ``old_root`` to be a prefix of
    the tree of ``new_size`` with ``new_root`` (RFC 9162 2.1.4.2)."""
    if old_size < 1 or old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root starts the path
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


@dataclass(slots=True)
class Frontier:
    """The right edge of a growing tree: the roots of its perfect subtrees, largest first,
    as (height, hash). Appending is O(log n) and the root needs nothing else."""

    size: int = 0
    peaks: list[tuple[int, bytes]] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        """Add a leaf hash."""
        height, node = 0, leaf
        while self.peaks and self.peaks[-1][0] == height:
            _, left = self.peaks.pop()
            node = node_hash(left, node)
            height += 1
        self.peaks.append((height, node))
        self.size += 1

    def root(self) -> bytes:
        if not self.peaks:
            return EMPTY_ROOT
        node = self.peaks[-1][1]
        for _, left in reversed(self.peaks[:-1]):
            node = node_hash(left, node)
        return node

    def to_bytes(self) -> bytes:
        """The peaks' hashes, largest first; their heights follow from the size."""
        return b"".join(node for _, node in self.peaks)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> Frontier:
        heights = [h for h in range(size.bit_length() - 1, -1, -1) if size >> h & 1]
        if len(data) != 32 * len(heights):
            raise ValueError(f"a frontier of a tree of {size} holds {len(heights)} hashes")
        return cls(size, [(h, data[32 * i : 32 * i + 32]) for i, h in enumerate(heights)])

    def nodes(self) -> dict[tuple[int, int], bytes]:
        """The peaks by (height, index at that height)."""
        found, start = {}, 0
        for height, node in self.peaks:
            found[(height, start >> height)] = node
            start += 1 << height
        return found


#: A complete subtree's hash by (height, index at that height): index i at height h covers
#: leaves [i·2^h, (i+1)·2^h).
NodeReader = Callable[[int, int], bytes]


def range_hash(
    start: int, end: int, node: NodeReader, memo: dict[tuple[int, int], bytes] | None = None
) -> bytes:
    """MTH(D[start:end]) for a range that RFC 9162's recursion produces (``start`` aligned
    to the largest power of two below ``end - start``), from complete subtrees; ``memo``
    keeps the incomplete ones for the next call."""
    n = end - start
    if n & (n - 1) == 0:
        height = n.bit_length() - 1
        return node(height, start >> height)
    if memo is not None:
        found = memo.get((start, end))
        if found is not None:
            return found
    k = _split(n)
    value = node_hash(range_hash(start, start + k, node, memo), range_hash(start + k, end, node, memo))
    if memo is not None:
        memo[(start, end)] = value
    return value


def inclusion_path(
    index: int, size: int, node: NodeReader, memo: dict[tuple[int, int], bytes] | None = None
) -> list[bytes]:
    """``inclusion_proof`` from complete subtrees instead of the whole list of leaves."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(range_hash(start + k, end, node, memo))
            end = start + k
        else:
            path.append(range_hash(start, start + k, node, memo))
            start += k
    path.reverse()
    return path


def consistency_path(old_size: int, new_size: int, node: NodeReader) -> list[bytes]:
    """``consistency_proof`` from complete subtrees instead of the whole list of leaves."""
    if not 0 < old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    path: list[bytes] = []
    m, start, end, complete = old_size, 0, new_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            path.append(range_hash(start + k, end, node))
            end = start + k
        else:
            path.append(range_hash(start, start + k, node))
            m -= k
            start += k
            complete = False
    if not complete:
        path.append(range_hash(start, end, node))
    path.reverse()
    return path


#: A sibling hash and the chain of siblings above it: the paths of neighbouring leaves share
#: their upper part instead of copying it.
_Chain: TypeAlias = tuple[bytes, "_Chain"] | None


class GrowingTree:
    """The nodes of a tree just grown from ``frontier`` by ``leaves``: enough to prove any
    new leaf's inclusion and the old tree's consistency with the new one, without reading
    anything else. Interior nodes are computed once and remembered."""

    def __init__(self, frontier: Frontier, leaves: Sequence[bytes]) -> None:
        self.old_size = frontier.size
        self.size = frontier.size + len(leaves)
        self._leaves = leaves
        self._known = frontier.nodes()
        self._ranges: dict[tuple[int, int], bytes] = {}

    def node(self, height: int, index: int) -> bytes:
        found = self._known.get((height, index))
        if found is not None:
            return found
        start = index << height
        if (index + 1) << height > self.size:
            raise ValueError(f"the subtree at height {height}, index {index} is not complete")
        if start + (1 << height) <= self.old_size:
            raise ValueError(f"the subtree at height {height}, index {index} is below the frontier")
        if height == 0:
            value = self._leaves[start - self.old_size]
        else:
            value = node_hash(self.node(height - 1, 2 * index), self.node(height - 1, 2 * index + 1))
        self._known[(height, index)] = value
        return value

    def inclusion(self, index: int) -> list[bytes]:
        return inclusion_path(index, self.size, self.node, self._ranges)

    def inclusions(self, first: int, end: int) -> list[list[bytes]]:
        """The inclusion proofs of leaves ``first`` to ``end - 1`` at once: the siblings
        above the point where their paths part are found once for all of them."""
        if not 0 <= first < end <= self.size:
            raise ValueError(f"leaves {first} to {end - 1} are not all in a tree of {self.size}")
        proofs: list[list[bytes]] = []

        def descend(start: int, stop: int, lo: int, hi: int, above: _Chain) -> None:
            """Leaves ``lo`` to ``hi - 1`` of the subtree over ``start`` to ``stop - 1``."""
            if stop - start == 1:
                path, link = [], above
                while link is not None:
                    path.append(link[0])
                    link = link[1]
                proofs.append(path)
                return
            k = _split(stop - start)
            middle = start + k
            if lo < middle:
                descend(
                    start,
                    middle,
                    lo,
                    min(hi, middle),
                    (range_hash(middle, stop, self.node, self._ranges), above),
                )
            if hi > middle:
                descend(
                    middle,
                    stop,
                    max(lo, middle),
                    hi,
                    (range_hash(start, middle, self.node, self._ranges), above),
                )

        descend(0, self.size, first, end, None)
        return proofs
