"""The registry, programmes, cycles, entitlements and cards, with the rules each keeps."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from canasta.domain.errors import (
    CardRevoked,
    Conflict,
    CycleClosed,
    InvalidInput,
    MalformedCardId,
    QuotaExceeded,
)
from canasta.domain.quantity import MAX_MILLI, format_milli


class BeneficiaryKind(StrEnum):
    """What an entitlement and a card belong to."""

    HOUSEHOLD = "household"
    VEHICLE = "vehicle"


class OutletKind(StrEnum):
    FUEL_STATION = "fuel_station"
    SHOP = "shop"
    MOBILE = "mobile"


class CycleStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class CardStatus(StrEnum):
    ACTIVE = "active"
    LOST = "lost"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Beneficiary:
    """A household or a vehicle: who an entitlement and a card belong to."""

    kind: BeneficiaryKind
    id: int


@dataclass(slots=True)
class Programme:
    """A benefit handed out cycle after cycle: a fuel quota per vehicle, a food basket per
    household. Until published rules land, the quota is a fixed quantity plus a quantity per
    household member (both in thousandths of ``unit``)."""

    name: str
    unit: str
    per: BeneficiaryKind
    cycle_days: int
    quota_fixed: int = 0
    quota_per_member: int = 0
    id: int | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise InvalidInput(f"programme name {self.name!r} must be letters, digits, '-' or '_' only")
        if not self.unit.strip():
            raise InvalidInput("a programme needs a unit such as 'litre' or 'kg'")
        if not 1 <= self.cycle_days <= 366:
            raise InvalidInput(f"cycle length must be 1 to 366 days, not {self.cycle_days}")
        if self.quota_fixed < 0 or self.quota_per_member < 0:
            raise InvalidInput("quotas cannot be negative")
        if self.quota_fixed == 0 and self.quota_per_member == 0:
            raise InvalidInput("a programme needs a fixed quota or a quota per member")
        if self.per is BeneficiaryKind.VEHICLE and self.quota_per_member:
            raise InvalidInput("a quota per household member only applies to household programmes")

    def quota_for(self, members: int) -> int:
        """The quantity one beneficiary is entitled to in a cycle."""
        quota = self.quota_fixed + self.quota_per_member * members
        return min(quota, MAX_MILLI)

    def describe_quota(self) -> str:
        parts = []
        if self.quota_fixed:
            parts.append(f"{format_milli(self.quota_fixed)} {self.unit}")
        if self.quota_per_member:
            parts.append(f"{format_milli(self.quota_per_member)} {self.unit} per member")
        return " + ".join(parts) + f" per {self.per.value} every {self.cycle_days} days"


@dataclass(slots=True)
class Cycle:
    """One period of a programme. Entitlements are granted when it opens; redemptions are
    taken only while it is open."""

    programme_id: int
    starts_on: date
    ends_on: date
    status: CycleStatus = CycleStatus.OPEN
    id: int | None = None

    def __post_init__(self) -> None:
        if self.ends_on < self.starts_on:
            raise InvalidInput(f"a cycle cannot end ({self.ends_on}) before it starts ({self.starts_on})")

    def require_open(self, programme: str) -> None:
        if self.status is not CycleStatus.OPEN:
            raise CycleClosed(f"the {programme} cycle {self.id} is closed")


@dataclass(slots=True)
class Entitlement:
    """What one beneficiary may take from one programme in one cycle, and what they took."""

    cycle_id: int
    programme_id: int
    beneficiary: Beneficiary
    quantity: int
    redeemed: int = 0
    id: int | None = None

    @property
    def remaining(self) -> int:
        return self.quantity - self.redeemed

    def redeem(self, quantity: int, unit: str) -> None:
        """Take ``quantity`` off the balance, or refuse and change nothing."""
        if quantity <= 0:
            raise InvalidInput("a redemption must be for a positive quantity")
        if quantity > self.remaining:
            raise QuotaExceeded(
                f"asked for {format_milli(quantity)} {unit} but only "
                f"{format_milli(self.remaining)} {unit} remain this cycle"
            )
        self.redeemed += quantity


# Crockford's base32: no I, L, O or U, so a card id read aloud or typed by hand survives.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}
_VALUE.update({"O": 0, "I": 1, "L": 1})
CARD_ID_LENGTH = 16


def _check_symbol(body: str) -> str:
    """Luhn mod 32 over ``body``: catches every single-symbol typo and most swaps."""
    total = 0
    factor = 2
    for char in reversed(body):
        addend = factor * _VALUE[char]
        factor = 1 if factor == 2 else 2
        total += addend // 32 + addend % 32
    return _ALPHABET[(32 - total % 32) % 32]


def new_card_id() -> str:
    """A random, pseudonymous card id: 75 random bits and a check symbol."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(CARD_ID_LENGTH - 1))
    return body + _check_symbol(body)


