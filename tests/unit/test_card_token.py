"""Signed card codes and the revocation list: what verifies offline, and every way a forged,
altered, malformed, early or late card is refused, each with its reason."""

import re
from datetime import UTC, date, datetime

import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from canasta.domain.card_token import (
    CARD_VALIDITY_YEARS,
    PAYLOAD_LENGTH,
    BadCard,
    BadRevocationList,
    CardExpired,
    CardNotYetValid,
    CardSignatureInvalid,
    UnknownCardIssuer,
    card_from_scan,
    expiry_for,
    read_card,
    read_revocations,
    revocation_note,
    sign_card,
)
from canasta.domain.errors import InvalidInput, MalformedCardId
from canasta.domain.model import _ALPHABET, CardStatus, _check_symbol, format_card_id
from canasta.domain.signed_note import Signer, Verifier
from canasta.service.keys import fixed_keyring

ISSUER = fixed_keyring(b"card tests").issuer
KEYS = [ISSUER.verifier]
STRANGER = fixed_keyring(b"someone else", name="canasta.other").issuer
CARD = "K7Q2M9XD4R1TZP8" + _check_symbol("K7Q2M9XD4R1TZP8")
OTHER_CARD = "ABCDEFGHJKMNPQR" + _check_symbol("ABCDEFGHJKMNPQR")
ISSUED = date(2026, 11, 2)
TODAY = date(2027, 1, 15)
#: What a QR code's alphanumeric mode can hold.
QR_ALPHANUMERIC = re.compile(r"[0-9A-Z $%*+\-./:]+")


def payload(card: str = CARD, issued: date = ISSUED, signer: Signer = ISSUER) -> str:
    return sign_card(signer, card, issued)


def with_field(text: str, index: int, value: str) -> str:
    fields = text.split(".")
    fields[index] = value
    return ".".join(fields)


def test_a_card_code_round_trips_and_holds_only_id_key_dates_and_signature() -> None:
    code = payload()
    token = read_card(code, KEYS, TODAY)
    assert token.card_id == CARD
    assert token.issuer == ISSUER.name
    assert token.key_id == ISSUER.verifier.id
    assert (token.issued_on, token.expires_on) == (ISSUED, date(2031, 11, 2))
    tag, card, key, issued, expires, signature = code.split(".")
    assert (tag, card, key, issued, expires) == (
        "CN1",
        CARD,
        ISSUER.verifier.id.hex().upper(),
        "20261102",
        "20311102",
    )
    assert len(signature) == 103 and len(code) == PAYLOAD_LENGTH == 151


def test_the_same_card_signed_twice_gives_the_same_code() -> None:
    assert payload() == payload()  # Ed25519 is deterministic: a reprint scans the same


def test_expiry_is_five_years_on_and_29_february_becomes_28_february() -> None:
    assert CARD_VALIDITY_YEARS == 5
    assert expiry_for(date(2026, 3, 1)) == date(2031, 3, 1)
    assert expiry_for(date(2028, 2, 29)) == date(2033, 2, 28)
    assert expiry_for(date(2027, 2, 28)) == date(2032, 2, 28)
    assert read_card(payload(issued=date(2028, 2, 29)), KEYS, date(2030, 1, 1)).expires_on == date(
        2033, 2, 28
    )


