"""The pure planning of a redemption batch: the rules of invariants 1 and 2."""

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canasta.domain.errors import (
    CardNotFound,
    CardRevoked,
    CycleClosed,
    IdempotencyKeyReused,
    ProgrammeNotFound,
    QuotaExceeded,
    WrongProgramme,
)
from canasta.domain.ledger import GENESIS_HASH, verify_chain
from canasta.domain.model import (
    Beneficiary,
    BeneficiaryKind,
    Card,
    CardStatus,
    Cycle,
    Entitlement,
    Programme,
)
from canasta.domain.redemption import (
    BatchPlan,
    BatchState,
    Receipt,
    RedeemQuota,
    StoredRedemption,
    plan_batch,
)

VEHICLE = Beneficiary(BeneficiaryKind.VEHICLE, 7)
HOME = Beneficiary(BeneficiaryKind.HOUSEHOLD, 3)


def state(fuel: int = 40_000, existing: dict[str, StoredRedemption] | None = None) -> BatchState:
    fuel_p = Programme("fuel", "litre", BeneficiaryKind.VEHICLE, 30, quota_fixed=40_000, id=1)
    food_p = Programme("food", "kg", BeneficiaryKind.HOUSEHOLD, 30, quota_fixed=1000, id=2)
    closed_p = Programme("gas", "kg", BeneficiaryKind.VEHICLE, 30, quota_fixed=1000, id=3)
    return BatchState(
        existing=existing or {},
        cards={
            "CAR": Card("CAR", VEHICLE),
            "HOME": Card("HOME", HOME),
            "LOST": Card("LOST", VEHICLE, CardStatus.LOST),
        },
        programmes={"fuel": fuel_p, "food": food_p, "gas": closed_p},
        open_cycles={
            1: Cycle(1, date(2026, 11, 1), date(2026, 11, 30), id=10),
            2: Cycle(2, date(2026, 11, 1), date(2026, 11, 30), id=20),
        },
        entitlements={
            (10, VEHICLE): Entitlement(10, 1, VEHICLE, fuel, id=100),
            (20, HOME): Entitlement(20, 2, HOME, 1000, id=200),
        },
        head_seq=0,
        head_hash=GENESIS_HASH,
    )


def plan(commands: list[RedeemQuota], s: BatchState | None = None) -> BatchPlan:
    return plan_batch(commands, s or state(), "2026-11-05T10:00:00.000000Z")


def cmd(card: str = "CAR", quantity: int = 10_000, key: str = "k1", programme: str = "fuel") -> RedeemQuota:
    return RedeemQuota(card, programme, quantity, "fs-1", key)


def test_redemptions_of_one_card_in_one_batch_see_each_other() -> None:
    result = plan([cmd(key="a"), cmd(key="b"), cmd(key="c"), cmd(key="d"), cmd(key="e")])
    outcomes = result.outcomes
    assert [o.remaining for o in outcomes[:4] if isinstance(o, Receipt)] == [30_000, 20_000, 10_000, 0]
    assert isinstance(outcomes[4], QuotaExceeded)
    assert result.deltas == {100: 40_000}
    assert [e.seq for e in result.entries] == [1, 2, 3, 4]
    assert list(verify_chain(result.entries, result.head)) == []


def test_a_retry_in_the_same_batch_gets_the_same_receipt_and_is_recorded_once() -> None:
    result = plan([cmd(key="a"), cmd(key="a")])
    first, second = result.outcomes
    assert isinstance(first, Receipt) and isinstance(second, Receipt)
    assert second.redemption_id == first.redemption_id and second.replayed
    assert len(result.redemptions) == 1


def test_a_retry_of_a_stored_redemption_gets_the_stored_receipt() -> None:
    first = plan([cmd(key="a")])
    receipt = first.outcomes[0]
    assert isinstance(receipt, Receipt)
    stored = {cmd(key="a").key_hash(): StoredRedemption(receipt, cmd(key="a").fingerprint())}
    again = plan([cmd(key="a")], state(existing=stored))
    assert again.redemptions == [] and again.entries == []
    replayed = again.outcomes[0]
    assert isinstance(replayed, Receipt) and replayed.replayed
    assert replayed.redemption_id == receipt.redemption_id


def test_the_same_key_with_another_body_is_refused() -> None:
    result = plan([cmd(key="a"), cmd(key="a", quantity=5_000)])
    assert isinstance(result.outcomes[1], IdempotencyKeyReused)
    assert len(result.redemptions) == 1


@pytest.mark.parametrize(
    ("command", "error"),
    [
        (cmd(card="NOPE"), CardNotFound),
        (cmd(card="LOST"), CardRevoked),
        (cmd(programme="bread"), ProgrammeNotFound),
        (cmd(card="HOME"), WrongProgramme),
        (cmd(programme="gas"), CycleClosed),
        (cmd(quantity=40_001), QuotaExceeded),
    ],
)
def test_refusals_change_nothing(command: RedeemQuota, error: type[Exception]) -> None:
    s = state()
    result = plan([command], s)
    assert isinstance(result.outcomes[0], error)
    assert result.redemptions == [] and result.entries == [] and result.deltas == {}
    assert s.entitlements[(10, VEHICLE)].redeemed == 0


def test_a_refusal_does_not_stop_the_rest_of_the_batch() -> None:
    result = plan([cmd(card="NOPE", key="x"), cmd(key="y"), cmd(quantity=10**9, key="z"), cmd(key="w")])
    kinds = [type(o).__name__ for o in result.outcomes]
    assert kinds == ["CardNotFound", "Receipt", "QuotaExceeded", "Receipt"]
    assert [r.ledger_seq for r in result.redemptions] == [1, 2]


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.integers(1, 15_000), st.integers(0, 12)),  # quantity, key number
        min_size=1,
        max_size=60,
    ),
    st.integers(0, 40_000),
)
def test_no_batch_ever_overdraws_and_each_key_counts_once(
    requests: list[tuple[int, int]], entitled: int
) -> None:
    s = state(fuel=entitled)
    commands = [cmd(quantity=q, key=f"k{k}") for q, k in requests]
    result = plan(commands, s)
    taken = sum(r.quantity for r in result.redemptions)
    assert taken <= entitled
    assert s.entitlements[(10, VEHICLE)].redeemed == taken
    keys = [r.key_hash for r in result.redemptions]
    assert len(keys) == len(set(keys))
    assert list(verify_chain(result.entries, result.head)) == []
    for command, outcome in zip(commands, result.outcomes, strict=True):
        if isinstance(outcome, Receipt):
            assert outcome.quantity == command.quantity
