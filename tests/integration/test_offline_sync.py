"""The server's side of offline outlets: enrolment, the allowance, and journal sync, on
SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canasta.adapters.redemption_repo import SqlRedemptionStore
from canasta.adapters.tables import ledger_entries, offline_conflicts, outlet_journal
from canasta.domain.errors import Conflict, InvalidInput
from canasta.domain.model import CardStatus
from canasta.domain.offline import JournalEntry, SignedEntry, public_key_text, sign_entry
from canasta.domain.redemption import Receipt, RedeemQuota
from canasta.service import offline
from canasta.service.audit import run_audit
from canasta.service.cards import card_balance, withdraw_card
from tests.helpers import World, build_world

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
AT = "2026-11-29T10:00:00Z"


def enrolled(engine: sa.Engine) -> World:
    world = build_world(engine, households=2, vehicles=3)
    offline.enrol(engine, "fs-1", public_key_text(KEY.public_key()))
    return world


def entry(counter: int, card: str, litres: int, outlet: str = "fs-1") -> SignedEntry:
    return sign_entry(JournalEntry(outlet, counter, card, "fuel", litres * 1000, AT), KEY)


def fuel_left(engine: sa.Engine, card: str) -> int:
    _, lines = card_balance(engine, card)
    return next(line.remaining for line in lines if line.programme == "fuel")


def counts(engine: sa.Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return (
            conn.scalar(sa.select(sa.func.count()).select_from(outlet_journal)) or 0,
            conn.scalar(sa.select(sa.func.count()).select_from(offline_conflicts)) or 0,
            conn.scalar(sa.select(sa.func.count()).select_from(ledger_entries)) or 0,
        )


def test_the_allowance_carries_the_share_the_reference_and_the_daily_cap(engine: sa.Engine) -> None:
    enrolled(engine)
    assert offline.allowances(engine, "fs-1") == []  # no share, no cap: nothing offline
    assert offline.set_offline_share(engine, "fuel", "0.25") == 250
    assert offline.allowances(engine, "fs-1") == []  # still no cap for this outlet
    offline.set_daily_cap(engine, "fs-1", "fuel", "100")
    (fuel,) = offline.allowances(engine, "fs-1")
    assert (fuel.programme, fuel.share_permille, fuel.reference, fuel.daily_cap) == (
        "fuel",
        250,
        40_000,
        100_000,
    )
    assert fuel.card_cap(None) == 10_000
    with pytest.raises(InvalidInput, match="not between 0 and 1"):
        offline.set_offline_share(engine, "fuel", "1.5")


def test_a_journal_is_redeemed_once_however_often_it_is_sent(engine: sa.Engine) -> None:
    world = enrolled(engine)
    car = next(iter(world.vehicle_cards.values()))
    batch = [entry(1, car, 10), entry(2, car, 5)]
    report = offline.sync(engine, "fs-1", batch)
    assert [(o.counter, o.outcome, o.applied) for o in report.outcomes] == [
        (1, "redeemed", 10_000),
        (2, "redeemed", 5_000),
    ]
    assert fuel_left(engine, car) == 25_000
    before = counts(engine)
    again = offline.sync(engine, "fs-1", batch)
    assert [o.outcome for o in again.outcomes] == ["already", "already"]
    assert counts(engine) == before and fuel_left(engine, car) == 25_000
    assert report.gaps == [] and report.highest == 2
    assert run_audit(engine).ok


def test_an_entry_that_reached_the_server_online_is_not_counted_again(engine: sa.Engine) -> None:
    world = enrolled(engine)
    car = next(iter(world.vehicle_cards.values()))
    signed = entry(1, car, 12)
    (online,) = SqlRedemptionStore(engine).run_batch(
        [RedeemQuota(car, "fuel", 12_000, "fs-1", signed.entry.idempotency_key)], lambda: AT
    )
    assert isinstance(online, Receipt)
    (outcome,) = offline.sync(engine, "fs-1", [signed]).outcomes
    assert (outcome.outcome, outcome.ledger_seq) == ("replayed", online.ledger_seq)
    assert fuel_left(engine, car) == 28_000


def test_what_the_balance_does_not_cover_is_kept_as_a_conflict_not_dropped(engine: sa.Engine) -> None:
    world = enrolled(engine)
    car = next(iter(world.vehicle_cards.values()))  # 40 L this cycle
    report = offline.sync(engine, "fs-1", [entry(1, car, 30), entry(2, car, 20), entry(3, car, 5)])
    assert [(o.outcome, o.applied, o.shortfall) for o in report.outcomes] == [
        ("redeemed", 30_000, 0),
        ("conflict", 10_000, 10_000),  # what was left was recorded; the rest is the conflict
        ("conflict", 0, 5_000),
    ]
    assert fuel_left(engine, car) == 0
    conflicts = offline.open_conflicts(engine, "fs-1")
    assert [(c.counter, c.applied, c.shortfall) for c in conflicts] == [(2, 10_000, 10_000), (3, 0, 5_000)]
    assert run_audit(engine).ok
    offline.settle_conflict(engine, conflicts[0].id, "Rosa Díaz", "recovered 10 L from the holder")
    assert [c.counter for c in offline.open_conflicts(engine)] == [3]
    with pytest.raises(Conflict, match="already settled"):
        offline.settle_conflict(engine, conflicts[0].id, "Rosa Díaz", "again")
    with pytest.raises(InvalidInput, match="needs a note"):
        offline.settle_conflict(engine, conflicts[1].id, "Rosa Díaz", " ")


def test_a_withdrawn_card_redeemed_offline_is_a_conflict(engine: sa.Engine) -> None:
    world = enrolled(engine)
    car = next(iter(world.vehicle_cards.values()))
    withdraw_card(engine, car, CardStatus.REVOKED)
    (outcome,) = offline.sync(engine, "fs-1", [entry(1, car, 10)]).outcomes
    assert outcome.outcome == "conflict" and outcome.shortfall == 10_000 and "is revoked" in outcome.reason


def test_a_forged_entry_refuses_the_whole_batch(engine: sa.Engine) -> None:
    world = enrolled(engine)
    car = next(iter(world.vehicle_cards.values()))
    good = entry(1, car, 10)
    forged = SignedEntry(JournalEntry("fs-1", 2, car, "fuel", 1_000, AT), entry(2, car, 40).signature)
    before = counts(engine)
    with pytest.raises(InvalidInput, match="journal entry 2: the signature does not verify"):
        offline.sync(engine, "fs-1", [good, forged])
    assert counts(engine) == before and fuel_left(engine, car) == 40_000
    with pytest.raises(InvalidInput, match="is outlet 'shop-1''s, not 'fs-1''s"):
        offline.sync(engine, "fs-1", [entry(3, car, 1, outlet="shop-1")])


def test_a_counter_reused_with_other_content_is_refused(engine: sa.Engine) -> None:
    world = enrolled(engine)
    car = next(iter(world.vehicle_cards.values()))
    offline.sync(engine, "fs-1", [entry(1, car, 10)])
    with pytest.raises(Conflict, match="journal entry 1 was synced before with other content"):
        offline.sync(engine, "fs-1", [entry(1, car, 11)])


def test_gaps_in_the_counters_are_reported(engine: sa.Engine) -> None:
    world = enrolled(engine)
    car = next(iter(world.vehicle_cards.values()))
    report = offline.sync(engine, "fs-1", [entry(1, car, 1), entry(2, car, 1), entry(5, car, 1)])
    assert report.gaps == [(3, 4)] and report.highest == 5
    assert offline.sync(engine, "fs-1", [entry(3, car, 1), entry(4, car, 1)]).gaps == []


def test_an_outlet_without_a_key_or_with_another_key_cannot_sync(engine: sa.Engine) -> None:
    world = build_world(engine, households=2, vehicles=1)
    car = next(iter(world.vehicle_cards.values()))
    with pytest.raises(Conflict, match="has not enrolled a journal key"):
        offline.sync(engine, "fs-1", [entry(1, car, 1)])
    offline.enrol(engine, "fs-1", public_key_text(KEY.public_key()))
    offline.enrol(engine, "fs-1", public_key_text(KEY.public_key()))  # again: harmless
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(5, 37)))
    with pytest.raises(Conflict, match="already enrolled with another journal key"):
        offline.enrol(engine, "fs-1", public_key_text(other.public_key()))


def test_a_void_entry_hands_nothing_out_unless_the_server_had_redeemed_it(engine: sa.Engine) -> None:
    world = enrolled(engine)
    car = next(iter(world.vehicle_cards.values()))
    void = sign_entry(JournalEntry("fs-1", 1, car, "fuel", 10_000, AT, void=True), KEY)
    (outcome,) = offline.sync(engine, "fs-1", [void]).outcomes
    assert outcome.outcome == "void" and fuel_left(engine, car) == 40_000
    # An online attempt the server committed but whose answer never reached the outlet,
    # which then handed nothing out: kept for a person, never silently reversed.
    lost = sign_entry(JournalEntry("fs-1", 2, car, "fuel", 5_000, AT, void=True), KEY)
    SqlRedemptionStore(engine).run_batch(
        [RedeemQuota(car, "fuel", 5_000, "fs-1", lost.entry.idempotency_key)], lambda: AT
    )
    (outcome,) = offline.sync(engine, "fs-1", [lost]).outcomes
    assert outcome.outcome == "conflict" and "never got" in outcome.reason and outcome.ledger_seq is not None
    assert [c.counter for c in offline.open_conflicts(engine)] == [2]


def test_the_audit_names_a_synced_entry_that_does_not_match_its_redemption(engine: sa.Engine) -> None:
    world = enrolled(engine)
    car = next(iter(world.vehicle_cards.values()))
    offline.sync(engine, "fs-1", [entry(1, car, 30), entry(2, car, 20)])  # 2 is a conflict
    assert run_audit(engine).ok
    with engine.begin() as conn:
        seqs = dict(conn.execute(sa.select(outlet_journal.c.counter, outlet_journal.c.ledger_seq)).all())
        conn.execute(outlet_journal.update().where(outlet_journal.c.counter == 1).values(ledger_seq=seqs[2]))
        conn.execute(outlet_journal.update().where(outlet_journal.c.counter == 2).values(outcome="redeemed"))
    problems = run_audit(engine).problems
    assert any("outlet fs-1 journal entry 1 names ledger entry" in p for p in problems)
    assert any(
        "offline conflict of outlet fs-1 entry 2 has no journal entry in conflict" in p for p in problems
    )


def test_the_audit_names_a_redemption_that_arrived_after_its_entry_was_synced_void(engine: sa.Engine) -> None:
    world = enrolled(engine)
    car = next(iter(world.vehicle_cards.values()))
    void = sign_entry(JournalEntry("fs-1", 1, car, "fuel", 3_000, AT, void=True), KEY)
    assert offline.sync(engine, "fs-1", [void]).outcomes[0].outcome == "void"
    SqlRedemptionStore(engine).run_batch([RedeemQuota(car, "fuel", 3_000, "fs-1", "journal-1")], lambda: AT)
    assert any("synced as void, but a redemption" in p for p in run_audit(engine).problems)