def test_a_card_is_valid_from_its_issue_date_to_the_end_of_its_expiry_date() -> None:
    code = payload()
    assert read_card(code, KEYS, ISSUED).card_id == CARD
    assert read_card(code, KEYS, date(2031, 11, 2)).card_id == CARD
    with pytest.raises(
        CardNotYetValid, match=r"card K7Q2-M9XD-4R1T-ZP8. is valid from 2026-11-02; today is 2026-11-01"
    ):
        read_card(code, KEYS, date(2026, 11, 1))
    with pytest.raises(CardExpired, match=r"expired on 2031-11-02; its holder needs a new card") as expired:
        read_card(code, KEYS, date(2031, 11, 3))
    assert expired.value.code == "card-expired"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "does not start with 'CN1.'"),
        ("CN2.K7Q2M9XD4R1TZP8C", "does not start with 'CN1.'"),
        ("CN1.K7Q2M9XD4R1TZP8C.00000000", "has 6 fields separated by '.'; this one has 3"),
        ("CN1." + "A" * 400, "has 151 characters; this one has 404"),
    ],
)
def test_what_is_not_a_card_code_is_refused(code: str, message: str) -> None:
    with pytest.raises(BadCard, match=re.escape(message)) as refused:
        read_card(code, KEYS, TODAY)
    assert refused.value.code == "bad-card"


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (
            1,
            CARD[:-1] + ("A" if CARD[-1] != "A" else "B"),
            r"card id field is wrong: .*\(check symbol does not match\)",
        ),
        (1, CARD[:15], "card id field is wrong: a card id has 16 symbols"),
        (1, format_card_id(CARD), "is not written as issued"),
        (2, "12345G78", "issuer key id '12345G78' is not 8 hexadecimal digits"),
        (2, "1234567", "issuer key id '1234567' is not 8 hexadecimal digits"),
        (3, "20270230", "issue date '20270230' is not a date written YYYYMMDD"),
        (3, "2026112", "issue date '2026112' is not a date written YYYYMMDD"),
        (4, "2031-1-2", "expiry date '2031-1-2' is not a date written YYYYMMDD"),
        (4, "20261102", "expiry date 2026-11-02 is not after its issue date 2026-11-02"),
        (5, "A" * 102, "signature is not 103 base32 symbols"),
        (5, "A" * 102 + "1", "signature is not 103 base32 symbols"),
        # The last symbol carries 2 bits and 3 spare ones, which must be zero.
        (5, "A" * 102 + "B", "signature is not 103 base32 symbols"),
    ],
)
def test_a_malformed_field_is_named(index: int, value: str, message: str) -> None:
    with pytest.raises(BadCard, match=message):
        read_card(with_field(payload(), index, value), KEYS, TODAY)


def test_a_card_from_an_unknown_issuer_key_is_refused() -> None:
    with pytest.raises(
        UnknownCardIssuer, match=r"signed by issuer key [0-9A-F]{8}, which is not known here"
    ) as e:
        read_card(payload(signer=STRANGER), KEYS, TODAY)
    assert e.value.code == "unknown-card-issuer"


def test_another_key_posing_under_the_issuers_key_id_fails_the_signature() -> None:
    forged = with_field(payload(signer=STRANGER), 2, ISSUER.verifier.id.hex().upper())
    with pytest.raises(
        CardSignatureInvalid, match=r"does not verify with issuer key .*altered or not issued"
    ) as e:
        read_card(forged, KEYS, TODAY)
    assert e.value.code == "card-signature-invalid"


def test_the_issuers_name_is_signed_so_a_key_of_another_name_cannot_stand_in() -> None:
    # The same public key and key id, under another name: the signature must not verify.
    renamed = Verifier("canasta.other/issuer", ISSUER.verifier.id, ISSUER.verifier.public)
    with pytest.raises(CardSignatureInvalid):
        read_card(payload(), [renamed], TODAY)
    assert read_card(payload(), [renamed, *KEYS], TODAY).issuer == ISSUER.name


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (1, OTHER_CARD),  # another valid card id
        (3, "20261101"),  # another valid issue date
        (4, "20321102"),  # a later expiry
        (4, "20311101"),
    ],
)
def test_changing_any_signed_field_to_another_valid_value_breaks_the_signature(
    index: int, value: str
) -> None:
    with pytest.raises(CardSignatureInvalid):
        read_card(with_field(payload(), index, value), KEYS, TODAY)


def test_changing_any_one_symbol_anywhere_is_refused() -> None:
    code = payload()
    for position, symbol in enumerate(code):
        if symbol == ".":
            continue
        for other in ("2", "Q"):
            if other == symbol:
                continue
            changed = code[:position] + other + code[position + 1 :]
            with pytest.raises(BadCard):
                read_card(changed, KEYS, TODAY)


