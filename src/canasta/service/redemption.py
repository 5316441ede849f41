"""Online redemption with group commit.

Every redemption request waits on a future while the desk gathers whatever has queued up
(up to ``max_batch``) and commits it as one transaction. The batch is decided in arrival
order under the ledger lock, so invariant 1 (no overdraft) and invariant 2 (exactly once)
hold exactly as they would one request at a time, and no future is answered before its
batch has committed: every acknowledged redemption is durable.

While one batch commits, the next one fills; the batch size follows the load by itself, so
there is no timer to tune and an idle desk answers a lone request at once.

The desk runs in one of two ways:

- **thread** (``start()``): a writer thread takes redemptions from any thread
  (``submit``/``redeem``) or event loop (``redeem_async``). Used by scripts and tests.
- **inline** (``inline=True``): the server's event loop itself commits a batch between
  reading requests. No thread means no hand-over of Python's interpreter lock for every
  row the database driver touches, which on a two-core machine cost more than the commits.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

from canasta.domain.errors import CanastaError, OutletMismatch, RedemptionRefused, Unavailable
from canasta.domain.redemption import Receipt, RedeemQuota
from canasta.service.clock import utc_now_iso

log = logging.getLogger(__name__)

#: How many times the inline desk lets the event loop run before it closes a batch, so
#: requests that arrived while the last batch committed are parsed and join this one.
_GATHER_ROUNDS = 4


Outcomes = list[Receipt | CanastaError]


class RedemptionStore(Protocol):
    def run_batch(self, commands: Sequence[RedeemQuota], clock: Callable[[], str]) -> Outcomes:
        """Decide and commit ``commands`` as one transaction, reading ``clock`` once, under
        the ledger lock, for the time of every entry."""
        ...


class _Answer(Protocol):
    def done(self) -> bool: ...
    def set_result(self, result: Receipt, /) -> None: ...
    def set_exception(self, exception: BaseException, /) -> None: ...


@dataclass(slots=True)
class _Pending:
    command: RedeemQuota
    future: _Answer


@dataclass(slots=True)
class DeskStats:
    batches: int = 0
    redemptions: int = 0
    largest_batch: int = 0
    failed_batches: int = 0
    busy_seconds: float = 0.0
    slowest_batch_seconds: float = 0.0


class RedemptionDesk:
    """Takes redemptions and commits them in batches (see the module's description)."""

    def __init__(
        self,
        store: RedemptionStore,
        *,
        max_batch: int = 512,
        attempts: int = 3,
        inline: bool = False,
        clock: Callable[[], str] = utc_now_iso,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._attempts = attempts
        self._clock = clock
        self.inline = inline
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._waiting: list[_Pending] = []  # inline mode
        self._drainer: asyncio.Task[None] | None = None
        self.stats = DeskStats()

    # ------------------------------------------------------------------ thread mode

    def start(self) -> RedemptionDesk:
        if self.inline:
            return self
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="canasta-redemption-writer", daemon=True
                )
                self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the writer."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)
        # Anything that slipped in after the stop is answered, not left waiting.
        while True:
            try:
                late = self._queue.get_nowait()
            except queue.Empty:
                break
            if late is not None:
                _settle(late, Unavailable("the redemption desk has stopped; nothing was recorded"))

    def submit(self, command: RedeemQuota, *, acting_outlet: str) -> Future[Receipt]:
        """Queue a redemption made by ``acting_outlet``; an outlet redeems only as itself."""
        future: Future[Receipt] = Future()
        refusal: Exception | None = self._refuse(command, acting_outlet)
        if refusal is None and self._thread is None:
            refusal = Unavailable("the redemption desk is not running")
        if refusal is not None:
            future.set_exception(refusal)
            return future
        self._queue.put(_Pending(command, future))
        return future

    def redeem(self, command: RedeemQuota, *, acting_outlet: str, timeout: float = 60) -> Receipt:
        """Blocking form, for scripts and tests."""
        return self.submit(command, acting_outlet=acting_outlet).result(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._commit(batch)

    # ------------------------------------------------------------------ both modes

    async def redeem_async(self, command: RedeemQuota, *, acting_outlet: str) -> Receipt:
        if not self.inline:
            return await asyncio.wrap_future(self.submit(command, acting_outlet=acting_outlet))
        refusal = self._refuse(command, acting_outlet)
        if refusal is not None:
            raise refusal
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Receipt] = loop.create_future()
        self._waiting.append(_Pending(command, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                seen = -1
                for _ in range(_GATHER_ROUNDS):
                    if len(self._waiting) == seen or len(self._waiting) >= self._max_batch:
                        break
                    seen = len(self._waiting)
                    await asyncio.sleep(0)
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                self._commit(batch)
        finally:
            self._drainer = None

    @staticmethod
    def _refuse(command: RedeemQuota, acting_outlet: str) -> RedemptionRefused | None:
        if command.outlet != acting_outlet:
            return OutletMismatch(f"outlet {acting_outlet!r} cannot redeem in the name of {command.outlet!r}")
        return None

    def _commit(self, batch: list[_Pending]) -> None:
        """Commit ``batch`` and answer every request in it, whatever happens."""
        try:
            self._try_commit(batch)
        except Exception as exc:  # a bug here must not strand the waiters or kill the desk
            log.exception("redemption desk failed on a batch of %d", len(batch))
            self._give_up(batch, exc, time.perf_counter())

    def _try_commit(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        commands = [p.command for p in batch]
        # A batch that fails twice is committed one redemption at a time, so one request the
        # database refuses cannot sink the others with it; a lone one gets every attempt.
        attempts = self._attempts if len(batch) == 1 else min(2, self._attempts)
        error: BaseException | None = None
        for attempt in range(1, attempts + 1):
            try:
                outcomes = self._store.run_batch(commands, self._clock)
            except Exception as exc:  # the whole batch rolled back; nothing was recorded
                error = exc
                log.warning("redemption batch of %d failed (attempt %d): %s", len(batch), attempt, exc)
                if not self.inline:  # never hold up the server's event loop
                    time.sleep(0.01 * attempt)
            else:
                self._answer(batch, outcomes, started)
                return
        if len(batch) > 1:
            for pending in batch:
                self._try_commit([pending])
            return
        self._give_up(batch, error, started)

    def _timed(self, started: float) -> None:
        elapsed = time.perf_counter() - started
        self.stats.batches += 1
        self.stats.busy_seconds += elapsed
        self.stats.slowest_batch_seconds = max(self.stats.slowest_batch_seconds, elapsed)

    def _give_up(self, batch: list[_Pending], error: BaseException | None, started: float) -> None:
        self._timed(started)
        self.stats.failed_batches += 1
        log.error("redemption batch of %d abandoned", len(batch), exc_info=error)
        for pending in batch:
            _settle(
                pending,
                Unavailable(
                    "the redemption may not have been recorded; retry with the same "
                    "idempotency key, which records it at most once"
                ),
            )

    def _answer(self, batch: list[_Pending], outcomes: Outcomes, started: float) -> None:
        self._timed(started)
        self.stats.redemptions += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for pending, outcome in zip(batch, outcomes, strict=True):
            _settle(pending, outcome)


def _settle(pending: _Pending, outcome: Receipt | BaseException) -> None:
    """Answer one waiter, unless it has given up (a cancelled request, say)."""
    if pending.future.done():
        return
    if isinstance(outcome, Receipt):
        pending.future.set_result(outcome)
    else:
        pending.future.set_exception(outcome)
