"""The outlet's signed journal entries and the offline allowance."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from canasta.domain.errors import InvalidInput
from canasta.domain.offline import (
    Allowance,
    JournalEntry,
    OfflineLimit,
    SignedEntry,
    entry_signature_ok,
    public_key_from_text,
    public_key_text,
    sign_entry,
)

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ENTRY = JournalEntry("fs-1", 7, "K7Q2M9XD4R1TZP8C", "fuel", 12_500, "2026-11-29T10:00:00Z")
FUEL = Allowance("fuel", "litre", 3, "2026-11-01", "2026-11-30", 250, 40_000, 500_000)


def test_a_signed_entry_verifies_and_survives_its_json() -> None:
    signed = sign_entry(ENTRY, KEY)
    assert entry_signature_ok(signed, KEY.public_key())
    again = SignedEntry.from_dict(signed.as_dict())
    assert again == signed and entry_signature_ok(
        again, public_key_from_text(public_key_text(KEY.public_key()))
    )
    assert ENTRY.idempotency_key == "journal-7"


@pytest.mark.parametrize(
    "change",
    [
        {"quantity": 12_501},
        {"counter": 8},
        {"card_id": "K7Q2M9XD4R1TZP8D"},
        {"programme": "food"},
        {"outlet": "fs-2"},
        {"recorded_at": "2026-11-29T10:00:01Z"},
        {"void": True},
    ],
)
def test_any_change_to_a_signed_entry_breaks_its_signature(change: dict[str, object]) -> None:
    signed = sign_entry(ENTRY, KEY)
    forged = SignedEntry(dataclasses.replace(ENTRY, **change), signed.signature)  # type: ignore[arg-type]
    assert not entry_signature_ok(forged, KEY.public_key())


def test_another_outlets_key_does_not_verify() -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    assert not entry_signature_ok(sign_entry(ENTRY, KEY), other.public_key())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**ENTRY.as_dict(), "counter": "7"}, "entry 3: 'counter' must be an integer"),
        ({**ENTRY.as_dict(), "counter": 0}, "entry 3: journal counter 0 is not a positive number"),
        ({**ENTRY.as_dict(), "quantity": -5}, "entry 3: journal entry 7: the quantity must be positive"),
        ({**ENTRY.as_dict(), "card": ""}, "entry 3: 'card' must be a non-empty string"),
        ({**ENTRY.as_dict(), "signature": "not base64!"}, "entry 3: 'signature' is not base64"),
        ({**ENTRY.as_dict(), "signature": "AAAA"}, "entry 3: 'signature' must be 64 bytes"),
        ([1, 2], "entry 3: a journal entry is an object"),
        ({**ENTRY.as_dict(), "void": "yes"}, "entry 3: 'void' must be true or false"),
    ],
)
def test_malformed_entries_say_what_and_where(data: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        SignedEntry.from_dict(data, "entry 3")


def test_the_card_cap_is_a_share_of_the_known_or_reference_entitlement() -> None:
    assert FUEL.card_cap(None) == 10_000  # a quarter of the 40 L reference
    assert FUEL.card_cap(80_000) == 20_000  # a quarter of what this card is entitled to
    FUEL.check(10_000, 0, 0, None)
    with pytest.raises(OfflineLimit, match=r"may take 2\.5 litre more of fuel offline here this cycle"):
        FUEL.check(5_000, 7_500, 0, None)
    with pytest.raises(OfflineLimit, match="this outlet may hand out 1 litre more of fuel offline today"):
        FUEL.check(2_000, 0, 499_000, 80_000)
    with pytest.raises(OfflineLimit, match="cannot be redeemed offline"):
        dataclasses.replace(FUEL, share_permille=0).check(1, 0, 0, None)


@given(
    share=st.integers(0, 1000),
    reference=st.integers(0, 200_000),
    daily=st.integers(0, 1_000_000),
    known=st.one_of(st.none(), st.integers(0, 200_000)),
    asks=st.lists(st.integers(1, 60_000), max_size=40),
)
def test_what_the_checks_let_through_never_exceeds_either_cap(
    share: int, reference: int, daily: int, known: int | None, asks: list[int]
) -> None:
    allowance = dataclasses.replace(FUEL, share_permille=share, reference=reference, daily_cap=daily)
    card = day = 0
    for quantity in asks:
        try:
            allowance.check(quantity, card, day, known)
        except OfflineLimit:
            continue
        card += quantity
        day += quantity
    assert card <= allowance.card_cap(known)
    assert day <= daily
