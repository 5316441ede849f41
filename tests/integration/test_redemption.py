"""Online redemption on the real databases: invariants 1 (no overdraft), 2 (exactly once)
and 7 (nothing lost), under concurrency."""

import asyncio
import random
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from canasta.adapters.db import make_engine
from canasta.adapters.redemption_repo import SqlRedemptionStore
from canasta.adapters.tables import cards, entitlements, redemptions
from canasta.domain.card_token import CardExpired
from canasta.domain.errors import CardRevoked, QuotaExceeded, RedemptionRefused
from canasta.domain.model import CardStatus, format_card_id
from canasta.domain.redemption import Receipt, RedeemQuota
from canasta.service import cards as card_service
from canasta.service.audit import run_audit
from canasta.service.redemption import RedemptionDesk
from tests.helpers import build_world


def test_a_redemption_is_recorded_with_its_receipt(engine: sa.Engine) -> None:
    world = build_world(engine)
    desk = RedemptionDesk(SqlRedemptionStore(engine)).start()
    card = world.vehicle_cards["AB0001"]
    try:
        receipt = desk.redeem(RedeemQuota(card, "fuel", 12_500, "fs-1", "k1"), acting_outlet="fs-1")
        again = desk.redeem(RedeemQuota(card, "fuel", 12_500, "fs-1", "k1"), acting_outlet="fs-1")
    finally:
        desk.stop()
    assert receipt.remaining == 27_500 and receipt.unit == "litre"
    assert again.replayed and again.redemption_id == receipt.redemption_id
    assert again.ledger_seq == receipt.ledger_seq and again.entry_hash == receipt.entry_hash
    _, (line,) = card_service.card_balance(engine, card)
    assert (line.entitled, line.redeemed) == (40_000, 12_500)
    assert run_audit(engine).ok


def test_a_reissued_card_carries_the_balance_and_the_old_one_is_refused(engine: sa.Engine) -> None:
    world = build_world(engine)
    old = world.vehicle_cards["AB0002"]
    store = SqlRedemptionStore(engine)
    store.run_batch([RedeemQuota(old, "fuel", 30_000, "fs-1", "a")], lambda: "2026-11-05T00:00:00.000000Z")
    new = card_service.reissue_card(engine, old)
    outcomes = store.run_batch(
        [
            RedeemQuota(old, "fuel", 1000, "fs-1", "b"),
            RedeemQuota(new.id, "fuel", 10_001, "fs-1", "c"),
            RedeemQuota(new.id, "fuel", 10_000, "fs-1", "d"),
        ],
        lambda: "2026-11-05T00:01:00.000000Z",
    )
    assert isinstance(outcomes[0], CardRevoked)
    assert isinstance(outcomes[1], QuotaExceeded)
    assert isinstance(outcomes[2], Receipt) and outcomes[2].remaining == 0
    with pytest.raises(CardRevoked):
        card_service.card_balance(engine, old)
    with pytest.raises(CardRevoked, match="already replaced"):
        card_service.reissue_card(engine, old)
    assert run_audit(engine).ok


def test_withdrawing_a_card_is_recorded_in_the_ledger(engine: sa.Engine) -> None:
    world = build_world(engine)
    card = card_service.withdraw_card(engine, world.household_cards["H1"], CardStatus.REVOKED)
    assert card.status is CardStatus.REVOKED
    report = run_audit(engine)
    assert report.ok and report.entries == 5  # two policies, two cycles opened, one card withdrawn


def _hammer(
    desks: list[RedemptionDesk], cards: list[str], requests: int, seed: int
) -> list[tuple[RedeemQuota, Receipt | RedemptionRefused]]:
    """Fire ``requests`` redemptions from 32 threads at a few cards, a fifth of them retries
    of earlier keys; return each command with its outcome."""
    rng = random.Random(seed)
    commands: list[RedeemQuota] = []
    for n in range(requests):
        if commands and rng.random() < 0.2:
            commands.append(rng.choice(commands))  # a retry: same key, same body
        else:
            commands.append(
                RedeemQuota(rng.choice(cards), "fuel", rng.choice([1000, 2500, 7000]), "fs-1", f"k{n}")
            )
    start = threading.Barrier(32)

    def fire(chunk: list[RedeemQuota], desk: RedemptionDesk) -> list[Receipt | RedemptionRefused]:
        start.wait()
        futures: list[Future[Receipt]] = [desk.submit(c, acting_outlet="fs-1") for c in chunk]
        out: list[Receipt | RedemptionRefused] = []
        for f in futures:
            try:
                out.append(f.result(60))
            except RedemptionRefused as refusal:
                out.append(refusal)
        return out

    chunks = [commands[i::32] for i in range(32)]
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(fire, chunks, [desks[i % len(desks)] for i in range(32)]))
    return [pair for chunk, res in zip(chunks, results, strict=True) for pair in zip(chunk, res, strict=True)]


