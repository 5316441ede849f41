"""Appeals (DESIGN.md invariant 5): a card holder appeals an entitlement decision, a
refused or wrong redemption, or wrong data in their record; a programme officer decides,
with a reason the card holder reads in the portal."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa

from canasta.adapters.db import transaction
from canasta.adapters.tables import appeals, cards, entitlements, households, redemptions
from canasta.domain.errors import Conflict, InvalidInput, NotFound
from canasta.domain.text import typed
from canasta.service import access
from canasta.service.authz import Permission, Staff, require
from canasta.service.credentials import utc_now

MAX_STATEMENT = 2000
MAX_REASON = 2000


class Subject(StrEnum):
    ENTITLEMENT = "entitlement"
    REDEMPTION = "redemption"
    DATA = "data"


class Outcome(StrEnum):
    UPHELD = "upheld"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Appeal:
    id: int
    card_id: str
    household_ref: str
    subject: Subject
    entitlement_id: int | None
    ledger_seq: int | None
    statement: str
    status: str
    filed_at: str
    decided_at: str | None
    decided_by: str | None
    reason: str | None


def _text(value: str, limit: int, what: str) -> str:
    text = typed(value, what).replace("\r\n", "\n").strip()
    if len(text) < 10:
        raise InvalidInput(f"write the {what} in at least 10 characters")
    if len(text) > limit:
        raise InvalidInput(f"the {what} has at most {limit} characters")
    return text


def _row(r: sa.Row) -> Appeal:  # type: ignore[type-arg]
    return Appeal(
        int(r.id),
        r.card_id,
        r.ref,
        Subject(r.subject),
        None if r.entitlement_id is None else int(r.entitlement_id),
        None if r.ledger_seq is None else int(r.ledger_seq),
        r.statement,
        r.status,
        r.filed_at,
        r.decided_at,
        r.decided_by_name,
        r.reason,
    )


def _select() -> sa.Select:  # type: ignore[type-arg]
    return sa.select(appeals, households.c.ref).join(households, households.c.id == appeals.c.household_id)


def file_appeal(
    engine: sa.Engine,
    card_id: str,
    subject: str,
    statement: str,
    entitlement_id: int | None = None,
    ledger_seq: int | None = None,
) -> Appeal:
    """An appeal by the holder of ``card_id`` (already signed in). What it names must be
    theirs: an entitlement of the card's holder, a redemption made with one of its cards."""
    try:
        kind = Subject(subject)
    except ValueError:
        raise InvalidInput("an appeal is about an entitlement, a redemption or wrong data") from None
    text = _text(statement, MAX_STATEMENT, "appeal")
    with transaction(engine) as conn:
        card = conn.execute(sa.select(cards).where(cards.c.id == card_id)).one_or_none()
        if card is None:
            raise NotFound("there is no such card")
        if kind is Subject.ENTITLEMENT:
            if entitlement_id is None:
                raise InvalidInput("choose the entitlement you appeal")
            owner = conn.execute(
                sa.select(entitlements.c.beneficiary_kind, entitlements.c.beneficiary_id).where(
                    entitlements.c.id == entitlement_id
                )
            ).one_or_none()
            if owner is None or (owner.beneficiary_kind, int(owner.beneficiary_id)) != (
                card.beneficiary_kind,
                int(card.beneficiary_id),
            ):
                raise NotFound(f"there is no entitlement {entitlement_id} for this card")
            ledger_seq = None
        elif kind is Subject.REDEMPTION:
            if ledger_seq is not None:
                made_with = conn.scalar(
                    sa.select(redemptions.c.card_id).where(redemptions.c.ledger_seq == ledger_seq)
                )
                holder_cards = sa.select(cards.c.id).where(
                    cards.c.beneficiary_kind == card.beneficiary_kind,
                    cards.c.beneficiary_id == card.beneficiary_id,
                )
                if made_with is None or made_with not in set(conn.scalars(holder_cards)):
                    raise NotFound(f"there is no redemption {ledger_seq} made with this card")
            entitlement_id = None
        else:
            entitlement_id = ledger_seq = None
        new = conn.execute(
            appeals.insert().values(
                card_id=card_id,
                household_id=int(card.household_id),
                subject=kind.value,
                entitlement_id=entitlement_id,
                ledger_seq=ledger_seq,
                statement=text,
                status="open",
                filed_at=utc_now().isoformat(timespec="seconds"),
            )
        ).inserted_primary_key
        assert new is not None
        return _row(conn.execute(_select().where(appeals.c.id == int(new[0]))).one())


