"""Enrolment from files: all-or-nothing imports with every problem reported."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from canasta.adapters import attributes_repo, registry_repo
from canasta.adapters.db import transaction
from canasta.domain.errors import ImportRejected, RowProblem
from canasta.domain.model import Household, Vehicle
from canasta.registry.csvfile import CsvRow, decode, read_csv
from canasta.registry.parquetfile import read_parquet
from canasta.registry.registrations import (
    REGISTRATION_COLUMNS,
    VEHICLE_COLUMNS,
    parse_registrations,
    parse_vehicles,
)
from canasta.registry.schema import Attribute, Owner
from canasta.service.clock import utc_now_iso


@dataclass(frozen=True, slots=True)
class ImportSummary:
    file: str
    households: int
    people: int
    vehicles: int = 0
    #: Rows refused when importing the valid rows only, each with why (sorted by row).
    refused: tuple[RowProblem, ...] = ()

    @property
    def refused_rows(self) -> int:
        return len({p.row for p in self.refused})


def import_registrations_file(
    engine: sa.Engine,
    path: Path,
    today: date | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    all_or_nothing: bool = True,
) -> ImportSummary:
    """Read a registrations file (CSV, or Parquet by its ``.parquet`` suffix) and store it
    in one transaction.

    With ``all_or_nothing`` a single bad row stores nothing and ``ImportRejected`` lists
    every problem. Without it the valid rows are stored and the summary lists the refused
    ones; a household is stored whole or not at all, so every row of a household with a bad
    row is refused too (a household stored without one of its members would be granted for
    fewer people than live in it). A bad header, encoding or file refuses everything."""
    name = path.name
    declared = declared_attributes(engine)
    usable = [a for a in declared.values() if a.belongs_to in (Owner.HOUSEHOLD, Owner.PERSON)]
    shape: list[RowProblem] = []
    if path.suffix.lower() == ".parquet":
        if not path.is_file():
            _read(path)  # the same error as for a missing CSV file
        rows = read_parquet(path, REGISTRATION_COLUMNS, [a.name for a in usable])
    else:
        text = decode(_read(path), name)
        rows = list(read_csv(text, name, REGISTRATION_COLUMNS, [a.name for a in usable], problems=shape))
    parsed = parse_registrations(rows, name, today or date.today(), usable)
    problems = shape + parsed.problems
    households = list(parsed.households.values())
    with transaction(engine) as conn:
        ids = [p.registration_id for h in households for p in h.members]
        for reg_id in sorted(registry_repo.existing_registration_ids(conn, ids)):
            row, line = parsed.where[reg_id]
            problems.append(
                RowProblem(name, row, "registration_id", f"{reg_id!r} is already registered", line)
            )
        known = registry_repo.existing_households(conn, [h.ref for h in households])
        for h in households:
            stored = known.get(h.ref)
            if stored is None:
                continue
            given = {k: v for k, v in h.attributes.items() if v is not None}
            if given:
                row, line = parsed.where[h.members[0].registration_id]
                problems.append(
                    RowProblem(
                        name,
                        row,
                        sorted(given)[0],
                        f"household {h.ref!r} is already registered; its declared values are not "
                        "changed by adding members (leave the household's columns empty)",
                        line,
                    )
                )
            for column in ("region", "municipality", "address"):
                if getattr(stored, column) != getattr(h, column):
                    row, line = parsed.where[h.members[0].registration_id]
                    problems.append(
                        RowProblem(
                            name,
                            row,
                            column,
                            f"household {h.ref!r} is registered with {column} "
                            f"{getattr(stored, column)!r}, not {getattr(h, column)!r}",
                            line,
                        )
                    )
        refused: list[RowProblem] = []
        if problems and all_or_nothing:
            _reject_if(problems, name)
        elif problems:
            households, refused = _valid_households(households, problems, rows, name)
            if not households:  # not one valid household: said as for all-or-nothing
                _reject_if(refused, name)
        registry_repo.insert_households(
            conn,
            households,
            {ref: int(r.id) for ref, r in known.items()},
            utc_now_iso(),
            progress,
            declared,
        )
    people = sum(len(h.members) for h in households)
    return ImportSummary(name, len(households), people, refused=tuple(refused))


def _valid_households(
    households: list[Household], problems: list[RowProblem], rows: Sequence[CsvRow], name: str
) -> tuple[list[Household], list[RowProblem]]:
    """The households none of whose rows has a problem, and every refused row with why:
    its own problems, or the bad row of its household that took it down."""
    bad_rows = {p.row for p in problems}
    first_bad: dict[str, int] = {}
    for r in rows:
        ref = r.values.get("household_ref", "").strip()
        if r.row in bad_rows and ref:
            first_bad.setdefault(ref, r.row)
    refused = list(problems)
    for r in rows:
        ref = r.values.get("household_ref", "").strip()
        if r.row not in bad_rows and ref in first_bad:
            refused.append(
                RowProblem(
                    name,
                    r.row,
                    "household_ref",
                    f"not imported: row {first_bad[ref]} of household {ref!r} was refused, and a "
                    "household is imported whole or not at all",
                    r.line,
                )
            )
    refused.sort(key=lambda p: (p.row, p.field))
    return [h for h in households if h.ref not in first_bad], refused


def declared_attributes(engine: sa.Engine) -> dict[str, Attribute]:
    with transaction(engine, write=False) as conn:
        return attributes_repo.load(conn)


def import_households(engine: sa.Engine, households: Sequence[Household]) -> ImportSummary:
    """Store already-validated households (the demo's synthetic country)."""
    with transaction(engine) as conn:
        declared = attributes_repo.load(conn)
        registry_repo.insert_households(conn, households, {}, utc_now_iso(), None, declared)
    return ImportSummary("(generated)", len(households), sum(len(h.members) for h in households))


def import_vehicles_file(engine: sa.Engine, path: Path) -> ImportSummary:
    name = path.name
    text = decode(_read(path), name)
    declared = declared_attributes(engine)
    usable = [a for a in declared.values() if a.belongs_to is Owner.VEHICLE]
    shape: list[RowProblem] = []
    vehicles, problems, where = parse_vehicles(
        read_csv(text, name, VEHICLE_COLUMNS, [a.name for a in usable], problems=shape), name, usable
    )
    problems = shape + problems
    with transaction(engine) as conn:
        for plate in sorted(registry_repo.existing_plates(conn, [v.plate for v in vehicles])):
            row, line = where[plate]
            problems.append(RowProblem(name, row, "plate", f"{plate} is already registered", line))
        ids = registry_repo.household_ids(conn, sorted({v.household_ref for v in vehicles}))
        for v in vehicles:
            if v.household_ref not in ids:
                row, line = where[v.plate]
                problems.append(
                    RowProblem(
                        name,
                        row,
                        "household_ref",
                        f"no household {v.household_ref!r} is registered",
                        line,
                    )
                )
        _reject_if(problems, name)
        registry_repo.insert_vehicles(conn, vehicles, ids, declared)
    return ImportSummary(name, 0, 0, len(vehicles))


def import_vehicles(engine: sa.Engine, vehicles: Sequence[Vehicle]) -> int:
    with transaction(engine) as conn:
        ids = registry_repo.household_ids(conn, sorted({v.household_ref for v in vehicles}))
        registry_repo.insert_vehicles(conn, vehicles, ids, attributes_repo.load(conn))
    return len(vehicles)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImportRejected(
            f"cannot read {path}", [RowProblem(str(path), 0, "(file)", exc.strerror or str(exc))]
        ) from None


def _reject_if(problems: list[RowProblem], name: str) -> None:
    if problems:
        problems.sort(key=lambda p: (p.row, p.field))
        rows = len({p.row for p in problems})
        raise ImportRejected(
            f"{name}: {len(problems)} problem{'s' if len(problems) != 1 else ''} in "
            f"{rows} row{'s' if rows != 1 else ''}; nothing was imported",
            problems,
        )
