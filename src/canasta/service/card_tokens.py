"""Card codes to print on cards, and the revocation list to publish, both signed by the
issuer key (``canasta.domain.card_token`` describes the formats)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from canasta.adapters.db import transaction
from canasta.adapters.tables import cards
from canasta.domain.card_token import expiry_for, revocation_note, sign_card
from canasta.domain.errors import CardNotFound, CardRevoked
from canasta.domain.model import CardStatus, format_card_id, normalise_card_id
from canasta.service.keys import Keyring

_CHUNK = 500  # card ids per query: well under every database's limit on bound values


@dataclass(frozen=True, slots=True)
class PrintableCard:
    """An active card and the signed code its QR holds."""

    card_id: str
    payload: str
    issued_on: date
    expires_on: date


def printable_cards(
    engine: sa.Engine, keyring: Keyring, raw_card_ids: Sequence[str] | None
) -> list[PrintableCard]:
    """The signed codes of the given cards (in the order given, each once), or of every
    active card when ``raw_card_ids`` is None. A card that was never issued, or that was
    withdrawn, is refused and nothing is returned: a withdrawn card is never printed again."""
    wanted: list[str] | None = None
    if raw_card_ids is not None:
        wanted = list(dict.fromkeys(normalise_card_id(raw) for raw in raw_card_ids))
    query = sa.select(cards.c.id, cards.c.status, cards.c.issued_at)
    with transaction(engine, write=False) as conn:
        if wanted is None:
            rows = conn.execute(
                query.where(cards.c.status == CardStatus.ACTIVE.value).order_by(cards.c.id)
            ).all()
            found = {row.id: row for row in rows}
            wanted = [row.id for row in rows]
        else:
            found = {}
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                found.update((row.id, row) for row in conn.execute(query.where(cards.c.id.in_(chunk))))
    printable = []
    for card_id in wanted:
        row = found.get(card_id)
        if row is None:
            raise CardNotFound(f"no card {format_card_id(card_id)} was ever issued")
        if row.status != CardStatus.ACTIVE.value:
            raise CardRevoked(
                f"card {format_card_id(card_id)} is {row.status}; a withdrawn card is not printed "
                "(reissue it to print its replacement)"
            )
        issued_on = date.fromisoformat(str(row.issued_at)[:10])
        printable.append(
            PrintableCard(
                card_id, sign_card(keyring.issuer, card_id, issued_on), issued_on, expiry_for(issued_on)
            )
        )
    return printable


def card_payload(engine: sa.Engine, keyring: Keyring, raw_card_id: str) -> str:
    """The signed code for an active card's QR; its issue date is the day it was issued."""
    return printable_cards(engine, keyring, [raw_card_id])[0].payload


def revocation_list(engine: sa.Engine, keyring: Keyring, now: datetime) -> str:
    """Every lost and revoked card, as a note signed by the issuer key at ``now``."""
    with transaction(engine, write=False) as conn:
        rows = conn.execute(
            sa.select(cards.c.id, cards.c.status)
            .where(cards.c.status.in_([CardStatus.LOST.value, CardStatus.REVOKED.value]))
            .order_by(cards.c.id)
        ).all()
    return revocation_note(keyring.issuer, now, [(row.id, row.status) for row in rows])
