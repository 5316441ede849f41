"""Staff reads of the registry: a search, and a household's whole record. Both need a
stated purpose, and both leave an entry in the access log of every household they show,
in the same transaction as the read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from canasta.adapters import attributes_repo
from canasta.adapters.db import fold_case, transaction
from canasta.adapters.tables import (
    appeals,
    cards,
    cycles,
    entitlements,
    households,
    persons,
    programmes,
    vehicles,
)
from canasta.domain.errors import InvalidInput, MalformedCardId, NotFound
from canasta.domain.model import format_card_id, normalise_card_id
from canasta.domain.text import typed
from canasta.registry.schema import Owner
from canasta.service import access, dedup
from canasta.service.authz import Permission, Staff, require

SEARCH_LIMIT = 20


@dataclass(frozen=True, slots=True)
class Hit:
    household_ref: str
    region: str
    municipality: str
    members: int
    #: The registration the search matched, as "given family second" (empty when the
    #: household itself matched).
    matched: str


@dataclass(frozen=True, slots=True)
class Member:
    registration_id: str
    given_names: str
    family_name: str
    second_family_name: str
    sex: str
    date_of_birth: date
    #: The registration id this one was merged into as a duplicate (None: counted).
    merged_into: str | None
    declared: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CardLine:
    card_id: str
    holder: str
    status: str
    issued_at: str


@dataclass(frozen=True, slots=True)
class EntitlementLine:
    programme: str
    unit: str
    starts_on: date
    ends_on: date
    holder: str
    quantity: int
    redeemed: int
    entitlement_id: int


@dataclass(frozen=True, slots=True)
class AppealLine:
    id: int
    subject: str
    status: str
    filed_at: str


@dataclass(frozen=True, slots=True)
class HouseholdRecord:
    id: int
    ref: str
    region: str
    municipality: str
    address: str
    created_at: str
    declared: dict[str, Any]
    members: list[Member]
    vehicles: list[tuple[str, str]]
    cards: list[CardLine]
    entitlements: list[EntitlementLine]
    appeals: list[AppealLine]
    accesses: list[access.Access]


def _name_terms(query: str) -> list[str]:
    return [t for t in query.lower().split() if t]


def search(engine: sa.Engine, actor: Staff, query: str, purpose: str) -> list[Hit]:
    """Households matching a household ref, registration id, card id or names (family
    name, optionally with a given name). Every household shown is logged as read."""
    require(actor, Permission.READ_RECORDS)
    why = access.check_purpose(purpose)
    text = " ".join(typed(query, "search").split())
    if not 2 <= len(text) <= 100:
        raise InvalidInput("search for 2 to 100 characters: a household, registration or card id, or names")
    members = sa.select(sa.func.count()).where(
        persons.c.household_id == households.c.id, persons.c.merged_into.is_(None)
    )
    base = sa.select(
        households.c.id,
        households.c.ref,
        households.c.region,
        households.c.municipality,
        members.scalar_subquery().label("members"),
    )
    with transaction(engine) as conn:
        found: dict[int, Hit] = {}
        for row in conn.execute(base.where(households.c.ref == text)):
            found[int(row.id)] = Hit(row.ref, row.region, row.municipality, int(row.members), "")
        try:
            card = normalise_card_id(text)
        except MalformedCardId:
            card = None
        if card is not None:
            holder = sa.select(cards.c.household_id).where(cards.c.id == card).scalar_subquery()
            for row in conn.execute(base.where(households.c.id == holder)):
                found[int(row.id)] = Hit(row.ref, row.region, row.municipality, int(row.members), "")
        person_query = sa.select(
            persons.c.household_id, persons.c.given_names, persons.c.family_name, persons.c.second_family_name
        )
        by_id = conn.execute(person_query.where(persons.c.registration_id == text)).all()
        terms = _name_terms(text)
        by_name: Sequence[Any] = []
        if terms and not by_id:
            clause = fold_case(conn, persons.c.family_name) == terms[0]
            if len(terms) > 1:
                rest = " ".join(terms[1:])
                clause = sa.and_(
                    clause,
                    sa.or_(
                        fold_case(conn, persons.c.given_names).like(f"{_escape(rest)}%", escape="\\"),
                        fold_case(conn, persons.c.second_family_name) == rest,
                    ),
                )
            by_name = conn.execute(person_query.where(clause).limit(SEARCH_LIMIT)).all()
        for person in [*by_id, *by_name]:
            if len(found) >= SEARCH_LIMIT:
                break
            row = conn.execute(base.where(households.c.id == person.household_id)).one()
            name = " ".join(
                p for p in (person.given_names, person.family_name, person.second_family_name) if p
            )
            found.setdefault(int(row.id), Hit(row.ref, row.region, row.municipality, int(row.members), name))
        hits = dict(list(found.items())[:SEARCH_LIMIT])
        access.record_staff_read(conn, actor, hits, why, "search result")
    return list(hits.values())


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _declared_names(conn: sa.Connection, owner: Owner) -> list[str]:
    return [a.name for a in attributes_repo.load(conn).values() if a.belongs_to is owner]


def open_household(engine: sa.Engine, actor: Staff, ref: str, purpose: str) -> HouseholdRecord:
    """A household's whole record: members, vehicles, declared values, cards, entitlements
    and appeals, and who read it before. The read itself is logged first."""
    require(actor, Permission.READ_RECORDS)
    why = access.check_purpose(purpose)
    with transaction(engine) as conn:
        home = conn.execute(sa.select(households).where(households.c.ref == ref)).one_or_none()
        if home is None:
            raise NotFound(f"there is no household {ref!r}")
        hid = int(home.id)
        access.record_staff_read(conn, actor, [hid], why, "record")
        member_rows = conn.execute(
            sa.select(persons).where(persons.c.household_id == hid).order_by(persons.c.id)
        ).all()
        registration_of = {int(p.id): p.registration_id for p in member_rows}
        missing = {int(p.merged_into) for p in member_rows if p.merged_into is not None} - set(
            registration_of
        )
        if missing:
            registration_of.update(
                (int(r.id), r.registration_id)
                for r in conn.execute(
                    sa.select(persons.c.id, persons.c.registration_id).where(persons.c.id.in_(missing))
                )
            )
        home_values = attributes_repo.values(
            conn, "households", _declared_names(conn, Owner.HOUSEHOLD), [hid]
        )
        person_values = attributes_repo.values(
            conn, "persons", _declared_names(conn, Owner.PERSON), [int(p.id) for p in member_rows]
        )
        members = [
            Member(
                p.registration_id,
                p.given_names,
                p.family_name,
                p.second_family_name,
                p.sex,
                p.date_of_birth,
                registration_of[int(p.merged_into)] if p.merged_into is not None else None,
                person_values.get(int(p.id), {}),
            )
            for p in member_rows
        ]
        vehicle_rows = conn.execute(
            sa.select(vehicles.c.plate, vehicles.c.kind)
            .where(vehicles.c.household_id == hid)
            .order_by(vehicles.c.plate)
        ).all()
        plates = {str(v.plate) for v in vehicle_rows}
        card_rows = conn.execute(
            sa.select(cards, vehicles.c.plate)
            .outerjoin(
                vehicles,
                sa.and_(cards.c.beneficiary_kind == "vehicle", vehicles.c.id == cards.c.beneficiary_id),
            )
            .where(cards.c.household_id == hid)
            .order_by(cards.c.issued_at, cards.c.id)
        ).all()
        ent_rows = conn.execute(
            sa.select(
                programmes.c.name,
                programmes.c.unit,
                cycles.c.starts_on,
                cycles.c.ends_on,
                entitlements.c.beneficiary_kind,
                entitlements.c.beneficiary_id,
                entitlements.c.quantity,
                entitlements.c.redeemed,
                entitlements.c.id,
                vehicles.c.plate,
            )
            .join(cycles, cycles.c.id == entitlements.c.cycle_id)
            .join(programmes, programmes.c.id == entitlements.c.programme_id)
            .outerjoin(
                vehicles,
                sa.and_(
                    entitlements.c.beneficiary_kind == "vehicle",
                    vehicles.c.id == entitlements.c.beneficiary_id,
                ),
            )
            .where(entitlements.c.household_id == hid)
            .order_by(cycles.c.starts_on.desc(), programmes.c.name)
            .limit(50)
        ).all()
        appeal_rows = conn.execute(
            sa.select(appeals.c.id, appeals.c.subject, appeals.c.status, appeals.c.filed_at)
            .where(appeals.c.household_id == hid)
            .order_by(appeals.c.id.desc())
        ).all()
        record = HouseholdRecord(
            hid,
            home.ref,
            home.region,
            home.municipality,
            home.address,
            home.created_at,
            home_values.get(hid, {}),
            members,
            [(str(v.plate), str(v.kind)) for v in vehicle_rows],
            [
                CardLine(
                    format_card_id(c.id), c.plate if c.plate in plates else "household", c.status, c.issued_at
                )
                for c in card_rows
            ],
            [
                EntitlementLine(
                    e.name,
                    e.unit,
                    e.starts_on,
                    e.ends_on,
                    e.plate if e.beneficiary_kind == "vehicle" else "household",
                    int(e.quantity),
                    int(e.redeemed),
                    int(e.id),
                )
                for e in ent_rows
            ],
            [AppealLine(int(a.id), a.subject, a.status, a.filed_at) for a in appeal_rows],
            access.log_of_household(conn, hid, limit=50),
        )
    return record


def review_item(engine: sa.Engine, actor: Staff, item_id: int) -> dedup.ReviewItem:
    """A duplicate-review item: two registrations side by side. Reading it is a read of
    both households' records, logged with the purpose the queue gives."""
    require(actor, Permission.REVIEW_DUPLICATES)
    item = dedup.get_item(engine, item_id)
    refs = {item.left.household_ref, item.right.household_ref}
    with transaction(engine) as conn:
        ids = [int(i) for i in conn.scalars(sa.select(households.c.id).where(households.c.ref.in_(refs)))]
        access.record_staff_read(
            conn,
            actor,
            ids,
            f"checking possible duplicate registrations (review item {item.id})",
            "duplicate review",
        )
    return item


def decide_review(
    engine: sa.Engine, actor: Staff, item_id: int, decision: str, note: str | None
) -> dedup.Decision:
    require(actor, Permission.REVIEW_DUPLICATES)
    return dedup.decide(engine, item_id, decision, actor.username, note)
