"""A partner's search of the registry (DCI ``search_request`` items), run as one query per
item over people (``Member``) or households (``Group``).

What a partner may ask about and receive is bounded three times:
- the names a query uses passed the protected-attribute firewall when it was read
  (``dci_query``), and here must also be attributes this registry holds;
- a record carries only the fields the partner was registered for;
- every household a search returns is written to its access log, with the partner's name,
  its registered purpose and the consent the request carried, in the same transaction as
  the read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import sqlalchemy as sa

from canasta.adapters import attributes_repo
from canasta.adapters.db import transaction
from canasta.adapters.tables import households, persons
from canasta.domain.dci_query import FILTER, SORT, Combined, Condition, Node, QueryRejected, Search
from canasta.policy.compile import column_name
from canasta.registry.schema import Attribute, AttributeType, Owner
from canasta.service import access
from canasta.service.partners import Partner

REG_TYPE = "ns:org:RegistryType:Social"
#: Identifier types a partner may look people up by, and what they are here.
ID_TYPES = {
    "UIN": "registration_id",
    "NIN": "registration_id",
    "REGISTRATION_ID": "registration_id",
    "HOUSEHOLD_ID": "household",
    "MOBILE": "phone",
}
_SEXES = {"f": "F", "female": "F", "m": "M", "male": "M", "x": "X", "other": "X"}


@dataclass(frozen=True, slots=True)
class Page:
    records: list[dict[str, Any]]
    total_count: int
    page_size: int
    page_number: int
    entity: str


def _members() -> sa.ScalarSelect[Any]:
    return (
        sa.select(sa.func.count())
        .select_from(persons)
        .where(persons.c.household_id == households.c.id, persons.c.merged_into.is_(None))
        .correlate(households)
        .scalar_subquery()
    )


def _years_before(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def _number(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise QueryRejected(f"{name} is compared with a number, not {value!r}", FILTER) from None
    if not math.isfinite(number) or abs(number) > 1e15:
        raise QueryRejected(f"{name} is compared with a finite number of at most 15 digits", FILTER)
    return number


def _compare(column: Any, op: str, value: Any) -> sa.ColumnElement[bool]:
    if op == "in":
        return column.in_(list(value))  # type: ignore[no-any-return]
    return {  # type: ignore[no-any-return]
        "eq": column == value,
        "ne": column != value,
        "lt": column < value,
        "le": column <= value,
        "gt": column > value,
        "ge": column >= value,
    }[op]


def _age(condition: Condition, today: date) -> sa.ColumnElement[bool]:
    """``age OP n`` as a comparison of dates of birth (which an index can serve)."""
    dob = persons.c.date_of_birth
    if condition.op == "in":
        return sa.or_(*(_age(Condition("age", "eq", v), today) for v in condition.value))
    years = int(_number(condition.value, "age"))
    if not 0 <= years <= 150:
        raise QueryRejected(f"an age is from 0 to 150, not {condition.value!r}", FILTER)
    at = _years_before(today, years)  # born on or before this: at least ``years`` old
    next_year = _years_before(today, years + 1)  # born on or before this: older than ``years``
    return {
        "eq": sa.and_(dob <= at, dob > next_year),
        "ne": sa.or_(dob > at, dob <= next_year),
        "lt": dob > at,
        "le": dob > next_year,
        "gt": dob <= next_year,
        "ge": dob <= at,
    }[condition.op]


def _date(value: Any, name: str = "birth_date") -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise QueryRejected(f"{name} is a date (YYYY-MM-DD), not {value!r}", FILTER) from None


def _typed(value: Any, attribute: Attribute) -> Any:
    if attribute.type in (AttributeType.INTEGER, AttributeType.DECIMAL):
        return _number(value, attribute.name)
    if attribute.type is AttributeType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes"):
            return True
        if str(value).lower() in ("false", "0", "no"):
            return False
        raise QueryRejected(f"{attribute.name} is true or false, not {value!r}", FILTER)
    if attribute.type is AttributeType.DATE:
        return _date(value, attribute.name)
    return str(value)


#: The field of a partner's grant that a query name reveals: a partner may filter and sort
#: only by what it may receive (a filter on anything else would tell it that field through
#: the matches).
GRANT_OF = {
    "age": "birth_date",
    "birth_date": "birth_date",
    "sex": "sex",
    "gender": "sex",
    "given_name": "given_names",
    "given_names": "given_names",
    "surname": "family_names",
    "family_name": "family_names",
    "registration_id": "registration_id",
    "location": "region",
    "region": "region",
    "district": "municipality",
    "municipality": "municipality",
    "group_size": "group_size",
    "household": "household",
}
#: Fixed attributes held as text: a value for them is compared as text.
_TEXT = {
    "given_name",
    "given_names",
    "surname",
    "family_name",
    "registration_id",
    "location",
    "region",
    "district",
    "municipality",
    "household",
}


class _Columns:
    """The attributes a query may name, for people or for households, within a grant."""

    def __init__(self, conn: sa.Connection, entity: str, granted: tuple[str, ...] | None = None) -> None:
        self.entity = entity
        self.declared = attributes_repo.load(conn)
        self.granted = granted

    def allow(self, name: str, what: str = "filter on") -> None:
        """Refuse a name whose field the partner may not receive."""
        field = GRANT_OF.get(name, name)
        if self.granted is not None and field not in self.granted:
            raise QueryRejected(
                f"this partner may not {what} {name!r}: it does not receive {field!r}", FILTER
            )

    def column(self, name: str) -> tuple[Any, Attribute | None]:
        """The column ``name`` means here, and its declared attribute if it is one."""
        fixed: dict[str, Any] = {
            "location": households.c.region,
            "region": households.c.region,
            "district": households.c.municipality,
            "municipality": households.c.municipality,
            "group_size": _members(),
            "household": households.c.ref,
        }
        if self.entity == "Member":
            fixed |= {
                "sex": persons.c.sex,
                "gender": persons.c.sex,
                "birth_date": persons.c.date_of_birth,
                "given_name": persons.c.given_names,
                "given_names": persons.c.given_names,
                "surname": persons.c.family_name,
                "family_name": persons.c.family_name,
                "registration_id": persons.c.registration_id,
            }
        if name in fixed:
            return fixed[name], None
        attribute = self.declared.get(name)
        # Declared columns are named by the checked attribute name (column_name), not by
        # anything the partner sent.
        if attribute is not None and attribute.belongs_to is Owner.HOUSEHOLD:
            return sa.literal_column(f'households."{column_name(name)}"'), attribute
        if attribute is not None and attribute.belongs_to is Owner.PERSON and self.entity == "Member":
            return sa.literal_column(f'persons."{column_name(name)}"'), attribute
        raise QueryRejected(f"this registry has no attribute {name!r} for a {self.entity}", FILTER)

    def condition(self, node: Node, today: date) -> sa.ColumnElement[bool]:
        if isinstance(node, Combined):
            parts = [self.condition(p, today) for p in node.parts]
            if node.kind == "not":
                return sa.not_(parts[0])
            return sa.and_(*parts) if node.kind == "and" else sa.or_(*parts)
        self.allow(node.attribute)
        if node.attribute == "age":
            if self.entity != "Member":
                raise QueryRejected("age is asked of a Member, not a Group", FILTER)
            return _age(node, today)
        column, attribute = self.column(node.attribute)
        value: Any = node.value
        if node.attribute in _TEXT:
            value = tuple(str(v) for v in value) if node.op == "in" else str(value)
        elif node.attribute in ("sex", "gender"):
            value = tuple(_sex(v) for v in value) if node.op == "in" else _sex(value)
        elif node.attribute == "group_size":
            value = (
                tuple(_number(v, "group_size") for v in value)
                if node.op == "in"
                else _number(value, "group_size")
            )
        elif node.attribute == "birth_date":
            value = tuple(_date(v) for v in value) if node.op == "in" else _date(value)
        elif attribute is not None:
            value = (
                tuple(_typed(v, attribute) for v in value) if node.op == "in" else _typed(value, attribute)
            )
        return _compare(column, node.op, value)


def _sex(value: Any) -> str:
    found = _SEXES.get(str(value).strip().lower())
    if found is None:
        raise QueryRejected(f"sex is female, male or other (F, M, X), not {value!r}", FILTER)
    return found


def check(engine: sa.Engine, partner: Partner, search: Search, today: date) -> None:
    """Refuse (``QueryRejected``) a search this registry would not run for this partner,
    without running it: what a subscription's filter must pass when it is made."""
    with transaction(engine, write=False) as conn:
        columns = _Columns(conn, search.entity, partner.fields)
        if search.id_type is not None:
            meaning = ID_TYPES.get(search.id_type.upper())
            if meaning is None:
                raise QueryRejected(f"this registry has no identifier type {search.id_type!r}", FILTER)
            columns.allow(meaning, "look people up by")
        if search.where is not None:
            columns.condition(search.where, today)