def appeals_of_holder(
    engine: sa.Engine, card_id: str, limit: int | None = None, before: int | None = None
) -> list[Appeal]:
    """The appeals filed with any card of this card's holder, newest first (a page of
    ``limit`` of them, older than appeal ``before``)."""
    with transaction(engine, write=False) as conn:
        card = conn.execute(sa.select(cards).where(cards.c.id == card_id)).one_or_none()
        if card is None:
            return []
        same_holder = sa.select(cards.c.id).where(
            cards.c.beneficiary_kind == card.beneficiary_kind, cards.c.beneficiary_id == card.beneficiary_id
        )
        query = _select().where(appeals.c.card_id.in_(same_holder)).order_by(appeals.c.id.desc())
        if before is not None:
            query = query.where(appeals.c.id < before)
        rows = conn.execute(query.limit(limit)).all()
    return [_row(r) for r in rows]


def inbox(
    engine: sa.Engine, actor: Staff, status: str = "open", limit: int = 100, after: int | None = None
) -> list[Appeal]:
    """Open appeals oldest first (the next to decide on top); decided ones and "all" newest
    first. A page of ``limit``, after appeal ``after`` in that order."""
    require(actor, Permission.VIEW_APPEALS)
    oldest_first = status == "open"
    query = _select().order_by(appeals.c.id if oldest_first else appeals.c.id.desc()).limit(limit)
    if after is not None:
        query = query.where(appeals.c.id > after if oldest_first else appeals.c.id < after)
    if status != "all":
        if status not in {"open", "upheld", "rejected"}:
            raise InvalidInput(f"no appeal status {status!r}")
        query = query.where(appeals.c.status == status)
    with transaction(engine, write=False) as conn:
        return [_row(r) for r in conn.execute(query)]


def count_open(engine: sa.Engine) -> int:
    with transaction(engine, write=False) as conn:
        return int(conn.scalar(sa.select(sa.func.count()).where(appeals.c.status == "open")) or 0)


def open_appeal(engine: sa.Engine, actor: Staff, appeal_id: int, purpose: str) -> Appeal:
    """One appeal, in full. Reading it is reading the household's record: it needs a
    purpose and is logged."""
    require(actor, Permission.VIEW_APPEALS)
    why = access.check_purpose(purpose)
    with transaction(engine) as conn:
        row = conn.execute(_select().where(appeals.c.id == appeal_id)).one_or_none()
        if row is None:
            raise NotFound(f"there is no appeal {appeal_id}")
        access.record_staff_read(conn, actor, [int(row.household_id)], why, "appeal")
        return _row(row)


def decide(engine: sa.Engine, actor: Staff, appeal_id: int, outcome: str, reason: str) -> Appeal:
    """Uphold or reject an open appeal, with the reason the card holder will read."""
    require(actor, Permission.DECIDE_APPEALS)
    try:
        decided = Outcome(outcome)
    except ValueError:
        raise InvalidInput("an appeal is upheld or rejected") from None
    text = _text(reason, MAX_REASON, "reason")
    with transaction(engine) as conn:
        changed = conn.execute(
            sa.update(appeals)
            .where(appeals.c.id == appeal_id, appeals.c.status == "open")
            .values(
                status=decided.value,
                decided_at=utc_now().isoformat(timespec="seconds"),
                decided_by=actor.id,
                decided_by_name=actor.name,
                reason=text,
            )
        ).rowcount
        if not changed:
            exists = conn.scalar(sa.select(appeals.c.status).where(appeals.c.id == appeal_id))
            if exists is None:
                raise NotFound(f"there is no appeal {appeal_id}")
            raise Conflict(f"appeal {appeal_id} was already decided ({exists})")
        return _row(conn.execute(_select().where(appeals.c.id == appeal_id)).one())