def test_a_flipped_signature_symbol_fails_the_signature() -> None:
    code = payload()
    symbol = code[-10]
    changed = code[:-10] + ("A" if symbol != "A" else "B") + code[-9:]
    with pytest.raises(CardSignatureInvalid):
        read_card(changed, KEYS, TODAY)


def test_sign_card_refuses_a_bad_id_or_a_timestamp() -> None:
    with pytest.raises(MalformedCardId):
        sign_card(ISSUER, CARD[:-1] + "0" if CARD[-1] != "0" else CARD[:-1] + "1", ISSUED)
    with pytest.raises(InvalidInput, match="issue date is a date"):
        sign_card(ISSUER, CARD, datetime(2026, 11, 2, tzinfo=UTC))


card_ids = st.text(alphabet=_ALPHABET, min_size=15, max_size=15).map(lambda body: body + _check_symbol(body))
issue_dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2999, 12, 31))


@given(card=card_ids, issued=issue_dates)
def test_any_card_and_date_round_trip_in_qr_alphanumeric_text(card: str, issued: date) -> None:
    code = sign_card(ISSUER, card, issued)
    assert len(code) == PAYLOAD_LENGTH
    assert QR_ALPHANUMERIC.fullmatch(code)
    token = read_card(code, KEYS, issued)
    assert (token.card_id, token.issued_on, token.expires_on) == (card, issued, expiry_for(issued))
    assert token.expires_on.year == issued.year + 5
    assert card_from_scan(code.lower(), KEYS, issued) == card
    assert card_from_scan(format_card_id(card).lower(), KEYS, issued) == card


def test_the_code_fits_a_small_qr_code_in_alphanumeric_mode() -> None:
    # segno refuses a mode that cannot encode the text, so this proves the code is alphanumeric.
    at_q = segno.make(payload(), error="q", mode="alphanumeric", micro=False, boost_error=False)
    at_m = segno.make(payload(), error="m", mode="alphanumeric", micro=False, boost_error=False)
    assert at_q.mode == "alphanumeric"
    assert isinstance(at_q.version, int) and isinstance(at_m.version, int)
    assert at_q.version <= 8  # 49 modules a side: about 0.6 mm each in 34 mm on a card
    assert at_m.version <= 6
    with pytest.raises(segno.DataOverflowError):
        segno.make(payload(), error="q", mode="alphanumeric", version=7)


def test_card_from_scan_takes_a_bare_id_as_typed_or_a_code() -> None:
    assert card_from_scan(CARD, KEYS, TODAY) == CARD
    assert card_from_scan(f"  {format_card_id(CARD).lower()} ", KEYS, TODAY) == CARD
    assert card_from_scan(payload(), KEYS, TODAY) == CARD
    with pytest.raises(MalformedCardId, match="check symbol does not match"):
        card_from_scan(OTHER_CARD[:-1] + ("Z" if OTHER_CARD[-1] != "Z" else "Y"), KEYS, TODAY)
    with pytest.raises(UnknownCardIssuer):
        card_from_scan(payload(signer=STRANGER), KEYS, TODAY)
    with pytest.raises(CardExpired):
        card_from_scan(payload(), KEYS, date(2040, 1, 1))


# ---------------------------------------------------------------- revocation list

PRODUCED = datetime(2026, 11, 20, 9, 30, 5, 123456, tzinfo=UTC)


def test_a_revocation_list_round_trips_sorted_and_signed() -> None:
    note = revocation_note(
        ISSUER, PRODUCED, [(OTHER_CARD, "revoked"), (format_card_id(CARD).lower(), "lost")]
    )
    text = note[: note.index("\n\n")]
    assert text.split("\n") == [
        "canasta revocations",
        ISSUER.name,
        "2026-11-20T09:30:05Z",
        "2",
        f"{OTHER_CARD} revoked",
        f"{CARD} lost",
    ]
    revocations = read_revocations(note, [STRANGER.verifier, *KEYS])
    assert revocations.issuer == ISSUER.name
    assert revocations.produced_at == datetime(2026, 11, 20, 9, 30, 5, tzinfo=UTC)
    assert revocations.cards == {OTHER_CARD: CardStatus.REVOKED, CARD: CardStatus.LOST}
    assert revocations.status_of(format_card_id(CARD)) is CardStatus.LOST
    assert revocations.status_of("0000000000000000") is None