def run(
    engine: sa.Engine,
    partner: Partner,
    search: Search,
    consent: Mapping[str, Any] | None,
    today: date,
    new_between: tuple[int, int] | None = None,
    page_size: int | None = None,
) -> Page:
    """One page of what ``search`` finds, as the records ``partner`` may receive; each
    household returned is logged as read by the partner. ``new_between`` (lo, hi] keeps only
    people (or households with people) registered with ids in that range: what a
    subscription announces."""
    if page_size is not None:
        search = replace(search, page_size=page_size, page_number=1)
    with transaction(engine) as conn:
        columns = _Columns(conn, search.entity, partner.fields)
        if search.entity == "Member":
            query = sa.select(persons.c.id).join(households, households.c.id == persons.c.household_id)
            query = query.where(persons.c.merged_into.is_(None))
            key = persons.c.id
        else:
            query = sa.select(households.c.id)
            key = households.c.id
        if search.id_type is not None:
            meaning = ID_TYPES.get(search.id_type.upper())
            if meaning is None:
                raise QueryRejected(f"this registry has no identifier type {search.id_type!r}", FILTER)
            columns.allow(meaning, "look people up by")
            if meaning == "household":
                query = query.where(households.c.ref == search.id_value)
            elif search.entity == "Member":
                query = query.where(getattr(persons.c, meaning) == search.id_value)
            else:
                people = sa.select(persons.c.household_id).where(
                    getattr(persons.c, meaning) == search.id_value
                )
                query = query.where(households.c.id.in_(people))
        if search.where is not None:
            query = query.where(columns.condition(search.where, today))
        if new_between is not None:
            low, high = new_between
            if search.entity == "Member":
                query = query.where(persons.c.id > low, persons.c.id <= high)
            else:
                joined = sa.select(persons.c.household_id).where(persons.c.id > low, persons.c.id <= high)
                query = query.where(households.c.id.in_(joined))
        total = int(conn.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0)
        order = []
        for name, ascending in search.sort:
            try:
                columns.allow(name, "sort by")
            except QueryRejected as bad:
                raise QueryRejected(bad.message, SORT) from None
            if name == "age":
                if search.entity != "Member":
                    raise QueryRejected("a Group is not sorted by age", SORT)
                order.append(persons.c.date_of_birth.desc() if ascending else persons.c.date_of_birth.asc())
                continue
            try:
                column, _ = columns.column(name)
            except QueryRejected as bad:
                raise QueryRejected(bad.message, SORT) from None
            order.append(column.asc() if ascending else column.desc())
        offset = (search.page_number - 1) * search.page_size
        ids = [
            int(i) for i in conn.scalars(query.order_by(*order, key).offset(offset).limit(search.page_size))
        ]
        records, household_ids = (
            _member_records(conn, columns, partner, ids)
            if search.entity == "Member"
            else _group_records(conn, columns, partner, ids)
        )
        access.record_partner_read(
            conn, partner.id, partner.name, household_ids, partner.purpose, "search result", consent
        )
    return Page(records, total, search.page_size, search.page_number, search.entity)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _member_records(
    conn: sa.Connection, columns: _Columns, partner: Partner, ids: list[int]
) -> tuple[list[dict[str, Any]], list[int]]:
    if not ids:
        return [], []
    rows = {
        int(r.id): r
        for r in conn.execute(
            sa.select(
                persons,
                households.c.ref,
                households.c.region,
                households.c.municipality,
                households.c.address,
                _members().label("size"),
            )
            .join(households, households.c.id == persons.c.household_id)
            .where(persons.c.id.in_(ids))
        )
    }
    fields = set(partner.fields)
    person_attrs = [
        n for n in partner.fields if n in columns.declared and columns.declared[n].belongs_to is Owner.PERSON
    ]
    home_attrs = [
        n
        for n in partner.fields
        if n in columns.declared and columns.declared[n].belongs_to is Owner.HOUSEHOLD
    ]
    person_values = attributes_repo.values(conn, "persons", person_attrs, ids)
    home_values = attributes_repo.values(
        conn, "households", home_attrs, list({int(r.household_id) for r in rows.values()})
    )
    records = []
    for pid in ids:
        r = rows[pid]
        identifiers = []
        if "registration_id" in fields:
            identifiers.append(
                {"@type": "Identifier", "identifier_type": "UIN", "identifier_value": r.registration_id}
            )
        if "household" in fields:
            identifiers.append(
                {"@type": "Identifier", "identifier_type": "HOUSEHOLD_ID", "identifier_value": r.ref}
            )
        person: dict[str, Any] = {"@type": "SRPerson"}
        if identifiers:
            person["identifier"] = identifiers
        name: dict[str, Any] = {}
        if "given_names" in fields:
            name["given_name"] = r.given_names
        if "family_names" in fields:
            # Two family names, as in Spanish and Portuguese names: the second is kept apart
            # (an extra key; the standard's Name has one surname) so a registry reading
            # these records can keep them apart too.
            name["surname"] = r.family_name
            if r.second_family_name:
                name["second_surname"] = r.second_family_name
        if name:
            person["name"] = {"@type": "Name", **name}
        if "sex" in fields:
            person["sex"] = {"F": "female", "M": "male"}.get(r.sex, "other")
        if "birth_date" in fields:
            person["birth_date"] = r.date_of_birth.isoformat()
        address = {
            key: value
            for key, value, wanted in (
                ("street_address", r.address, "address"),
                ("city", r.municipality, "municipality"),
                ("region", r.region, "region"),
            )
            if wanted in fields
        }
        if address:
            person["address"] = address
        if "phone" in fields:
            person["phone_number"] = r.phone
        record: dict[str, Any] = {"@type": "Member", "demographic_info": person}
        if identifiers:
            record["member_identifier"] = identifiers
        extra = {**{k: _plain(v) for k, v in person_values.get(pid, {}).items()}}
        extra |= {k: _plain(v) for k, v in home_values.get(int(r.household_id), {}).items()}
        if "group_size" in fields:
            extra["group_size"] = int(r.size)
        if extra:
            record["additional_attributes"] = [
                {"name": k, "value": v} for k, v in extra.items() if v is not None
            ]
        records.append(record)
    return records, [int(rows[pid].household_id) for pid in ids]


