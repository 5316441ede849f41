"""Signed cards that verify offline, and the signed list of withdrawn cards.

**The card code.** What a card's QR code holds is one line of six fields joined by ``.``::

    CN1.K7Q2M9XD4R1TZP8C.1A2B3C4D.20261101.20311101.MFRGG...(103 symbols)

1. ``CN1``: the format and its version.
2. The card id: 16 symbols of Crockford base32, the last a check symbol
   (``canasta.domain.model``). It is random and bound to a household or vehicle only in the
   database: the code carries no personal data.
3. The issuer key's id: its 4 bytes (see ``signed_note``) as 8 upper-case hex digits.
4. The issue date, ``YYYYMMDD``.
5. The expiry date, ``YYYYMMDD``: the issue date plus ``CARD_VALIDITY_YEARS`` (a card issued
   on 29 February expires on 28 February). The card is valid from its issue date to the end of
   its expiry date.
6. The Ed25519 signature (64 bytes) in RFC 4648 base32, upper case, without padding: 103
   symbols.

Every symbol is in the QR code's alphanumeric set (``0-9 A-Z $%*+-./:``), which packs 2
symbols into 11 bits, so the 151 symbols fit a version 6 code at error correction level M or
a version 8 code at level Q (41 or 49 modules a side).

**What is signed** is, in UTF-8, without a final newline::

    canasta card 1
    <issuer key name>
    <card id>
    <issuer key id, hex>
    <issue date>
    <expiry date>

so no field can change and no key of another name can stand in. A signed note's text always
ends in a newline (``signed_note``), so a signature over a note can never pass for a card's,
nor the other way round, although the issuer key signs both.

**The revocation list** is a signed note (``signed_note``) by the issuer key whose text is::

    canasta revocations
    <issuer key name>
    <when it was produced, YYYY-MM-DDTHH:MM:SSZ>
    <how many cards follow>
    <card id> <lost|revoked>        (one line per withdrawn card, sorted by card id)

An outlet that is offline checks a scanned card with nothing but the issuer's verifier key
line and the last revocation list it downloaded.

This module does no I/O.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from cryptography.exceptions import InvalidSignature

from canasta.domain.errors import InvalidInput, MalformedCardId
from canasta.domain.model import CardStatus, format_card_id, normalise_card_id
from canasta.domain.signed_note import BadNote, Signer, Verifier, open_note

CARD_VALIDITY_YEARS = 5
TAG = "CN1"
SEP = "."
SIGNATURE_SYMBOLS = 103  # 64 bytes in base32 without padding
#: The length of every card code.
PAYLOAD_LENGTH = len(TAG) + 16 + 8 + 8 + 8 + SIGNATURE_SYMBOLS + 5
_SIGNED_HEADER = "canasta card 1"
_DATE = re.compile(r"[0-9]{8}")
_HEX_ID = re.compile(r"[0-9A-F]{8}")
_BASE32 = re.compile(r"[A-Z2-7]+")
_WITHDRAWN = frozenset({CardStatus.LOST, CardStatus.REVOKED})

REVOCATIONS_HEADER = "canasta revocations"
_PRODUCED_AT = "%Y-%m-%dT%H:%M:%SZ"


class BadCard(InvalidInput):
    """A scanned card code that is malformed, or that names a card id whose check symbol is
    wrong."""

    code = "bad-card"


class UnknownCardIssuer(BadCard):
    """A card code signed by an issuer key that is not known here."""

    code = "unknown-card-issuer"


class CardSignatureInvalid(BadCard):
    """A card code whose signature does not verify: altered, or not made by the issuer."""

    code = "card-signature-invalid"


class CardNotYetValid(BadCard):
    """A card used before its issue date."""

    code = "card-not-yet-valid"


class CardExpired(BadCard):
    """A card used after its expiry date."""

    code = "card-expired"


class BadRevocationList(InvalidInput):
    """A revocation list that is malformed or does not verify."""

    code = "bad-revocation-list"


@dataclass(frozen=True, slots=True)
class CardToken:
    """What a verified card code says."""

    card_id: str
    issuer: str
    key_id: bytes
    issued_on: date
    expires_on: date


def expiry_for(issued_on: date) -> date:
    """The expiry date of a card issued on ``issued_on`` (29 February → 28 February)."""
    year = issued_on.year + CARD_VALIDITY_YEARS
    try:
        return issued_on.replace(year=year)
    except ValueError:
        return issued_on.replace(year=year, day=28)


def _ymd(day: date) -> str:
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def _signed_bytes(issuer: str, card_id: str, key_hex: str, issued: str, expires: str) -> bytes:
    return "\n".join([_SIGNED_HEADER, issuer, card_id, key_hex, issued, expires]).encode()


def sign_card(signer: Signer, card_id: str, issued_on: date) -> str:
    """The card code for ``card_id`` issued on ``issued_on``, signed by ``signer``."""
    if isinstance(issued_on, datetime) or not isinstance(issued_on, date):
        raise InvalidInput(f"a card's issue date is a date, not {issued_on!r}")
    if not 1 <= issued_on.year <= 9999 - CARD_VALIDITY_YEARS:
        raise InvalidInput(f"a card cannot be issued in the year {issued_on.year}")
    card_id = normalise_card_id(card_id)
    verifier = signer.verifier
    key_hex = verifier.id.hex().upper()
    issued, expires = _ymd(issued_on), _ymd(expiry_for(issued_on))
    signature = signer.private.sign(_signed_bytes(signer.name, card_id, key_hex, issued, expires))
    encoded = base64.b32encode(signature).decode().rstrip("=")
    return SEP.join([TAG, card_id, key_hex, issued, expires, encoded])


def _date_field(text: str, what: str) -> date:
    if _DATE.fullmatch(text):
        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            pass
    raise BadCard(f"the card code's {what} {text!r} is not a date written YYYYMMDD")


def _signature_field(text: str) -> bytes:
    if len(text) == SIGNATURE_SYMBOLS and _BASE32.fullmatch(text):
        raw = base64.b32decode(text + "=" * (-len(text) % 8))
        # The last symbol's spare bits must be zero: one signature, one spelling.
        if base64.b32encode(raw).decode().rstrip("=") == text:
            return raw
    raise BadCard(f"the card code's signature is not {SIGNATURE_SYMBOLS} base32 symbols (A-Z, 2-7)")


def looks_like_card_code(text: str) -> bool:
    """True when ``text`` is meant as a card code rather than a bare card id."""
    return text.strip().upper().startswith(TAG + SEP)


def read_card(payload: str, verifiers: Sequence[Verifier], today: date) -> CardToken:
    """Check a scanned card code offline: its form, its card id's check symbol, the issuer's
    signature and its dates. Raises a ``BadCard`` that says what is wrong."""
    text = payload.strip().upper()
    if len(text) > 2 * PAYLOAD_LENGTH:
        raise BadCard(f"a card code has {PAYLOAD_LENGTH} characters; this one has {len(text)}")
    fields = text.split(SEP)
    if fields[0] != TAG:
        raise BadCard(f"this is not a canasta card code: it does not start with {TAG + SEP!r}")
    if len(fields) != 6:
        raise BadCard(f"a card code has 6 fields separated by {SEP!r}; this one has {len(fields)}")
    _, card_id, key_hex, issued, expires, encoded = fields
    try:
        canonical = normalise_card_id(card_id)
    except MalformedCardId as bad:
        raise BadCard(f"the card code's card id field is wrong: {bad.message}") from None
    if canonical != card_id:
        raise BadCard(f"the card code's card id field {card_id!r} is not written as issued ({canonical})")
    if not _HEX_ID.fullmatch(key_hex):
        raise BadCard(f"the card code's issuer key id {key_hex!r} is not 8 hexadecimal digits")
    issued_on = _date_field(issued, "issue date")
    expires_on = _date_field(expires, "expiry date")
    if expires_on <= issued_on:
        raise BadCard(f"the card code's expiry date {expires_on} is not after its issue date {issued_on}")
    signature = _signature_field(encoded)
    shown = format_card_id(card_id)
    key_id = bytes.fromhex(key_hex)
    candidates = [v for v in verifiers if v.id == key_id]
    if not candidates:
        raise UnknownCardIssuer(f"card {shown} was signed by issuer key {key_hex}, which is not known here")
    for verifier in candidates:
        try:
            verifier.public.verify(signature, _signed_bytes(verifier.name, card_id, key_hex, issued, expires))
            break
        except InvalidSignature:
            continue
    else:
        raise CardSignatureInvalid(
            f"the signature on card {shown} does not verify with issuer key {key_hex}: "
            "the card code was altered or not issued by that key"
        )
    if today < issued_on:
        raise CardNotYetValid(f"card {shown} is valid from {issued_on}; today is {today}")
    if today > expires_on:
        raise CardExpired(f"card {shown} expired on {expires_on}; its holder needs a new card")
    return CardToken(card_id, verifier.name, key_id, issued_on, expires_on)


def card_from_scan(text: str, verifiers: Sequence[Verifier], today: date) -> str:
    """The card id in what a cashier typed or scanned: a bare card id (any way
    ``normalise_card_id`` accepts) or a card code, which must verify."""
    if looks_like_card_code(text):
        return read_card(text, verifiers, today).card_id
    return normalise_card_id(text)


# ------------------------------------------------------------------- revocation list


@dataclass(frozen=True, slots=True)
class RevocationList:
    """The withdrawn cards as the issuer stated them at ``produced_at``."""

    issuer: str
    produced_at: datetime
    #: card id → lost or revoked
    cards: dict[str, CardStatus]

    def status_of(self, card_id: str) -> CardStatus | None:
        """``lost`` or ``revoked`` for a withdrawn card; None for any other."""
        return self.cards.get(normalise_card_id(card_id))


def revocation_note(signer: Signer, produced_at: datetime, revoked: Sequence[tuple[str, str]]) -> str:
    """The revocation list of ``revoked`` (card id, ``lost`` or ``revoked``) as a note
    signed by the issuer key ``signer``."""
    if produced_at.tzinfo is None:
        raise InvalidInput("a revocation list's time must say its time zone")
    cards: dict[str, CardStatus] = {}
    for raw_id, status in revoked:
        card_id = normalise_card_id(raw_id)
        if status not in _WITHDRAWN:
            raise InvalidInput(
                f"card {format_card_id(card_id)} is listed as {status!r}; a revocation list "
                "holds lost or revoked cards only"
            )
        if card_id in cards:
            raise InvalidInput(f"card {format_card_id(card_id)} is listed twice")
        cards[card_id] = CardStatus(status)
    lines = [
        REVOCATIONS_HEADER,
        signer.name,
        produced_at.astimezone(UTC).strftime(_PRODUCED_AT),
        str(len(cards)),
        *(f"{card_id} {cards[card_id].value}" for card_id in sorted(cards)),
    ]
    return signer.sign("\n".join(lines) + "\n")


def read_revocations(note: str, verifiers: Sequence[Verifier]) -> RevocationList:
    """Check a downloaded revocation list: signed by the issuer key it names, which must be
    among ``verifiers``, and well formed. Raises ``BadRevocationList`` that says why not."""
    head = note.split("\n", 2)
    if head[0] != REVOCATIONS_HEADER or len(head) < 3:
        raise BadRevocationList(
            f"this is not a canasta revocation list: it does not start with {REVOCATIONS_HEADER!r}"
        )
    issuer = head[1]
    known = [v for v in verifiers if v.name == issuer]
    if not known:
        raise BadRevocationList(f"the revocation list is by {issuer!r}, an issuer not known here")
    try:
        text = open_note(note, known)
    except BadNote as bad:
        raise BadRevocationList(f"the revocation list by {issuer} does not verify: {bad.message}") from None
    lines = text.split("\n")[:-1]
    if len(lines) < 4:
        raise BadRevocationList("a revocation list has a header, its issuer, its time and its count")
    produced, count = lines[2], lines[3]
    try:
        produced_at = datetime.strptime(produced, _PRODUCED_AT).replace(tzinfo=UTC)
    except ValueError:
        raise BadRevocationList(
            f"the revocation list's time {produced!r} is not written YYYY-MM-DDTHH:MM:SSZ"
        ) from None
    if not count.isdigit() or not count.isascii() or (count != "0" and count.startswith("0")):
        raise BadRevocationList(f"the revocation list's count {count!r} is not a decimal number")
    entries = lines[4:]
    if len(entries) != int(count):
        raise BadRevocationList(f"the revocation list says it holds {count} cards but lists {len(entries)}")
    cards: dict[str, CardStatus] = {}
    previous = ""
    for number, line in enumerate(entries, start=5):
        card_id, _, status = line.partition(" ")
        try:
            canonical = normalise_card_id(card_id)
        except MalformedCardId as bad:
            raise BadRevocationList(f"line {number} of the revocation list: {bad.message}") from None
        if canonical != card_id or status not in _WITHDRAWN:
            raise BadRevocationList(f"line {number} of the revocation list is not 'CARDID lost|revoked'")
        if card_id <= previous:
            raise BadRevocationList(f"line {number} of the revocation list is out of order or repeated")
        cards[card_id] = CardStatus(status)
        previous = card_id
    return RevocationList(issuer, produced_at, cards)