@pytest.mark.parametrize("writers", [1, 3])
def test_simultaneous_redemptions_never_overdraw_and_count_once(
    engine: sa.Engine, database_url: str, writers: int
) -> None:
    """Many simultaneous redemptions at three cards (40 L each), with retries and several
    redemptions of one card in the same batch; with ``writers`` > 1, separate desks on
    separate engines compete like separate server processes."""
    world = build_world(engine, households=2, vehicles=3)
    cards = list(world.vehicle_cards.values())
    engines = [engine] + [make_engine(database_url) for _ in range(writers - 1)]
    desks = [RedemptionDesk(SqlRedemptionStore(e), max_batch=64).start() for e in engines]
    try:
        results = _hammer(desks, cards, requests=600, seed=writers)
    finally:
        for desk in desks:
            desk.stop()
        for extra in engines[1:]:
            extra.dispose()
    by_key: dict[str, set[int]] = {}
    for command, outcome in results:
        assert isinstance(outcome, Receipt | QuotaExceeded), outcome
        if isinstance(outcome, Receipt):
            by_key.setdefault(command.idempotency_key, set()).add(outcome.redemption_id)
    assert all(len(ids) == 1 for ids in by_key.values()), "a retry got a different receipt"
    assert sum(d.stats.largest_batch for d in desks) > len(desks), "redemptions were never batched"
    with engine.connect() as conn:
        stored = conn.execute(
            sa.select(redemptions.c.key_hash, redemptions.c.card_id, redemptions.c.quantity)
        ).all()
        balances = dict(
            conn.execute(
                sa.select(entitlements.c.id, entitlements.c.redeemed).where(
                    entitlements.c.beneficiary_kind == "vehicle"
                )
            ).all()
        )
    assert len(stored) == len(by_key), "every acknowledged redemption is stored, once"
    hashes = {command.idempotency_key: command.key_hash() for command, _ in results}
    assert {k for k, _, _ in stored} == {hashes[key] for key in by_key}
    for card in cards:
        taken = sum(q for _, c, q in stored if c == card)
        assert taken <= 40_000
        assert taken > 40_000 - 7000, "a card was left with room for another redemption"
    assert sum(balances.values()) == sum(q for _, _, q in stored)
    report = run_audit(engine)
    assert report.ok, report.problems


def test_the_servers_inline_desk_batches_without_overdraft(engine: sa.Engine) -> None:
    """The desk as ``canasta serve`` runs it: on the event loop, many requests in flight."""
    world = build_world(engine, households=2, vehicles=2)
    cards = list(world.vehicle_cards.values())
    desk = RedemptionDesk(SqlRedemptionStore(engine), inline=True, max_batch=32)
    rng = random.Random(7)
    commands = [RedeemQuota(rng.choice(cards), "fuel", 3000, "fs-1", f"k{n}") for n in range(60)]
    commands += [rng.choice(commands) for _ in range(20)]  # retries, some in the same batch

    async def fire() -> list[Receipt | BaseException]:
        return await asyncio.gather(
            *(desk.redeem_async(c, acting_outlet="fs-1") for c in commands), return_exceptions=True
        )

    outcomes = asyncio.run(fire())
    receipts = {
        c.idempotency_key: o for c, o in zip(commands, outcomes, strict=True) if isinstance(o, Receipt)
    }
    refusals = [o for o in outcomes if not isinstance(o, Receipt)]
    assert all(isinstance(o, QuotaExceeded) for o in refusals), refusals
    assert desk.stats.largest_batch > 1
    # 40 L per vehicle in 3 L steps: 13 redemptions each, whatever the order and batching.
    assert len(receipts) == 26
    for command, outcome in zip(commands, outcomes, strict=True):
        if isinstance(outcome, Receipt):
            assert outcome.redemption_id == receipts[command.idempotency_key].redemption_id
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(redemptions)) == 26
    assert run_audit(engine).ok


def test_a_typed_card_id_is_held_to_the_cards_expiry(engine: sa.Engine) -> None:
    """The expiry a scanned code carries holds for a typed id too: five years from issue."""
    world = build_world(engine)
    card = world.vehicle_cards["AB0001"]
    with engine.begin() as conn:
        conn.execute(cards.update().where(cards.c.id == card).values(issued_at="2021-11-04T09:00:00.000000Z"))
    store = SqlRedemptionStore(engine)
    (last_day,) = store.run_batch(
        [RedeemQuota(card, "fuel", 1_000, "fs-1", "a")], lambda: "2026-11-04T23:59:59.000000Z"
    )
    assert isinstance(last_day, Receipt)
    (refused,) = store.run_batch(
        [RedeemQuota(card, "fuel", 1_000, "fs-1", "b")], lambda: "2026-11-05T00:00:00.000000Z"
    )
    assert isinstance(refused, CardExpired)
    assert (
        str(refused)
        == f"card {format_card_id(card)} expired on 2026-11-04; a new card is issued at the registry office"
    )
