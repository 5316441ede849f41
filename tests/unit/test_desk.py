"""The group-commit desk, with an in-memory store: batching, answers, failures."""

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import wait

import pytest

from canasta.domain.errors import CanastaError, OutletMismatch, QuotaExceeded, Unavailable
from canasta.domain.redemption import Receipt, RedeemQuota
from canasta.service.redemption import RedemptionDesk


class FakeStore:
    """Grants everything up to ``limit`` per card; can be told to fail."""

    def __init__(self, limit: int = 10, fail_times: int = 0) -> None:
        self.limit = limit
        self.fail_times = fail_times
        self.batches: list[int] = []
        self.taken: dict[str, int] = {}
        self.gate = threading.Event()
        self.gate.set()

    def run_batch(
        self, commands: Sequence[RedeemQuota], clock: Callable[[], str]
    ) -> list[Receipt | CanastaError]:
        self.gate.wait(5)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("disk on fire")
        self.batches.append(len(commands))
        out: list[Receipt | CanastaError] = []
        for c in commands:
            left = self.limit - self.taken.get(c.card_id, 0)
            if c.quantity > left:
                out.append(QuotaExceeded("no"))
                continue
            self.taken[c.card_id] = self.taken.get(c.card_id, 0) + c.quantity
            out.append(
                Receipt(
                    len(self.taken) + sum(self.batches),
                    c.card_id,
                    c.programme,
                    "l",
                    c.quantity,
                    left - c.quantity,
                    c.outlet,
                    clock(),
                    1,
                    "h",
                )
            )
        return out


def command(n: int, card: str = "C", quantity: int = 1) -> RedeemQuota:
    return RedeemQuota(card, "fuel", quantity, "fs-1", f"k{n}")


def test_requests_waiting_during_a_commit_share_the_next_batch() -> None:
    store = FakeStore(limit=100)
    desk = RedemptionDesk(store).start()
    try:
        store.gate.clear()  # hold the first batch while others queue up
        first = desk.submit(command(0), acting_outlet="fs-1")
        futures = [desk.submit(command(n), acting_outlet="fs-1") for n in range(1, 50)]
        store.gate.set()
        wait([first, *futures], timeout=10)
    finally:
        desk.stop()
    assert all(f.result().quantity == 1 for f in futures)
    assert sum(store.batches) == 50
    assert max(store.batches) > 1, store.batches
    assert desk.stats.largest_batch == max(store.batches)


def test_refusals_are_raised_to_their_own_caller_only() -> None:
    desk = RedemptionDesk(FakeStore(limit=1)).start()
    try:
        ok = desk.redeem(command(1), acting_outlet="fs-1")
        with pytest.raises(QuotaExceeded):
            desk.redeem(command(2), acting_outlet="fs-1")
    finally:
        desk.stop()
    assert ok.remaining == 0


def test_an_outlet_can_only_redeem_as_itself() -> None:
    desk = RedemptionDesk(FakeStore()).start()
    try:
        with pytest.raises(OutletMismatch):
            desk.redeem(command(1), acting_outlet="fs-2")
    finally:
        desk.stop()


def test_a_failing_store_is_retried_then_answered_unavailable() -> None:
    store = FakeStore(fail_times=1)
    desk = RedemptionDesk(store, attempts=2).start()
    try:
        assert desk.redeem(command(1), acting_outlet="fs-1").quantity == 1
        store.fail_times = 5
        with pytest.raises(Unavailable):
            desk.redeem(command(2), acting_outlet="fs-1")
    finally:
        desk.stop()
    assert desk.stats.failed_batches == 1


def test_a_stopped_desk_refuses_rather_than_hangs() -> None:
    desk = RedemptionDesk(FakeStore())
    with pytest.raises(Unavailable):
        desk.redeem(command(1), acting_outlet="fs-1", timeout=1)


def test_stopping_finishes_what_is_queued() -> None:
    store = FakeStore(limit=1000)
    desk = RedemptionDesk(store, max_batch=7).start()
    futures = [desk.submit(command(n), acting_outlet="fs-1") for n in range(100)]
    desk.stop()
    assert all(f.done() and f.result().quantity == 1 for f in futures)
    assert max(store.batches) <= 7


class PickyStore(FakeStore):
    """Fails any batch that holds the card 'BAD', as a database refusing a value would."""

    def run_batch(
        self, commands: Sequence[RedeemQuota], clock: Callable[[], str]
    ) -> list[Receipt | CanastaError]:
        if any(c.card_id == "BAD" for c in commands):
            raise RuntimeError("value refused by the database")
        return super().run_batch(commands, clock)


def test_one_request_the_database_refuses_does_not_sink_its_batch() -> None:
    store = PickyStore(limit=100)
    desk = RedemptionDesk(store).start()
    try:
        store.gate.clear()
        first = desk.submit(command(0), acting_outlet="fs-1")
        others = [
            desk.submit(command(n, card="BAD" if n == 5 else "C"), acting_outlet="fs-1") for n in range(1, 10)
        ]
        store.gate.set()
        wait([first, *others], timeout=10)
    finally:
        desk.stop()
    assert isinstance(others[4].exception(), Unavailable)
    assert [f.result().quantity for i, f in enumerate(others) if i != 4] == [1] * 8


def test_a_waiter_that_gave_up_does_not_stop_the_desk() -> None:
    store = FakeStore(limit=100)
    desk = RedemptionDesk(store).start()
    try:
        store.gate.clear()
        abandoned = desk.submit(command(1), acting_outlet="fs-1")
        abandoned.cancel()
        kept = desk.submit(command(2), acting_outlet="fs-1")
        store.gate.set()
        assert kept.result(10).quantity == 1
        assert desk.redeem(command(3), acting_outlet="fs-1").quantity == 1
    finally:
        desk.stop()


def test_requests_after_a_stop_are_answered() -> None:
    desk = RedemptionDesk(FakeStore()).start()
    desk.stop()
    with pytest.raises(Unavailable):
        desk.redeem(command(1), acting_outlet="fs-1", timeout=1)
