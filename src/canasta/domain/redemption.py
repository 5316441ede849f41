"""Redemptions: the commands, the receipts, and the pure planning of a batch.

The service gathers concurrent redemptions into one transaction (group commit). Inside it,
``plan_batch`` decides every redemption of the batch in arrival order against the state read
under lock, so several redemptions of one card in one batch see each other's effect, and a
retried idempotency key answers with the receipt it got the first time. It does no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from canasta.domain.card_token import CardExpired
from canasta.domain.errors import (
    CanastaError,
    CardNotFound,
    CycleClosed,
    IdempotencyKeyReused,
    ProgrammeNotFound,
    WrongProgramme,
)
from canasta.domain.ledger import EntryKind, LedgerEntry
from canasta.domain.model import Beneficiary, Card, Cycle, Entitlement, Programme, format_card_id
from canasta.domain.quantity import format_milli
from canasta.domain.receipt import LogReceipt

_ENCODER = json.JSONEncoder()


def key_hash(outlet: str, idempotency_key: str) -> str:
    """SHA-256 of an outlet's code and one of its idempotency keys, as redemptions store it."""
    return hashlib.sha256(f"{outlet}\x1f{idempotency_key}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RedeemQuota:
    """Hand ``quantity`` (thousandths of the programme's unit) of ``programme`` to the holder
    of ``card_id`` at ``outlet``. ``idempotency_key`` is chosen by the outlet; a retry with
    the same key is answered with the first receipt."""

    card_id: str
    programme: str
    quantity: int
    outlet: str
    idempotency_key: str

    def key_hash(self) -> str:
        """What is stored of the idempotency key: its SHA-256 with the outlet's code. The key
        is the outlet's free text, so it is not kept; the hash finds retries as well."""
        return key_hash(self.outlet, self.idempotency_key)

    def fingerprint(self) -> str:
        """What identifies the request body, to tell a true retry from a reused key. The
        fields are joined with the unit separator, which none of them may contain."""
        text = f"{self.card_id}\x1f{self.programme}\x1f{self.quantity}\x1f{self.outlet}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the outlet gets back, and what a retry gets again. No personal data."""

    redemption_id: int
    card_id: str
    programme: str
    unit: str
    quantity: int
    remaining: int
    outlet: str
    recorded_at: str
    ledger_seq: int
    entry_hash: str
    replayed: bool = False
    #: The transparency log's receipt: the entry, its salt and its inclusion proof against
    #: a signed checkpoint (None until the log has taken the entry, or without a log key).
    log: LogReceipt | None = None

    def as_json(self) -> dict[str, Any]:
        return self._fields() | {"log_receipt": None if self.log is None else self.log.as_dict()}

    def to_json(self) -> str:
        """``as_json`` as JSON text, the log receipt spliced in already encoded."""
        fields = _ENCODER.encode(self._fields())
        log = "null" if self.log is None else self.log.compact_json()
        return f'{fields[:-1]},"log_receipt":{log}}}'

    def _fields(self) -> dict[str, Any]:
        return {
            "redemption_id": self.redemption_id,
            "card": format_card_id(self.card_id),
            "programme": self.programme,
            "unit": self.unit,
            "quantity": format_milli(self.quantity),
            "remaining": format_milli(self.remaining),
            "outlet": self.outlet,
            "time": self.recorded_at,
            "ledger_position": self.ledger_seq,
            "entry_hash": self.entry_hash,
        }


@dataclass(frozen=True, slots=True)
class StoredRedemption:
    """A redemption as recorded: what a retry is answered from."""

    receipt: Receipt
    fingerprint: str


@dataclass(frozen=True, slots=True)
class NewRedemption:
    """A row to insert. Holds only the card pseudonym, programme, cycle, quantity, outlet,
    time and bookkeeping (idempotency key, balance after). Its id is its ledger position."""

    card_id: str
    programme_id: int
    cycle_id: int
    outlet: str
    quantity: int
    balance_after: int
    key_hash: str
    fingerprint: str
    recorded_at: str
    ledger_seq: int


@dataclass(slots=True)
class BatchState:
    """What a batch reads under lock before deciding."""

    #: key hash → the redemption already recorded under it.
    existing: Mapping[str, StoredRedemption]
    cards: Mapping[str, Card]
    programmes: Mapping[str, Programme]
    open_cycles: Mapping[int, Cycle]
    entitlements: Mapping[tuple[int, Beneficiary], Entitlement]
    head_seq: int
    head_hash: str


@dataclass(slots=True)
class BatchPlan:
    """The outcome of each command, in order, and the writes that make them true."""

    outcomes: list[Receipt | CanastaError] = field(default_factory=list)
    redemptions: list[NewRedemption] = field(default_factory=list)
    entries: list[LedgerEntry] = field(default_factory=list)
    #: Each entry's canonical encoding, for the transparency log's commitments.
    encodings: list[bytes] = field(default_factory=list)
    #: entitlement id → quantity added to ``redeemed`` by this batch.
    deltas: dict[int, int] = field(default_factory=dict)

    @property
    def head(self) -> tuple[int, str] | None:
        return (self.entries[-1].seq, self.entries[-1].entry_hash) if self.entries else None


def redemption_body(r: NewRedemption, programme: str) -> dict[str, Any]:
    """The ledger body of a redemption: exactly what the redemption row holds."""
    return {
        "card": r.card_id,
        "programme": programme,
        "cycle": r.cycle_id,
        "quantity": r.quantity,
        "outlet": r.outlet,
    }


def plan_batch(
    commands: list[RedeemQuota],
    state: BatchState,
    recorded_at: str,
) -> BatchPlan:
    """Decide every command in order. Never raises for a refused redemption: the refusal is
    that command's outcome and the rest of the batch goes on."""
    plan = BatchPlan()
    seq, prev_hash = state.head_seq, state.head_hash
    decided: dict[str, StoredRedemption] = {}
    for cmd in commands:
        key = cmd.key_hash()
        fingerprint = cmd.fingerprint()
        earlier = decided.get(key) or state.existing.get(key)
        if earlier is not None:
            if earlier.fingerprint != fingerprint:
                plan.outcomes.append(
                    IdempotencyKeyReused(
                        f"idempotency key {cmd.idempotency_key!r} was already used by this "
                        "outlet for a different redemption"
                    )
                )
            else:
                plan.outcomes.append(replace(earlier.receipt, replayed=True))
            continue
        try:
            programme, cycle, entitlement = _resolve(cmd, state, recorded_at)
            entitlement.redeem(cmd.quantity, programme.unit)
        except CanastaError as refusal:  # this command's answer; the batch goes on
            plan.outcomes.append(refusal)
            continue
        assert entitlement.id is not None and programme.id is not None and cycle.id is not None
        seq += 1
        row = NewRedemption(
            card_id=cmd.card_id,
            programme_id=programme.id,
            cycle_id=cycle.id,
            outlet=cmd.outlet,
            quantity=cmd.quantity,
            balance_after=entitlement.remaining,
            key_hash=key,
            fingerprint=fingerprint,
            recorded_at=recorded_at,
            ledger_seq=seq,
        )
        entry, encoded = LedgerEntry.create_encoded(
            seq, EntryKind.REDEMPTION, recorded_at, redemption_body(row, programme.name), prev_hash
        )
        prev_hash = entry.entry_hash
        plan.redemptions.append(row)
        plan.entries.append(entry)
        plan.encodings.append(encoded)
        plan.deltas[entitlement.id] = plan.deltas.get(entitlement.id, 0) + cmd.quantity
        receipt = Receipt(
            redemption_id=seq,
            card_id=cmd.card_id,
            programme=programme.name,
            unit=programme.unit,
            quantity=cmd.quantity,
            remaining=entitlement.remaining,
            outlet=cmd.outlet,
            recorded_at=recorded_at,
            ledger_seq=seq,
            entry_hash=entry.entry_hash,
        )
        decided[key] = StoredRedemption(receipt, row.fingerprint)
        plan.outcomes.append(receipt)
    return plan


def _resolve(cmd: RedeemQuota, state: BatchState, recorded_at: str) -> tuple[Programme, Cycle, Entitlement]:
    card = state.cards.get(cmd.card_id)
    if card is None:
        raise CardNotFound(f"no card {format_card_id(cmd.card_id)} was ever issued")
    card.require_active()
    # A typed id is held to the card's expiry as a scanned code is (the UTC date, as the
    # scanned code's check uses).
    if card.expires_on is not None and recorded_at[:10] > card.expires_on.isoformat():
        raise CardExpired(
            f"card {format_card_id(card.id)} expired on {card.expires_on.isoformat()}; a new card is issued "
            "at the registry office"
        )
    programme = state.programmes.get(cmd.programme)
    if programme is None or programme.id is None:
        raise ProgrammeNotFound(f"there is no programme called {cmd.programme!r}")
    if card.beneficiary.kind is not programme.per:
        raise WrongProgramme(
            f"{programme.name} is given per {programme.per.value}, and card "
            f"{format_card_id(card.id)} belongs to a {card.beneficiary.kind.value}"
        )
    cycle = state.open_cycles.get(programme.id)
    if cycle is None or cycle.id is None:
        raise CycleClosed(f"{programme.name} has no open cycle")
    cycle.require_open(programme.name)
    entitlement = state.entitlements.get((cycle.id, card.beneficiary))
    if entitlement is None:
        raise WrongProgramme(
            f"the holder of card {format_card_id(card.id)} has no {programme.name} entitlement this cycle"
        )
    return programme, cycle, entitlement
