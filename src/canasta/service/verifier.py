"""The public verifier: checks a receipt, or a whole log, with nothing but the log's public
key and the log's public data (its HTTP endpoints, or a copy of its public tables).

Verifying a log rebuilds the Merkle tree from every leaf, in order, and checks that each
checkpoint the log ever signed has a valid signature and names exactly the root of the
rebuilt tree at its size. A log that rewrote, dropped, inserted or reordered a leaf after
signing a checkpoint over it fails at that checkpoint; one that shows two different trees
fails at the first checkpoint of the other tree.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import httpx
import sqlalchemy as sa

from canasta.adapters import log_repo
from canasta.adapters.db import transaction
from canasta.domain.errors import InvalidInput
from canasta.domain.merkle import Frontier, leaf_hash, verify_consistency
from canasta.domain.receipt import LogReceipt, Verified, verify_receipt
from canasta.domain.signed_note import BadNote, Checkpoint, Verifier, open_note
from canasta.domain.transparency import (
    NO_CHECKPOINT,
    checkpoint_prev,
    note_hash,
    tile_path,
)

#: Leaves fetched per request (a multiple of 256, so requests line up with entry bundles).
CHUNK = 256 * 256


class Unreachable(InvalidInput):
    code = "log-unreachable"


class LogSource(Protocol):
    def latest(self) -> str: ...
    def checkpoints(self) -> Iterator[str]: ...
    def commitments(self, start: int, end: int) -> list[bytes]: ...


class HttpLog:
    """A log served by ``canasta serve`` (or any host of its /log/v1 files)."""

    def __init__(
        self, base_url: str, client: httpx.Client | None = None, fetchers: int = 4, bulk: bool = True
    ) -> None:
        self.base = base_url.rstrip("/")
        self.client = client or httpx.Client(timeout=30)
        self._pool = ThreadPoolExecutor(fetchers, thread_name_prefix="canasta-verify")
        self._bulk = bulk  # until the host shows it has no /log/v1/leaves

    def _get(self, path: str, **params: int) -> httpx.Response:
        url = f"{self.base}/log/v1/{path}"
        try:
            response = self.client.get(url, params=params or None)
        except httpx.HTTPError as error:
            raise Unreachable(f"{url} did not answer: {error}") from None
        if response.status_code != 200:
            raise Unreachable(f"{url} answered {response.status_code}: {response.text[:200]}")
        return response

    def key(self) -> str:
        return self._get("key").text.strip()

    def latest(self) -> str:
        return self._get("checkpoint").text

    def checkpoints(self) -> Iterator[str]:
        after: int | None = 0
        while after is not None:
            page = self._get("checkpoints", after=after, limit=5000).json()
            for item in page["checkpoints"]:
                yield str(item["note"])
            after = page["next_after"]

    def commitments(self, start: int, end: int) -> list[bytes]:
        """Leaves ``start`` to ``end - 1``: in one request from canasta's ``/log/v1/leaves``,
        or, from a host that serves only tlog-tiles, from entry bundles fetched a few at a
        time."""
        if self._bulk:
            url = f"{self.base}/log/v1/leaves"
            try:
                response = self.client.get(url, params={"start": start, "count": end - start})
            except httpx.HTTPError as error:
                raise Unreachable(f"{url} did not answer: {error}") from None
            if response.status_code == 200 and len(response.content) == 32 * (end - start):
                data = response.content
                return [data[i : i + 32] for i in range(0, len(data), 32)]
            if response.status_code != 404:
                raise Unreachable(f"{url} answered {response.status_code}: {response.text[:200]}")
            self._bulk = False

        def bundle(index: int) -> list[bytes]:
            width = min(256, end - index * 256)
            data = self._get(f"tile/entries/{tile_path(index, None if width == 256 else width)}").content
            return _unbundle(data)[max(0, start - index * 256) : width]

        found: list[bytes] = []
        for entries in self._pool.map(bundle, range(start // 256, (end + 255) // 256)):
            found.extend(entries)
        return found

    def consistency(self, old: int, new: int) -> list[bytes]:
        proof = self._get("proof/consistency", **{"from": old, "to": new}).json()["proof"]
        return [base64.b64decode(p) for p in proof]


def _unbundle(data: bytes) -> list[bytes]:
    entries, at = [], 0
    while at < len(data):
        if at + 2 > len(data):
            raise InvalidInput("an entry bundle ends in the middle of a length")
        length = int.from_bytes(data[at : at + 2], "big")
        entries.append(data[at + 2 : at + 2 + length])
        at += 2 + length
    return entries


class DatabaseLog:
    """A copy of the log's public tables (checkpoints and the commitments column)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def latest(self) -> str:
        with transaction(self.engine, write=False) as conn:
            found = log_repo.latest_checkpoint(conn)
        if found is None:
            raise InvalidInput("the database holds no signed checkpoint")
        return found.note

    def checkpoints(self) -> Iterator[str]:
        with transaction(self.engine, write=False) as conn:
            for checkpoint in log_repo.iter_checkpoints(conn):
                yield checkpoint.note

    def commitments(self, start: int, end: int) -> list[bytes]:
        with transaction(self.engine, write=False) as conn:
            try:
                return log_repo.commitments(conn, start, end)
            except LookupError as missing:
                raise InvalidInput(str(missing)) from None


