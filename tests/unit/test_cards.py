import pytest
from hypothesis import given
from hypothesis import strategies as st

from canasta.domain.errors import CardRevoked, Conflict, MalformedCardId
from canasta.domain.model import (
    CARD_ID_LENGTH,
    Beneficiary,
    BeneficiaryKind,
    Card,
    CardStatus,
    _check_symbol,
    format_card_id,
    new_card_id,
    normalise_card_id,
)

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def test_new_card_ids_are_valid_and_distinct() -> None:
    ids = {new_card_id() for _ in range(2000)}
    assert len(ids) == 2000
    for card_id in ids:
        assert len(card_id) == CARD_ID_LENGTH
        assert normalise_card_id(card_id) == card_id


def test_what_a_cashier_types_is_accepted() -> None:
    card_id = new_card_id()
    typed = format_card_id(card_id).lower()
    assert normalise_card_id(typed) == card_id
    assert normalise_card_id(" ".join(format_card_id(card_id).split("-"))) == card_id


def test_letter_o_and_i_read_as_digits() -> None:
    body = "0" * 14 + "1"
    card_id = body + _check_symbol(body)
    assert normalise_card_id(card_id.replace("0", "O").replace("1", "I")) == card_id


@given(st.data())
def test_every_single_symbol_typo_is_caught(data: st.DataObject) -> None:
    card_id = new_card_id()
    position = data.draw(st.integers(0, CARD_ID_LENGTH - 1))
    replacement = data.draw(st.sampled_from([c for c in ALPHABET if c != card_id[position]]))
    typo = card_id[:position] + replacement + card_id[position + 1 :]
    with pytest.raises(MalformedCardId):
        normalise_card_id(typo)


@pytest.mark.parametrize("raw", ["", "ABC", "U" * 16, "!" * 16, "0" * 17])
def test_malformed_ids_are_refused(raw: str) -> None:
    with pytest.raises(MalformedCardId):
        normalise_card_id(raw)


def test_a_withdrawn_card_is_refused_and_cannot_be_withdrawn_twice() -> None:
    card = Card(new_card_id(), Beneficiary(BeneficiaryKind.VEHICLE, 1))
    card.require_active()
    card.withdraw(CardStatus.LOST)
    with pytest.raises(CardRevoked, match="lost"):
        card.require_active()
    with pytest.raises(Conflict):
        card.withdraw(CardStatus.REVOKED)
