from pathlib import Path

import duckdb
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


def test_without_all_or_nothing_the_valid_households_are_imported_and_the_rest_listed(
    engine: sa.Engine, tmp_path: Path
) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        GOOD
        + "R4,Rosa,Díaz,,F,not-a-date,Sur,Dos Ríos,Rua 2,,H2\n"  # takes H2 (row 3) down with it
        + "R5,Eva,Rojas,,F,1990-01-01,Costa,Bahía,Rua 9,,H3\n"
        + "R5,Eva,Rojas,,F,1990-01-01,Costa,Bahía,Rua 9,,H4\n"  # a repeated id: only H4 is refused
        + "R6,Ivo,Lima,,M,1970-01-01,Costa,Bahía,Rua 7\n",  # the wrong shape: refused alone
        encoding="utf-8",
    )
    summary = registry_service.import_registrations_file(engine, path, all_or_nothing=False)
    assert (summary.households, summary.people) == (2, 3)  # H1 (2 people) and H3
    assert counts(engine) == {"households": 2, "persons": 3, "vehicles": 0}
    refused = {(p.row, p.field): p.reason for p in summary.refused}
    assert refused[(4, "date_of_birth")].startswith("'not-a-date'")
    assert refused[(3, "household_ref")] == (
        "not imported: row 4 of household 'H2' was refused, and a household is imported whole or not at all"
    )
    assert refused[(6, "registration_id")] == "'R5' was already used on row 5"
    assert refused[(7, "(row)")] == "has 9 values but the header has 11 columns"
    assert summary.refused_rows == 4
    with engine.connect() as conn:
        assert registry_repo.existing_registration_ids(conn, ["R1", "R2", "R3", "R4", "R5", "R6"]) == {
            "R1",
            "R2",
            "R5",
        }


def write_parquet(path: Path, rows: list[list[str]]) -> None:
    """Registrations as a Parquet export holds them: dates typed as dates, empty as null."""
    columns = ", ".join(f"{c} {'DATE' if c == 'date_of_birth' else 'VARCHAR'}" for c in REGISTRATION_COLUMNS)
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE t ({columns})")
        con.executemany(
            f"INSERT INTO t VALUES ({', '.join('?' for _ in REGISTRATION_COLUMNS)})",  # noqa: S608 - placeholders
            [[v or None for v in row] for row in rows],
        )
        con.execute(f"COPY t TO '{path}' (FORMAT parquet)")


def test_registrations_are_read_from_parquet_with_their_rows_named(engine: sa.Engine, tmp_path: Path) -> None:
    parquet = tmp_path / "people.parquet"
    rows = [line.split(",") for line in GOOD.splitlines()[1:]]
    rows.append(["R4", "Rosa", "Díaz", "", "X", "", "Sur", "Dos Ríos", "Rua 2", "", "H9"])  # no date of birth
    write_parquet(parquet, rows)
    with pytest.raises(ImportRejected) as caught:
        registry_service.import_registrations_file(engine, parquet)
    ((row, field, reason),) = [(p.row, p.field, p.reason) for p in caught.value.problems]
    assert ((row, field) == (4, "date_of_birth") and "is empty" in reason) or "date" in reason
    summary = registry_service.import_registrations_file(engine, parquet, all_or_nothing=False)
    assert (summary.households, summary.people, summary.refused_rows) == (2, 3, 1)
    with engine.connect() as conn:
        assert registry_repo.existing_registration_ids(conn, ["R1", "R2", "R3"]) == {"R1", "R2", "R3"}


def test_a_parquet_file_with_a_protected_or_missing_column_is_refused_whole(
    engine: sa.Engine, tmp_path: Path
) -> None:
    parquet = tmp_path / "people.parquet"
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT 'R1' AS registration_id, 'Ana' AS given_names, 'X' AS religion) TO '{parquet}' "
            "(FORMAT parquet)"
        )
    with pytest.raises(ImportRejected) as caught:
        registry_service.import_registrations_file(engine, parquet, all_or_nothing=False)
    fields = {p.field for p in caught.value.problems}
    assert "religion" in fields and "family_name" in fields
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(ImportRejected, match="not a readable Parquet file"):
        registry_service.import_registrations_file(engine, broken)
    assert counts(engine) == {"households": 0, "persons": 0, "vehicles": 0}