def test_an_empty_revocation_list_is_valid() -> None:
    assert read_revocations(revocation_note(ISSUER, PRODUCED, []), KEYS).cards == {}


def test_an_altered_revocation_list_fails() -> None:
    note = revocation_note(ISSUER, PRODUCED, [(CARD, "lost"), (OTHER_CARD, "revoked")])
    for changed in [
        note.replace(f"{CARD} lost\n", ""),  # a card taken off the list
        note.replace(f"{CARD} lost", f"{CARD} revoked"),
        note.replace("2026-11-20T09:30:05Z", "2026-12-20T09:30:05Z"),  # made to look fresh
    ]:
        assert changed != note
        with pytest.raises(BadRevocationList, match="does not verify"):
            read_revocations(changed, KEYS)


def test_a_revocation_list_by_an_unknown_or_impostor_issuer_fails() -> None:
    note = revocation_note(STRANGER, PRODUCED, [(CARD, "lost")])
    with pytest.raises(BadRevocationList, match="an issuer not known here"):
        read_revocations(note, KEYS)
    impostor = Signer(ISSUER.name, Ed25519PrivateKey.from_private_bytes(bytes(32)))
    with pytest.raises(BadRevocationList, match="does not verify: no known key signed"):
        read_revocations(revocation_note(impostor, PRODUCED, []), KEYS)
    with pytest.raises(BadRevocationList, match="not a canasta revocation list"):
        read_revocations(ISSUER.sign("canasta.example/log\n3\n"), KEYS)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["2026-11-20T09:30:05Z", "2", f"{CARD} lost"], "says it holds 2 cards but lists 1"),
        (["2026-11-20T09:30:05Z", "0", f"{CARD} lost"], "says it holds 0 cards but lists 1"),
        (["2026-11-20T09:30:05Z", "01", f"{CARD} lost"], "count '01' is not a decimal number"),
        (["2026-11-20 09:30:05", "0"], "time '2026-11-20 09:30:05' is not written"),
        (["2026-11-20T09:30:05Z"], "has a header, its issuer, its time and its count"),
        (
            ["2026-11-20T09:30:05Z", "1", f"{CARD} active"],
            "line 5 of the revocation list is not 'CARDID lost|revoked'",
        ),
        (
            ["2026-11-20T09:30:05Z", "1", f"{format_card_id(CARD)} lost"],
            "line 5 .* is not 'CARDID lost|revoked'",
        ),
        (
            ["2026-11-20T09:30:05Z", "1", "K7Q2M9XD4R1TZP8 lost"],
            "line 5 of the revocation list: a card id has 16",
        ),
        (
            ["2026-11-20T09:30:05Z", "2", f"{CARD} lost", f"{OTHER_CARD} lost"],
            "line 6 .* out of order or repeated",
        ),
        (
            ["2026-11-20T09:30:05Z", "2", f"{CARD} lost", f"{CARD} revoked"],
            "line 6 .* out of order or repeated",
        ),
    ],
)
def test_a_signed_but_malformed_revocation_list_says_what_is_wrong(lines: list[str], message: str) -> None:
    note = ISSUER.sign("\n".join(["canasta revocations", ISSUER.name, *lines]) + "\n")
    with pytest.raises(BadRevocationList, match=message) as refused:
        read_revocations(note, KEYS)
    assert refused.value.code == "bad-revocation-list"


def test_revocation_note_refuses_active_cards_duplicates_and_naive_times() -> None:
    with pytest.raises(InvalidInput, match="listed as 'active'; a revocation list holds lost or revoked"):
        revocation_note(ISSUER, PRODUCED, [(CARD, "active")])
    with pytest.raises(InvalidInput, match="is listed twice"):
        revocation_note(ISSUER, PRODUCED, [(CARD, "lost"), (format_card_id(CARD), "revoked")])
    with pytest.raises(InvalidInput, match="time zone"):
        revocation_note(ISSUER, datetime(2026, 11, 20, 9, 30), [])