_TYPED = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})
_SYMBOLS = frozenset(_ALPHABET)


def normalise_card_id(raw: str) -> str:
    """Accept what a cashier types (lower case, dashes, spaces, O for 0) and return the
    canonical id, or refuse it if the check symbol does not match."""
    canonical = raw.strip().upper().translate(_TYPED)
    if len(canonical) != CARD_ID_LENGTH:
        raise MalformedCardId(f"a card id has {CARD_ID_LENGTH} symbols; {raw!r} has {len(canonical)}")
    if not _SYMBOLS.issuperset(canonical):
        wrong = next(c for c in canonical if c not in _SYMBOLS)
        raise MalformedCardId(f"{raw!r} contains {wrong!r}, which no card id has")
    if _check_symbol(canonical[:-1]) != canonical[-1]:
        raise MalformedCardId(f"{raw!r} is not a valid card id (check symbol does not match)")
    return canonical


def format_card_id(card_id: str) -> str:
    """Groups of four for printing and reading aloud: ``K7Q2-M9XD-4R1T-ZP8C``."""
    return "-".join(card_id[i : i + 4] for i in range(0, len(card_id), 4))


@dataclass(slots=True)
class Card:
    """A card binds a random id to one household or vehicle, and carries nothing else.

    A lost card is reissued under a new id; the balance belongs to the beneficiary, not the
    card, so it carries over."""

    id: str
    beneficiary: Beneficiary
    status: CardStatus = CardStatus.ACTIVE
    replaces: str | None = None
    #: The last day the card is valid (its issue date plus the validity period), when known.
    expires_on: date | None = None

    def require_active(self) -> None:
        if self.status is not CardStatus.ACTIVE:
            raise CardRevoked(f"card {format_card_id(self.id)} is {self.status.value}")

    def withdraw(self, status: CardStatus) -> None:
        if status is CardStatus.ACTIVE:
            raise InvalidInput("a card is withdrawn as lost or revoked")
        if self.status is not CardStatus.ACTIVE:
            raise Conflict(f"card {format_card_id(self.id)} is already {self.status.value}")
        self.status = status


@dataclass(slots=True)
class Outlet:
    """A place that hands goods out: a fuel station, a ration shop."""

    code: str
    name: str
    kind: OutletKind
    region: str
    active: bool = True

    def __post_init__(self) -> None:
        if not self.code or len(self.code) > 64 or not all(c.isalnum() or c in "-_." for c in self.code):
            raise InvalidInput(f"outlet code {self.code!r} must be 1-64 letters, digits, '-', '_' or '.'")


@dataclass(slots=True)
class Person:
    registration_id: str
    given_names: str
    family_name: str
    second_family_name: str
    sex: str
    date_of_birth: date
    phone: str = ""
    #: Declared attributes (registry schema): name → value, None when not known.
    attributes: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Household:
    ref: str
    region: str
    municipality: str
    address: str
    members: list[Person] = field(default_factory=list)
    attributes: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Vehicle:
    plate: str
    kind: str
    household_ref: str
    attributes: dict[str, object] = field(default_factory=dict)
