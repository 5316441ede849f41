from pathlib import Path

import pytest
import sqlalchemy as sa

from canasta.adapters import registry_repo
from canasta.domain.errors import ImportRejected
from canasta.registry.registrations import REGISTRATION_COLUMNS
from canasta.service import registry as registry_service

HEADER = ",".join(REGISTRATION_COLUMNS)
GOOD = (
    f"{HEADER}\n"
    "R1,Ana María,Pérez,Soto,F,1980-02-03,Norte,Alameda,Calle 1,+56 9 1234 5678,H1\n"
    "R2,José,Pérez,Soto,M,2010-05-06,Norte,Alameda,Calle 1,,H1\n"
    "R3,Luz,Díaz,,F,1950-01-01,Sur,Dos Ríos,Rua 2,,H2\n"
)


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return registry_repo.counts(conn)


def test_a_good_file_is_imported_whole(engine: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(GOOD, encoding="utf-8")
    summary = registry_service.import_registrations_file(engine, path)
    assert (summary.households, summary.people) == (2, 3)
    assert counts(engine) == {"households": 2, "persons": 3, "vehicles": 0}
    vehicles = tmp_path / "vehicles.csv"
    vehicles.write_text("plate,kind,household_ref\nAB-12-CD,car,H1\nXY99,motorcycle,H2\n")
    assert registry_service.import_vehicles_file(engine, vehicles).vehicles == 2


def test_one_bad_row_stores_nothing(engine: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(GOOD + "R4,Rosa,Díaz,,F,not-a-date,Sur,Dos Ríos,Rua 2,,H2\n", encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        registry_service.import_registrations_file(engine, path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.row, problem.line, problem.field) == ("people.csv", 4, 5, "date_of_birth")
    assert counts(engine) == {"households": 0, "persons": 0, "vehicles": 0}


def test_registrations_already_stored_are_refused_with_their_rows(engine: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(GOOD, encoding="utf-8")
    registry_service.import_registrations_file(engine, path)
    again = tmp_path / "again.csv"
    again.write_text(
        f"{HEADER}\nR9,Pedro,Soto,,M,1990-01-01,Norte,Alameda,Calle 1,,H1\n"
        "R3,Luz,Díaz,,F,1950-01-01,Sur,Dos Ríos,Rua 2,,H3\n"
        "R8,Rosa,Díaz,,F,1950-01-01,Costa,Bahía,Rua 2,,H2\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportRejected) as caught:
        registry_service.import_registrations_file(engine, again)
    found = {(p.row, p.field): p.reason for p in caught.value.problems}
    assert found[(2, "registration_id")] == "'R3' is already registered"
    assert "registered with region 'Sur'" in found[(3, "region")]
    assert counts(engine)["persons"] == 3  # R9, a valid new member of H1, was not stored either


def test_vehicles_of_unknown_households_are_refused(engine: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "vehicles.csv"
    path.write_text("plate,kind,household_ref\nAB12CD,car,H404\n")
    with pytest.raises(ImportRejected, match="1 problem in 1 row") as caught:
        registry_service.import_vehicles_file(engine, path)
    assert caught.value.problems[0].reason == "no household 'H404' is registered"


def test_an_unreadable_file_is_a_clear_error(engine: sa.Engine, tmp_path: Path) -> None:
    with pytest.raises(ImportRejected) as caught:
        registry_service.import_registrations_file(engine, tmp_path / "missing.csv")
    assert "No such file" in caught.value.problems[0].reason


def test_rows_of_the_wrong_shape_are_reported_with_every_other_problem(
    engine: sa.Engine, tmp_path: Path
) -> None:
    path = tmp_path / "vehicles.csv"
    path.write_text("plate,kind,household_ref\nAB12,car\nCD34,spaceship,H1\nEF56,car,H1,extra\n")
    with pytest.raises(ImportRejected) as caught:
        registry_service.import_vehicles_file(engine, path)
    found = sorted((p.row, p.field) for p in caught.value.problems)
    assert found == [(1, "(row)"), (2, "kind"), (3, "(row)")]


@pytest.mark.parametrize("column", ["religion", "Voted_2024", "etnia", "party_member", "sindicato"])
def test_a_protected_column_is_refused_by_the_firewall(
    engine: sa.Engine, tmp_path: Path, column: str
) -> None:
    path = tmp_path / "people.csv"
    header, *rows = GOOD.splitlines()
    path.write_text("\n".join([f"{header},{column}", *(f"{row},x" for row in rows)]) + "\n", encoding="utf-8")
    with pytest.raises(ImportRejected) as caught:
        registry_service.import_registrations_file(engine, path)
    (problem,) = caught.value.problems
    assert problem.field == column.lower()
    assert "a protected category" in problem.reason and "invariant 4" in problem.reason
    assert counts(engine)["persons"] == 0