def _group_records(
    conn: sa.Connection, columns: _Columns, partner: Partner, ids: list[int]
) -> tuple[list[dict[str, Any]], list[int]]:
    if not ids:
        return [], []
    rows = {
        int(r.id): r
        for r in conn.execute(sa.select(households, _members().label("size")).where(households.c.id.in_(ids)))
    }
    fields = set(partner.fields)
    home_attrs = [
        n
        for n in partner.fields
        if n in columns.declared and columns.declared[n].belongs_to is Owner.HOUSEHOLD
    ]
    home_values = attributes_repo.values(conn, "households", home_attrs, ids)
    records = []
    for hid in ids:
        r = rows[hid]
        record: dict[str, Any] = {"@type": "spdci:Group", "group_type": "household"}
        if "household" in fields:
            record["group_identifier"] = [
                {"@type": "Identifier", "identifier_type": "HOUSEHOLD_ID", "identifier_value": r.ref}
            ]
        address = {
            key: value
            for key, value, wanted in (
                ("street_address", r.address, "address"),
                ("city", r.municipality, "municipality"),
                ("region", r.region, "region"),
            )
            if wanted in fields
        }
        if address:
            record["place"] = {"address": address}
        if "group_size" in fields:
            record["group_size"] = int(r.size)
        extra = {k: _plain(v) for k, v in home_values.get(hid, {}).items() if v is not None}
        if extra:
            record["additional_attributes"] = [{"name": k, "value": v} for k, v in extra.items()]
        records.append(record)
    return records, ids


def consent_of(criteria: Mapping[str, Any]) -> dict[str, Any] | None:
    """The consent and authorisation a search carried, kept with its access-log entries."""
    kept = {key: criteria[key] for key in ("consent", "authorize") if isinstance(criteria.get(key), Mapping)}
    return json.loads(json.dumps(kept)) if kept else None
