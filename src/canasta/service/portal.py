"""The beneficiary's side: sign in with card and PIN; what the card's holder gets and why,
what they took, their receipts, who read their record, their appeals.

Every function takes the signed-in card id and answers only about that card's holder:
an id from another household is "not found", never someone else's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from canasta.adapters.db import transaction
from canasta.adapters.tables import card_pins, cards, households, outlets, programmes, redemptions, vehicles
from canasta.domain.errors import CanastaError, MalformedCardId, NotFound, SignInRefused
from canasta.domain.model import format_card_id, normalise_card_id
from canasta.domain.receipt import LogReceipt
from canasta.service import access, credentials, sessions, signin
from canasta.service.cards import Balance, card_balance
from canasta.service.rules import Explained, explain_entitlement
from canasta.service.transparency import LogView


@dataclass(frozen=True, slots=True)
class Holder:
    card_id: str
    card_label: str
    kind: str
    #: The household ref, or the vehicle's plate.
    label: str
    household_id: int
    household_ref: str


@dataclass(frozen=True, slots=True)
class Entitled:
    balance: Balance
    explained: Explained | None
    #: Why there is no explanation (granted before policies were published), if none.
    missing: str | None


@dataclass(frozen=True, slots=True)
class Taken:
    ledger_seq: int
    programme: str
    unit: str
    quantity: int
    balance_after: int
    outlet: str
    recorded_at: str
    card_label: str
    outlet_name: str = ""


def set_pin(engine: sa.Engine, raw_card: str, pin: str) -> str:
    """Set (or replace) the PIN of an active card, at issue or at the counter; ends the
    card's portal sessions. Returns the card id."""
    hashed = credentials.hash_secret(credentials.check_pin(pin))
    card_id = normalise_card_id(raw_card)
    now = credentials.utc_now().isoformat(timespec="seconds")
    with transaction(engine) as conn:
        status = conn.scalar(sa.select(cards.c.status).where(cards.c.id == card_id))
        if status is None:
            raise NotFound(f"there is no card {format_card_id(card_id)}")
        if status != "active":
            raise CanastaError(f"card {format_card_id(card_id)} is {status}; set a PIN on its new card")
        conn.execute(sa.delete(card_pins).where(card_pins.c.card_id == card_id))
        conn.execute(
            card_pins.insert().values(card_id=card_id, pin_hash=hashed, set_at=now, failed_attempts=0)
        )
        sessions.end_all(conn, "portal", card_id)
    return card_id


def sign_in(engine: sa.Engine, raw_card: str, pin: str) -> str:
    """The card id, when the PIN is right and the card active. Wrong card, wrong PIN, no PIN
    set and a withdrawn card all get the same answer; five wrong PINs in a row lock the
    card's sign-in (``signin.check``)."""
    try:
        card_id = normalise_card_id(raw_card)
    except MalformedCardId:
        card_id = ""
    row = signin.check(
        engine,
        card_pins,
        card_pins.c.card_id,
        card_id,
        card_pins.c.failed_attempts,
        card_pins.c.pin_hash,
        pin[:16],
    )
    if row is not None:
        with transaction(engine, write=False) as conn:
            status = conn.scalar(sa.select(cards.c.status).where(cards.c.id == card_id))
        if status == "active":
            return card_id
    raise SignInRefused("the card number or PIN is wrong")


def holder(engine: sa.Engine, card_id: str) -> Holder:
    with transaction(engine, write=False) as conn:
        row = conn.execute(
            sa.select(cards, households.c.ref, vehicles.c.plate)
            .join(households, households.c.id == cards.c.household_id)
            .outerjoin(
                vehicles,
                sa.and_(cards.c.beneficiary_kind == "vehicle", vehicles.c.id == cards.c.beneficiary_id),
            )
            .where(cards.c.id == card_id)
        ).one_or_none()
    if row is None:
        raise NotFound("there is no such card")
    label = row.plate if row.beneficiary_kind == "vehicle" else row.ref
    return Holder(
        card_id, format_card_id(card_id), row.beneficiary_kind, label, int(row.household_id), row.ref
    )


def entitlements(engine: sa.Engine, card_id: str, language: str) -> list[Entitled]:
    """What the holder may take in each open cycle, each with its explanation."""
    _, balances = card_balance(engine, card_id)
    found: list[Entitled] = []
    for balance in balances:
        try:
            explained = explain_entitlement(engine, balance.entitlement_id, language, card_id)
        except NotFound as missing:
            found.append(Entitled(balance, None, missing.message))
            continue
        found.append(Entitled(balance, explained, None))
    return found


def history(engine: sa.Engine, card_id: str, limit: int = 50, before: int | None = None) -> list[Taken]:
    """What was handed out to the holder (with this card or an earlier one), newest first."""
    query = (
        sa.select(redemptions, programmes.c.name, programmes.c.unit, outlets.c.name.label("outlet_name"))
        .join(programmes, programmes.c.id == redemptions.c.programme_id)
        .outerjoin(outlets, outlets.c.code == redemptions.c.outlet_code)
        .where(redemptions.c.card_id.in_(_holder_cards_query(card_id)))
        .order_by(redemptions.c.ledger_seq.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(redemptions.c.ledger_seq < before)
    with transaction(engine, write=False) as conn:
        rows = conn.execute(query).all()
    return [
        Taken(
            int(r.ledger_seq),
            r.name,
            r.unit,
            int(r.quantity),
            int(r.balance_after),
            r.outlet_code,
            r.recorded_at,
            format_card_id(r.card_id),
            r.outlet_name or r.outlet_code,
        )
        for r in rows
    ]


def _holder_cards_query(card_id: str) -> sa.Select:  # type: ignore[type-arg]
    card = sa.select(cards.c.beneficiary_kind, cards.c.beneficiary_id).where(cards.c.id == card_id).subquery()
    return sa.select(cards.c.id).where(
        cards.c.beneficiary_kind == card.c.beneficiary_kind, cards.c.beneficiary_id == card.c.beneficiary_id
    )


def receipt(view: LogView, card_id: str, ledger_seq: int) -> LogReceipt:
    """The log receipt of a redemption made for this holder, proved against the latest
    checkpoint (``canasta verify receipt FILE`` checks it)."""
    with transaction(view.engine, write=False) as conn:
        made_with = conn.scalar(
            sa.select(redemptions.c.card_id).where(redemptions.c.ledger_seq == ledger_seq)
        )
        mine = set(conn.scalars(_holder_cards_query(card_id)))
    if made_with is None or made_with not in mine:
        raise NotFound(f"there is no receipt {ledger_seq} for this card")
    return view.receipt(ledger_seq)


def access_log(engine: sa.Engine, card_id: str, before: int | None = None) -> list[access.Access]:
    """Every read of the holder's household record by staff or partner systems, newest
    first, a page at a time."""
    who = holder(engine, card_id)
    with transaction(engine, write=False) as conn:
        return access.log_of_household(conn, who.household_id, before=before)


def today() -> date:
    return credentials.utc_now().date()
