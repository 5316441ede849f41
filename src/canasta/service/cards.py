"""Cards: issue, withdraw (lost or revoked), reissue, and what a card's holder may still take.

A card is only a random id bound to a household or a vehicle. Balances belong to the
beneficiary, so a reissued card carries the balance over without moving anything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from canasta.adapters import ledger_repo
from canasta.adapters.db import transaction
from canasta.adapters.tables import (
    card_pins,
    cards,
    cycles,
    entitlements,
    households,
    programmes,
    vehicles,
)
from canasta.domain.errors import CardNotFound, CardRevoked, Conflict
from canasta.domain.ledger import EntryKind
from canasta.domain.model import (
    Beneficiary,
    BeneficiaryKind,
    Card,
    CardStatus,
    format_card_id,
    new_card_id,
    normalise_card_id,
)
from canasta.service import sessions
from canasta.service.clock import utc_now_iso


@dataclass(frozen=True, slots=True)
class IssuedCard:
    card_id: str
    kind: BeneficiaryKind
    holder: str  # household ref or number plate: for the registrar who hands cards out


@dataclass(frozen=True, slots=True)
class Balance:
    programme: str
    unit: str
    cycle_id: int
    starts_on: date
    ends_on: date
    entitled: int
    redeemed: int
    #: Its explanation: GET /api/v1/entitlements/{id}/explanation.
    entitlement_id: int = 0

    @property
    def remaining(self) -> int:
        return self.entitled - self.redeemed


def issue_missing_cards(engine: sa.Engine) -> list[IssuedCard]:
    """Issue a card to every household and vehicle that has neither an active card nor a
    revoked one (revocation stands until an officer acts; a lost card is reissued with
    ``reissue_card``)."""
    active = sa.select(cards.c.beneficiary_id).where(cards.c.status.in_(["active", "revoked"]))
    issued: list[IssuedCard] = []
    now = utc_now_iso()
    with transaction(engine) as conn:
        hh = conn.execute(
            sa.select(households.c.id, households.c.ref)
            .where(households.c.id.not_in(active.where(cards.c.beneficiary_kind == "household")))
            .order_by(households.c.id)
        ).all()
        vv = conn.execute(
            sa.select(vehicles.c.id, vehicles.c.plate, vehicles.c.household_id)
            .where(vehicles.c.id.not_in(active.where(cards.c.beneficiary_kind == "vehicle")))
            .order_by(vehicles.c.id)
        ).all()
        rows = []
        for h in hh:
            card = IssuedCard(new_card_id(), BeneficiaryKind.HOUSEHOLD, h.ref)
            issued.append(card)
            rows.append(_card_row(card.card_id, "household", int(h.id), int(h.id), now))
        for v in vv:
            card = IssuedCard(new_card_id(), BeneficiaryKind.VEHICLE, v.plate)
            issued.append(card)
            rows.append(_card_row(card.card_id, "vehicle", int(v.id), int(v.household_id), now))
        for start in range(0, len(rows), 5000):
            conn.execute(cards.insert(), rows[start : start + 5000])
    return issued


def _card_row(
    card_id: str,
    kind: str,
    beneficiary_id: int,
    household_id: int,
    now: str,
    replaces: str | None = None,
) -> dict[str, object]:
    return {
        "id": card_id,
        "beneficiary_kind": kind,
        "beneficiary_id": beneficiary_id,
        "household_id": household_id,
        "status": "active",
        "issued_at": now,
        "replaces": replaces,
    }


def _load(conn: sa.Connection, raw_id: str) -> tuple[Card, int]:
    card_id = normalise_card_id(raw_id)
    row = conn.execute(sa.select(cards).where(cards.c.id == card_id)).one_or_none()
    if row is None:
        raise CardNotFound(f"no card {format_card_id(card_id)} was ever issued")
    card = Card(
        row.id,
        Beneficiary(BeneficiaryKind(row.beneficiary_kind), int(row.beneficiary_id)),
        CardStatus(row.status),
        row.replaces,
    )
    return card, int(row.household_id)


def active_card(engine: sa.Engine, raw_id: str) -> Card:
    """The card, if it is active; a withdrawn card opens nothing (its id is published in the
    revocation list, so it must not open its holder's receipts)."""
    with transaction(engine, write=False) as conn:
        card, _ = _load(conn, raw_id)
    card.require_active()
    return card


def withdraw_card(engine: sa.Engine, raw_id: str, status: CardStatus) -> Card:
    """Mark a card lost or revoked: it is refused from then on. Recorded in the ledger."""
    with transaction(engine) as conn:
        ledger_repo.lock_head(conn)
        card, _ = _load(conn, raw_id)
        card.withdraw(status)
        _store_withdrawal(conn, card)
    return card


def _store_withdrawal(conn: sa.Connection, card: Card) -> None:
    now = utc_now_iso()
    conn.execute(
        cards.update().where(cards.c.id == card.id).values(status=card.status.value, withdrawn_at=now)
    )
    ledger_repo.append(conn, EntryKind.CARD_WITHDRAWN, [{"card": card.id, "status": card.status.value}], now)
    # Whoever is signed in to the portal with it is signed out, and its PIN goes with it.
    sessions.end_all(conn, "portal", card.id)
    conn.execute(sa.delete(card_pins).where(card_pins.c.card_id == card.id))


def reissue_card(engine: sa.Engine, raw_id: str) -> Card:
    """Withdraw a lost card (if it is still active) and issue a new one to the same holder;
    the holder's balance carries over."""
    with transaction(engine) as conn:
        ledger_repo.lock_head(conn)
        old, household_id = _load(conn, raw_id)
        if old.status is CardStatus.REVOKED:
            raise CardRevoked(
                f"card {format_card_id(old.id)} was revoked, not lost; revoked cards are not reissued"
            )
        if old.status is CardStatus.ACTIVE:
            old.withdraw(CardStatus.LOST)
            _store_withdrawal(conn, old)
        elif conn.scalar(sa.select(cards.c.id).where(cards.c.replaces == old.id)):
            raise CardRevoked(f"card {format_card_id(old.id)} was already replaced")
        active = conn.scalar(
            sa.select(cards.c.id).where(
                cards.c.beneficiary_kind == old.beneficiary.kind.value,
                cards.c.beneficiary_id == old.beneficiary.id,
                cards.c.status == CardStatus.ACTIVE.value,
            )
        )
        if active is not None:
            raise Conflict(
                f"the holder of card {format_card_id(old.id)} already has card {format_card_id(active)}"
            )
        new = Card(new_card_id(), old.beneficiary, CardStatus.ACTIVE, old.id)
        conn.execute(
            cards.insert(),
            _card_row(
                new.id,
                old.beneficiary.kind.value,
                old.beneficiary.id,
                household_id,
                utc_now_iso(),
                old.id,
            ),
        )
    return new


def card_balance(engine: sa.Engine, raw_id: str) -> tuple[Card, list[Balance]]:
    """What the card's holder may still take in each open cycle. A withdrawn card is
    refused: whoever holds it now is not to be told the balance."""
    with transaction(engine, write=False) as conn:
        card, _ = _load(conn, raw_id)
        card.require_active()
        rows = conn.execute(
            sa.select(
                programmes.c.name,
                programmes.c.unit,
                cycles.c.id,
                cycles.c.starts_on,
                cycles.c.ends_on,
                entitlements.c.quantity,
                entitlements.c.redeemed,
                entitlements.c.id.label("entitlement_id"),
            )
            .join(cycles, cycles.c.id == entitlements.c.cycle_id)
            .join(programmes, programmes.c.id == entitlements.c.programme_id)
            .where(
                entitlements.c.beneficiary_kind == card.beneficiary.kind.value,
                entitlements.c.beneficiary_id == card.beneficiary.id,
                cycles.c.status == "open",
            )
            .order_by(programmes.c.name)
        ).all()
    return card, [
        Balance(
            r.name,
            r.unit,
            int(r.id),
            r.starts_on,
            r.ends_on,
            int(r.quantity),
            int(r.redeemed),
            int(r.entitlement_id),
        )
        for r in rows
    ]