@dataclass(slots=True)
class LogReport:
    origin: str = ""
    size: int = 0
    checkpoints: int = 0
    leaves: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _open(note: str, verifiers: list[Verifier]) -> Checkpoint:
    return Checkpoint.parse(open_note(note, verifiers))


def verify_log(
    source: LogSource,
    verifiers: list[Verifier],
    progress: Callable[[int, int], None] | None = None,
) -> LogReport:
    """Rebuild the tree from every leaf and check every signed checkpoint against it."""
    started = time.perf_counter()
    report = LogReport()
    try:
        latest = _open(source.latest(), verifiers)
    except BadNote as bad:
        report.problems.append(f"the latest checkpoint does not verify: {bad.message}")
        return report
    report.origin, report.size = latest.origin, latest.size
    pending: list[Checkpoint] = []
    last_size, last_note = 0, None
    for note in source.checkpoints():
        try:
            checkpoint = _open(note, verifiers)
        except BadNote as bad:
            report.problems.append(f"a checkpoint does not verify ({bad.message}): {note.splitlines()[:2]}")
            continue
        if checkpoint.size > latest.size:
            break  # signed after the latest was fetched: a live log; the next run checks it
        if checkpoint.origin != latest.origin:
            report.problems.append(
                f"checkpoint of size {checkpoint.size} names another log, {checkpoint.origin!r}"
            )
        if checkpoint.size <= last_size:
            report.problems.append(
                f"checkpoint of size {checkpoint.size} is out of order after size {last_size}"
            )
            continue
        expected = NO_CHECKPOINT if last_note is None else note_hash(last_note)
        if checkpoint_prev(checkpoint) != expected:
            report.problems.append(
                f"checkpoint of size {checkpoint.size} does not name the checkpoint before it: a "
                "published checkpoint is missing or was replaced"
            )
        # Times are not required to rise: a server's clock may be set back; the chain orders.
        last_size, last_note = checkpoint.size, note
        pending.append(checkpoint)
    if not pending or pending[-1].size != latest.size or pending[-1].root != latest.root:
        report.problems.append(
            f"the latest checkpoint (size {latest.size}) is not the last of the published checkpoints"
        )
    frontier = Frontier()
    position = 0
    for start in range(0, latest.size, CHUNK):
        end = min(latest.size, start + CHUNK)
        for data in source.commitments(start, end):
            frontier.append(leaf_hash(data))
            while position < len(pending) and pending[position].size == frontier.size:
                checkpoint = pending[position]
                if checkpoint.root != frontier.root():
                    report.problems.append(
                        f"checkpoint of size {checkpoint.size} does not match the log's leaves: a leaf "
                        f"at or before index {checkpoint.size - 1} was changed, added, dropped or moved "
                        "after it was signed"
                    )
                report.checkpoints += 1
                position += 1
        if progress:
            progress(end, latest.size)
    report.leaves = frontier.size
    if frontier.size != latest.size:
        report.problems.append(f"the log holds {frontier.size} leaves, its checkpoint says {latest.size}")
    for checkpoint in pending[position:]:
        report.problems.append(
            f"checkpoint of size {checkpoint.size} is beyond the log's {frontier.size} leaves"
        )
    report.seconds = time.perf_counter() - started
    return report


@dataclass(frozen=True, slots=True)
class ReceiptReport:
    verified: Verified
    #: The log's latest tree, when it was asked, and whether it extends the receipt's.
    latest_size: int | None = None


def verify_receipt_file(text: str, verifiers: list[Verifier], log: HttpLog | None = None) -> ReceiptReport:
    """Check a receipt offline; with ``log``, also that the log's latest checkpoint extends
    the receipt's (a consistency proof), so the entry is still in the log as it is now."""
    verified = verify_receipt(LogReceipt.from_json(text), verifiers)
    if log is None:
        return ReceiptReport(verified)
    latest = _open(log.latest(), verifiers)
    old = verified.checkpoint
    if latest.size < old.size:
        raise InvalidInput(
            f"the log now shows {latest.size} entries, fewer than the {old.size} that the receipt's "
            "checkpoint signed"
        )
    proof = log.consistency(old.size, latest.size) if latest.size > old.size else []
    if not verify_consistency(old.size, latest.size, old.root, latest.root, proof):
        raise InvalidInput(
            f"the log's tree of {latest.size} entries does not extend the tree of {old.size} the receipt was "
            "proved against: the log has been rewritten"
        )
    return ReceiptReport(verified, latest.size)
