"""Offline redemption: the outlet's signed journal entries and the offline allowance.

An outlet writes every redemption to its journal before handing anything out; each entry is
numbered by a per-outlet counter and signed with the outlet's Ed25519 key. Offline, what it
may hand out is capped per card per cycle (a share of the entitlement) and per outlet per day
(see docs/offline.md for the model and its worst case). This module is pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from canasta.domain.errors import CanastaError, InvalidInput
from canasta.domain.ledger import canonical_json
from canasta.domain.quantity import format_milli

#: What the canonical encoding of a journal entry starts with, so a signature over one can
#: never be taken for a signature over anything else canasta signs.
JOURNAL_CONTEXT = "canasta-journal-v1"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One redemption as the outlet recorded it (quantity in thousandths)."""

    outlet: str
    counter: int
    card_id: str
    programme: str
    quantity: int
    recorded_at: str
    #: True when the outlet handed nothing out for it (refused online, or refused offline
    #: after an online attempt whose answer never came): the counter is accounted for.
    void: bool = False

    def __post_init__(self) -> None:
        if self.counter < 1:
            raise InvalidInput(f"journal counter {self.counter} is not a positive number")
        if self.quantity <= 0:
            raise InvalidInput(f"journal entry {self.counter}: the quantity must be positive")

    def as_dict(self) -> dict[str, Any]:
        return {
            "outlet": self.outlet,
            "counter": self.counter,
            "card": self.card_id,
            "programme": self.programme,
            "quantity": self.quantity,
            "recorded_at": self.recorded_at,
            "void": self.void,
        }

    def canonical(self) -> bytes:
        return canonical_json({"context": JOURNAL_CONTEXT, **self.as_dict()})

    def fingerprint(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    @property
    def idempotency_key(self) -> str:
        """The key its redemption is sent with, online or at sync: the same either way, so
        the server counts it once."""
        return f"journal-{self.counter}"

    @classmethod
    def from_dict(cls, data: Any, where: str = "entry") -> JournalEntry:
        if not isinstance(data, dict):
            raise InvalidInput(f"{where}: a journal entry is an object")
        try:
            return cls(
                outlet=_text(data, "outlet", where),
                counter=_integer(data, "counter", where),
                card_id=_text(data, "card", where),
                programme=_text(data, "programme", where),
                quantity=_integer(data, "quantity", where),
                recorded_at=_text(data, "recorded_at", where),
                void=_flag(data, "void", where),
            )
        except InvalidInput as bad:
            raise InvalidInput(
                bad.message if bad.message.startswith(where) else f"{where}: {bad.message}"
            ) from None


#: The longest value each text field may hold (as the server's columns do).
_LONGEST = {"outlet": 64, "card": 40, "programme": 64, "recorded_at": 32}


def _text(data: dict[str, Any], name: str, where: str) -> str:
    value = data.get(name)
    longest = _LONGEST[name]
    if not isinstance(value, str) or not value or len(value) > longest:
        raise InvalidInput(f"{where}: {name!r} must be a non-empty string of at most {longest} characters")
    return value


def _flag(data: dict[str, Any], name: str, where: str) -> bool:
    value = data.get(name, False)
    if type(value) is not bool:
        raise InvalidInput(f"{where}: {name!r} must be true or false")
    return value


def _integer(data: dict[str, Any], name: str, where: str) -> int:
    value = data.get(name)
    if type(value) is not int:
        raise InvalidInput(f"{where}: {name!r} must be an integer")
    return value


@dataclass(frozen=True, slots=True)
class SignedEntry:
    entry: JournalEntry
    signature: bytes

    def as_dict(self) -> dict[str, Any]:
        return {**self.entry.as_dict(), "signature": base64.b64encode(self.signature).decode("ascii")}

    @classmethod
    def from_dict(cls, data: Any, where: str = "entry") -> SignedEntry:
        entry = JournalEntry.from_dict(data, where)
        text = data.get("signature") if isinstance(data, dict) else None
        if not isinstance(text, str):
            raise InvalidInput(f"{where}: 'signature' must be base64 text")
        try:
            signature = base64.b64decode(text, validate=True)
        except ValueError:
            raise InvalidInput(f"{where}: 'signature' is not base64") from None
        if len(signature) != 64:
            raise InvalidInput(f"{where}: 'signature' must be 64 bytes (Ed25519)")
        return cls(entry, signature)


def sign_entry(entry: JournalEntry, key: Ed25519PrivateKey) -> SignedEntry:
    return SignedEntry(entry, key.sign(entry.canonical()))


def entry_signature_ok(signed: SignedEntry, key: Ed25519PublicKey) -> bool:
    try:
        key.verify(signed.signature, signed.entry.canonical())
    except InvalidSignature:
        return False
    return True


def public_key_text(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise InvalidInput("the outlet's public key must be 32 bytes of Ed25519, in base64") from None


# -- the offline allowance ------------------------------------------------------------------


class OfflineLimit(CanastaError):
    """An offline redemption the outlet may not make: a cap would be exceeded."""

    code = "offline-limit"


@dataclass(frozen=True, slots=True)
class Allowance:
    """What an outlet may hand out offline for one programme in its open cycle."""

    programme: str
    unit: str
    cycle_id: int
    starts_on: str
    ends_on: str
    #: The share of a card's entitlement that may be redeemed offline, in thousandths.
    share_permille: int
    #: The entitlement assumed for a card the outlet has not seen online this cycle: the
    #: smallest positive entitlement of the cycle (thousandths of the unit).
    reference: int
    #: What this outlet may hand out offline in one UTC day (thousandths of the unit).
    daily_cap: int

    def card_cap(self, known_entitlement: int | None) -> int:
        """The most one card may take offline at this outlet in the cycle."""
        base = self.reference if known_entitlement is None else known_entitlement
        return base * self.share_permille // 1000

    def check(self, quantity: int, card_spent: int, day_spent: int, known_entitlement: int | None) -> None:
        """Refuse (``OfflineLimit``) a redemption of ``quantity`` that would take the card
        past its offline cap this cycle, or the outlet past its daily cap."""
        if self.share_permille <= 0 or self.daily_cap <= 0:
            raise OfflineLimit(f"{self.programme} cannot be redeemed offline at this outlet")
        cap = self.card_cap(known_entitlement)
        if card_spent + quantity > cap:
            left = max(cap - card_spent, 0)
            raise OfflineLimit(
                f"this card may take {format_milli(left)} {self.unit} more of {self.programme} offline "
                f"here this cycle (asked {format_milli(quantity)})"
            )
        if day_spent + quantity > self.daily_cap:
            left = max(self.daily_cap - day_spent, 0)
            raise OfflineLimit(
                f"this outlet may hand out {format_milli(left)} {self.unit} more of "
                f"{self.programme} offline today (asked {format_milli(quantity)})"
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "programme": self.programme,
            "unit": self.unit,
            "cycle_id": self.cycle_id,
            "starts_on": self.starts_on,
            "ends_on": self.ends_on,
            "share_permille": self.share_permille,
            "reference": self.reference,
            "daily_cap": self.daily_cap,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Allowance:
        return cls(
            programme=str(data["programme"]),
            unit=str(data["unit"]),
            cycle_id=int(data["cycle_id"]),
            starts_on=str(data["starts_on"]),
            ends_on=str(data["ends_on"]),
            share_permille=int(data["share_permille"]),
            reference=int(data["reference"]),
            daily_cap=int(data["daily_cap"]),
        )
