"""Validation of registration and vehicle files, from text (no I/O)."""

from datetime import date

import pytest

from canasta.domain.errors import ImportRejected
from canasta.registry.csvfile import decode, read_csv
from canasta.registry.registrations import (
    REGISTRATION_COLUMNS,
    VEHICLE_COLUMNS,
    parse_registrations,
    parse_vehicles,
)

HEADER = ",".join(REGISTRATION_COLUMNS)
TODAY = date(2026, 11, 29)


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_registrations(read_csv(text, "people.csv", REGISTRATION_COLUMNS), "people.csv", TODAY)


def test_members_are_grouped_into_households() -> None:
    text = (
        f"{HEADER}\n"
        "R1,Ana María,Pérez,Soto,F,1980-02-03,Norte,Alameda,Calle 1,+56 9 1234 5678,H1\n"
        "R2,José,Pérez,Soto,M,2010-05-06,Norte,Alameda,Calle 1,,H1\n"
        "R3,Luz,Díaz,,F,1950-01-01,Sur,Dos Ríos,Rua 2,,H2\n"
    )
    result = parse(text)
    assert result.problems == []
    assert [len(h.members) for h in result.households.values()] == [2, 1]
    assert result.households["H1"].members[0].given_names == "Ana María"


def test_every_bad_value_is_reported_with_file_row_line_and_field() -> None:
    text = (
        f"{HEADER}\n"
        "R1,Ana,Pérez,,F,1980-02-03,Norte,Alameda,Calle 1,,H1\n"
        "R1,,Pérez,,Q,2030-01-01,Norte,Alameda,Calle 1,call me,H1\n"
        '"R3",Luz,Díaz,,F,1950-01-01,Sur,"Dos\nRíos",Rua 2,,H 2\n'
        "R4,Luz,Díaz,,F,1950-01-01,Norte,Bellavista,Calle 1,,H1\n"
        "R5,Luz,Díaz,,F,1980-02-30,Norte,Alameda,Calle 1,,H1\n"
    )
    found = {(p.row, p.field): (p.reason, p.line) for p in parse(text).problems}
    assert found[(5, "date_of_birth")][0] == "'1980-02-30' is not an ISO date (YYYY-MM-DD)"
    assert not any(row == 1 for row, _ in found)
    assert found[(2, "registration_id")][0] == "'R1' was already used on row 1"
    assert found[(2, "given_names")][0] == "is empty"
    assert found[(2, "sex")][0] == "'Q' is not one of F, M or X"
    assert found[(2, "date_of_birth")][0] == "2030-01-01 is in the future"
    assert "not a phone number" in found[(2, "phone")][0]
    assert found[(3, "household_ref")][1] == 4  # the row starts on line 4
    assert "has municipality 'Alameda' on row 1 but 'Bellavista' here" in found[(4, "municipality")][0]
    assert found[(4, "municipality")][1] == 6  # a quoted newline pushed it down a line


def test_missing_and_unknown_columns_are_named() -> None:
    header = HEADER.replace(",phone", "") + ",religion,shoe_size"
    with pytest.raises(ImportRejected) as caught:
        list(read_csv(f"{header}\n", "people.csv", REGISTRATION_COLUMNS))
    reasons = {p.field: p.reason for p in caught.value.problems}
    assert reasons["shoe_size"].startswith("is not a column canasta knows")
    assert "religion or belief" in reasons["religion"] and "protected category" in reasons["religion"]
    assert reasons["phone"] == "the required column is missing from the header"


def test_a_row_with_too_many_values_is_named() -> None:
    with pytest.raises(ImportRejected) as caught:
        list(read_csv("plate,kind,household_ref\nAB12,car,H1\nAB13,car,H1,extra\n", "v.csv", VEHICLE_COLUMNS))
    (problem,) = caught.value.problems
    assert (problem.row, problem.line) == (2, 3)
    assert "4 values but the header has 3" in problem.reason


def test_an_unclosed_quote_is_reported_where_it_is() -> None:
    with pytest.raises(ImportRejected) as caught:
        list(read_csv('plate,kind,household_ref\n"AB12,car,H1\n', "v.csv", VEHICLE_COLUMNS))
    assert caught.value.problems[0].field == "(csv)"


def test_a_non_utf8_file_names_line_and_column() -> None:
    data = "plate,kind,household_ref\nAB12,cami\u00f3n,H1\n".encode("latin-1")
    with pytest.raises(ImportRejected) as caught:
        decode(data, "v.csv")
    (problem,) = caught.value.problems
    assert problem.line == 2
    assert "line 2, column 10" in problem.reason


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(ImportRejected, match="empty"):
        list(read_csv("", "v.csv", VEHICLE_COLUMNS))


def test_vehicles_are_validated() -> None:
    text = "plate,kind,household_ref\nab-12 cd,Car,H1\nAB12CD,car,H2\n!,spaceship,\n"
    vehicles, problems, _ = parse_vehicles(read_csv(text, "v.csv", VEHICLE_COLUMNS), "v.csv")
    assert [v.plate for v in vehicles] == ["AB12CD"]
    fields = {(p.row, p.field) for p in problems}
    assert fields == {(2, "plate"), (3, "plate"), (3, "kind"), (3, "household_ref")}
