"""Registry SQL: households, people and vehicles."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from canasta.adapters.tables import households, persons, vehicles
from canasta.domain.model import Household, Vehicle
from canasta.policy.compile import column_name
from canasta.registry.schema import Attribute, AttributeType

CHUNK = 5000


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def existing_registration_ids(conn: sa.Connection, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(ids):
        found.update(
            conn.scalars(sa.select(persons.c.registration_id).where(persons.c.registration_id.in_(chunk)))
        )
    return found


def existing_households(conn: sa.Connection, refs: Sequence[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for chunk in _chunks(refs):
        for row in conn.execute(
            sa.select(
                households.c.id,
                households.c.ref,
                households.c.region,
                households.c.municipality,
                households.c.address,
            ).where(households.c.ref.in_(chunk))
        ):
            found[row.ref] = row
    return found


def household_ids(conn: sa.Connection, refs: Sequence[str]) -> dict[str, int]:
    return {ref: int(row.id) for ref, row in existing_households(conn, refs).items()}


def existing_plates(conn: sa.Connection, plates: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(plates):
        found.update(conn.scalars(sa.select(vehicles.c.plate).where(vehicles.c.plate.in_(chunk))))
    return found


_SA_TYPE: dict[AttributeType, sa.types.TypeEngine[Any]] = {
    AttributeType.INTEGER: sa.BigInteger(),
    AttributeType.DECIMAL: sa.Float(),
    AttributeType.BOOLEAN: sa.Boolean(),
    AttributeType.TEXT: sa.String(),
    AttributeType.DATE: sa.Date(),
}


def _with_attributes(table: sa.Table, names: Iterable[str], attributes: Mapping[str, Attribute]) -> sa.Table:
    """A copy of ``table`` that also has the ``attr_`` columns of ``names``."""
    copy = table.to_metadata(sa.MetaData())
    for name in sorted(names):
        copy.append_column(sa.Column(column_name(name), _SA_TYPE[attributes[name].type]))
    return copy


def insert_households(
    conn: sa.Connection,
    new: Sequence[Household],
    known: dict[str, int],
    now: str,
    progress: Callable[[int, int], None] | None = None,
    attributes: Mapping[str, Attribute] | None = None,
) -> dict[str, int]:
    """Insert the households not in ``known`` and all their members, with their declared
    attribute values. Returns ref → id for every household touched. ``progress(done,
    total)`` is told of each chunk of rows."""
    declared = attributes or {}
    ids = dict(known)
    fresh = [h for h in new if h.ref not in known]
    own = sorted({n for h in fresh for n in h.attributes})
    target = _with_attributes(households, own, declared)
    for start in range(0, len(fresh), CHUNK):
        chunk = fresh[start : start + CHUNK]
        rows = conn.execute(
            target.insert().returning(target.c.id, target.c.ref, sort_by_parameter_order=True),
            [
                {
                    "ref": h.ref,
                    "region": h.region,
                    "municipality": h.municipality,
                    "address": h.address,
                    "created_at": now,
                    **{column_name(n): h.attributes.get(n) for n in own},
                }
                for h in chunk
            ],
        )
        ids.update({row.ref: int(row.id) for row in rows})
    theirs = sorted({n for h in new for p in h.members for n in p.attributes})
    members = [
        {
            "household_id": ids[h.ref],
            "registration_id": p.registration_id,
            "given_names": p.given_names,
            "family_name": p.family_name,
            "second_family_name": p.second_family_name,
            "sex": p.sex,
            "date_of_birth": p.date_of_birth,
            "phone": p.phone,
            **{column_name(n): p.attributes.get(n) for n in theirs},
        }
        for h in new
        for p in h.members
    ]
    people = _with_attributes(persons, theirs, declared)
    total = len(fresh) + len(members)
    if progress:
        progress(len(fresh), total)
    for start in range(0, len(members), CHUNK):
        conn.execute(people.insert(), members[start : start + CHUNK])
        if progress:
            progress(len(fresh) + min(start + CHUNK, len(members)), total)
    return ids


def insert_vehicles(
    conn: sa.Connection,
    new: Sequence[Vehicle],
    ids: dict[str, int],
    attributes: Mapping[str, Attribute] | None = None,
) -> None:
    own = sorted({n for v in new for n in v.attributes})
    target = _with_attributes(vehicles, own, attributes or {})
    rows = [
        {
            "plate": v.plate,
            "kind": v.kind,
            "household_id": ids[v.household_ref],
            **{column_name(n): v.attributes.get(n) for n in own},
        }
        for v in new
    ]
    for start in range(0, len(rows), CHUNK):
        conn.execute(target.insert(), rows[start : start + CHUNK])


def counts(conn: sa.Connection) -> dict[str, int]:
    return {
        "households": conn.scalar(sa.select(sa.func.count()).select_from(households)) or 0,
        "persons": conn.scalar(sa.select(sa.func.count()).select_from(persons)) or 0,
        "vehicles": conn.scalar(sa.select(sa.func.count()).select_from(vehicles)) or 0,
    }
