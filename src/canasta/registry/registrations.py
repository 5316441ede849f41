"""Validation of registrations (people grouped into households) and vehicles.

Every bad value becomes a ``RowProblem``; the caller stores nothing unless there are none.
The functions take rows that were already read, so they do no I/O and are unit-tested
directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from canasta.domain.errors import RowProblem
from canasta.domain.model import Household, Person, Vehicle
from canasta.registry.csvfile import CsvRow
from canasta.registry.schema import Attribute, Owner, parse_value

REGISTRATION_COLUMNS = (
    "registration_id",
    "given_names",
    "family_name",
    "second_family_name",
    "sex",
    "date_of_birth",
    "region",
    "municipality",
    "address",
    "phone",
    "household_ref",
)
VEHICLE_COLUMNS = ("plate", "kind", "household_ref")
SEXES = {"F", "M", "X"}
VEHICLE_KINDS = ("car", "motorcycle", "van", "truck", "bus", "tractor", "boat", "other")
EARLIEST_BIRTH = date(1900, 1, 1)

_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_PLATE = re.compile(r"^[A-Z0-9]{2,16}$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{5,32}$")
_LIMITS = {
    "given_names": 200,
    "family_name": 200,
    "second_family_name": 200,
    "region": 100,
    "municipality": 100,
    "address": 300,
}


@dataclass(slots=True)
class ParsedRegistrations:
    households: dict[str, Household] = field(default_factory=dict)
    problems: list[RowProblem] = field(default_factory=list)
    #: registration id → (row, line) where it was read, for errors found later.
    where: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def people(self) -> int:
        return sum(len(h.members) for h in self.households.values())


def parse_registrations(
    rows: Iterable[CsvRow], filename: str, today: date, attributes: Sequence[Attribute] = ()
) -> ParsedRegistrations:
    """Group valid registrations into households; collect a problem for every bad value.
    ``attributes`` are the declared household and person attributes whose columns the file
    may carry; a household's values may be given on any of its members' rows, and must
    agree where given on several."""
    result = ParsedRegistrations()
    of_household = [a for a in attributes if a.belongs_to is Owner.HOUSEHOLD]
    of_person = [a for a in attributes if a.belongs_to is Owner.PERSON]
    household_values: dict[str, dict[str, tuple[object, int]]] = {}
    household_rows: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for r in rows:
        values = {k: v.strip() for k, v in r.values.items()}
        before = len(result.problems)

        def bad(column: str, reason: str, r: CsvRow = r) -> None:
            result.problems.append(RowProblem(filename, r.row, column, reason, line=r.line))

        reg_id = values["registration_id"]
        if not _REF.match(reg_id):
            bad("registration_id", _ref_reason(reg_id))
        elif reg_id in first_seen:
            bad("registration_id", f"{reg_id!r} was already used on row {first_seen[reg_id]}")
        else:
            first_seen[reg_id] = r.row
        for column in ("given_names", "family_name", "region"):
            if not values[column]:
                bad(column, "is empty")
        for column, limit in _LIMITS.items():
            if len(values[column]) > limit:
                bad(column, f"is longer than {limit} characters")
        sex = values["sex"].upper()
        if sex not in SEXES:
            bad("sex", f"{values['sex']!r} is not one of F, M or X")
        born = _parse_date(values["date_of_birth"], today, bad)
        phone = values["phone"]
        if phone and not _PHONE.match(phone):
            bad("phone", f"{phone!r} is not a phone number (digits, spaces, +, -, parentheses)")
        ref = values["household_ref"]
        if not _REF.match(ref):
            bad("household_ref", _ref_reason(ref))
        person_values = _declared(values, of_person, bad)
        own_values = _declared(values, of_household, bad)
        if len(result.problems) > before or born is None:
            continue
        given = household_values.setdefault(ref, {})
        for name, value in own_values.items():
            if value is None:
                continue
            if name in given and given[name][0] != value:
                bad(
                    name,
                    f"household {ref!r} has {name} {given[name][0]!r} on row {given[name][1]} "
                    f"but {value!r} here",
                )
                continue
            given.setdefault(name, (value, r.row))
        result.where[reg_id] = (r.row, r.line)
        household = result.households.get(ref)
        if household is None:
            household = Household(ref, values["region"], values["municipality"], values["address"])
            household.attributes = {a.name: None for a in of_household}
            result.households[ref] = household
            household_rows[ref] = r.row
        else:
            for column in ("region", "municipality", "address"):
                if getattr(household, column) != values[column]:
                    bad(
                        column,
                        f"household {ref!r} has {column} {getattr(household, column)!r} on row "
                        f"{household_rows[ref]} but {values[column]!r} here",
                    )
        household.members.append(
            Person(
                registration_id=reg_id,
                given_names=values["given_names"],
                family_name=values["family_name"],
                second_family_name=values["second_family_name"],
                sex=sex,
                date_of_birth=born,
                phone=phone,
                attributes=person_values,
            )
        )
    for ref, given in household_values.items():
        if ref in result.households:
            result.households[ref].attributes.update({name: value for name, (value, _) in given.items()})
    return result


def _declared(
    values: dict[str, str], attributes: Sequence[Attribute], bad: Callable[[str, str], None]
) -> dict[str, object]:
    parsed: dict[str, object] = {}
    for attribute in attributes:
        if attribute.name not in values:
            continue
        try:
            parsed[attribute.name] = parse_value(attribute, values[attribute.name])
        except ValueError as error:
            bad(attribute.name, str(error))
    return parsed


def parse_vehicles(
    rows: Iterable[CsvRow], filename: str, attributes: Sequence[Attribute] = ()
) -> tuple[list[Vehicle], list[RowProblem], dict[str, tuple[int, int]]]:
    vehicles: list[Vehicle] = []
    problems: list[RowProblem] = []
    where: dict[str, tuple[int, int]] = {}
    for r in rows:
        values = {k: v.strip() for k, v in r.values.items()}
        before = len(problems)

        def bad(column: str, reason: str, r: CsvRow = r) -> None:
            problems.append(RowProblem(filename, r.row, column, reason, line=r.line))

        plate = normalise_plate(values["plate"])
        if not _PLATE.match(plate):
            bad("plate", f"{values['plate']!r} is not a number plate (2 to 16 letters or digits)")
        elif plate in where:
            bad("plate", f"{plate} was already listed on row {where[plate][0]}")
        kind = values["kind"].lower()
        if kind not in VEHICLE_KINDS:
            bad("kind", f"{values['kind']!r} is not one of {', '.join(VEHICLE_KINDS)}")
        ref = values["household_ref"]
        if not _REF.match(ref):
            bad("household_ref", _ref_reason(ref))
        declared = _declared(values, [a for a in attributes if a.belongs_to is Owner.VEHICLE], bad)
        if len(problems) == before:
            where[plate] = (r.row, r.line)
            vehicles.append(Vehicle(plate, kind, ref, declared))
    return vehicles, problems, where


def normalise_plate(raw: str) -> str:
    return raw.upper().replace(" ", "").replace("-", "").replace(".", "")


def _ref_reason(value: str) -> str:
    if not value:
        return "is empty"
    return f"{value!r} must be 1-64 letters, digits, '.', '_', '/' or '-', starting with a letter or digit"


def _parse_date(text: str, today: date, bad: Callable[[str, str], None]) -> date | None:
    if not text:
        bad("date_of_birth", "is empty")
        return None
    try:
        born = date.fromisoformat(text)
    except ValueError:
        bad("date_of_birth", f"{text!r} is not an ISO date (YYYY-MM-DD)")
        return None
    if len(text) != 10:
        bad("date_of_birth", f"{text!r} is not an ISO date (YYYY-MM-DD)")
        return None
    if born > today:
        bad("date_of_birth", f"{text} is in the future")
        return None
    if born < EARLIEST_BIRTH:
        bad("date_of_birth", f"{text} is before {EARLIEST_BIRTH.isoformat()}")
        return None
    return born
