"""The operator's command line, end to end, on SQLite and PostgreSQL."""

import csv
from pathlib import Path

import pytest
import sqlalchemy as sa

from canasta.adapters.db import make_engine
from canasta.entrypoints.cli import run
from canasta.registry.registrations import REGISTRATION_COLUMNS

#: A food programme of 2 kg per household and cycle.
FOOD = ("programmes", "create", "food", "--unit", "kg", "--per", "household", "--quota", "2")


def canasta(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> tuple[int, str, str]:
    code = run([*args, "--db", db])
    out, err = capsys.readouterr()
    return code, " ".join(out.split()), " ".join(err.split())


def write_registry(tmp_path: Path) -> tuple[Path, Path]:
    people = tmp_path / "people.csv"
    people.write_text(
        ",".join(REGISTRATION_COLUMNS)
        + "\nR1,Ana,Pérez,Soto,F,1980-02-03,Norte,Alameda,Calle 1,,H1\n"
        + "R2,José,Pérez,Soto,M,2010-05-06,Norte,Alameda,Calle 1,,H1\n"
        + "R3,Luz,Díaz,,F,1950-01-01,Sur,Dos Ríos,Rua 2,,H2\n",
        encoding="utf-8",
    )
    vehicles = tmp_path / "vehicles.csv"
    vehicles.write_text("plate,kind,household_ref\nAB12CD,car,H1\n", encoding="utf-8")
    return people, vehicles


def test_an_operator_sets_up_a_programme_from_scratch(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    db = database_url
    people, vehicles = write_registry(tmp_path)
    assert canasta(capsys, db, "db", "upgrade")[1].startswith("Database already at schema")
    assert "current" in canasta(capsys, db, "db", "status")[1]
    code, out, _ = canasta(capsys, db, "registry", "import", str(people))
    assert (code, out) == (0, "Imported 3 people in 2 households from people.csv.")
    assert (
        canasta(capsys, db, "registry", "import-vehicles", str(vehicles))[1]
        == "Imported 1 vehicles from vehicles.csv."
    )
    code, out, _ = canasta(capsys, db, *FOOD, "--per-member", "1.5")
    assert (code, out) == (0, "Programme food: 2 kg + 1.5 kg per member per household every 30 days.")
    code, out, _ = canasta(capsys, db, "cycles", "open", "food", "--starts", "2026-11-01")
    assert out == "Opened food cycle 1 (2026-11-01 to 2026-11-30): 2 entitlements, 8.5 in all."
    code, out, _ = canasta(
        capsys, db, "outlets", "create", "shop-1", "--name", "Almacén", "--kind", "shop", "--region", "Norte"
    )
    assert code == 0 and "cnt_" in out
    cards_file = tmp_path / "cards.csv"
    assert canasta(capsys, db, "cards", "issue", "--out", str(cards_file))[1].startswith("Issued 3 cards")
    rows = list(csv.DictReader(cards_file.open()))
    h1 = next(r["card_id"] for r in rows if r["holder"] == "H1")
    code, out, _ = canasta(capsys, db, "cards", "balance", h1)
    assert code == 0 and "5 kg" in out
    code, out, _ = canasta(capsys, db, "cards", "reissue", h1)
    assert code == 0 and "replaced by" in out
    code, _, err = canasta(capsys, db, "cards", "balance", h1)
    assert (code, err) == (1, f"Error: card {h1} is lost.")
    assert canasta(capsys, db, "cycles", "close", "food")[1] == "Closed food cycle 1: 0 of 8.5 redeemed."
    code, out, _ = canasta(capsys, db, "audit")
    assert code == 0 and out.startswith("Audit passed: 4 ledger entries chain correctly")


def test_a_bad_file_is_reported_row_by_row_and_nothing_is_imported(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    people = tmp_path / "people.csv"
    people.write_text(
        ",".join(REGISTRATION_COLUMNS)
        + "\nR1,Ana,Pérez,,F,1980-13-01,Norte,Alameda,Calle 1,,H1"
        + "\nR2,,Pérez,,F,1980-01-01,Norte,Alameda,Calle 1,,H1\n",
        encoding="utf-8",
    )
    code, _, err = canasta(capsys, database_url, "registry", "import", str(people))
    assert code == 1
    assert "Nothing was imported: people.csv: 2 problems in 2 rows; nothing was imported." in err
    assert "people.csv, row 1 (line 2), field 'date_of_birth': '1980-13-01' is not an ISO date" in err
    rejects = list(csv.DictReader((tmp_path / "people.csv.rejects.csv").open()))
    assert [(r["row"], r["field"]) for r in rejects] == [("1", "date_of_birth"), ("2", "given_names")]


def test_the_valid_households_are_imported_and_the_refused_rows_listed(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    people = tmp_path / "people.csv"
    people.write_text(
        ",".join(REGISTRATION_COLUMNS)
        + "\nR1,Ana,Pérez,,F,1980-13-01,Norte,Alameda,Calle 1,,H1"
        + "\nR2,Eva,Pérez,,F,1980-01-01,Norte,Alameda,Calle 1,,H1"
        + "\nR3,Luz,Díaz,,F,1950-01-01,Sur,Dos Ríos,Rua 2,,H2\n",
        encoding="utf-8",
    )
    code, _, err = canasta(capsys, database_url, "registry", "import", str(people), "--all-or-nothing")
    assert code == 1 and "Nothing was imported" in err
    code, out, err = canasta(capsys, database_url, "registry", "import", str(people))
    assert code == 0
    assert "Imported 1 person in 1 household from people.csv." in out
    assert "Some rows were refused: 2 rows of people.csv were refused and not imported." in err
    rejects = list(csv.DictReader((tmp_path / "people.csv.rejects.csv").open()))
    assert [(r["row"], r["field"]) for r in rejects] == [("1", "date_of_birth"), ("2", "household_ref")]


def test_errors_are_one_sentence_without_traceback(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    code, out, err = canasta(capsys, database_url, "cycles", "open", "nothing")
    assert (code, err) == (1, "Error: there is no programme called 'nothing'.")
    assert "Traceback" not in out + err
    code, _, err = canasta(capsys, database_url, "cards", "withdraw", "1234")
    assert code == 1 and "a card id has 16 symbols" in err
    code, _, err = canasta(capsys, database_url, "cycles", "open", "x", "--starts", "yesterday")
    assert code == 1 and "is not a date" in err


def test_usage_errors_and_unreachable_databases(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["programmes", "create"]) == 2
    assert run(["audit", "--db", "mysql://nowhere/db"]) == 1
    assert "canasta runs on SQLite or PostgreSQL" in capsys.readouterr().err
    assert run(["audit", "--db", "postgresql://nobody@127.0.0.1:1/none"]) == 1
    assert "the database could not be used" in " ".join(capsys.readouterr().err.split())


def test_audit_fails_with_exit_1_on_a_tampered_ledger(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    people, _ = write_registry(tmp_path)
    canasta(capsys, database_url, "registry", "import", str(people))
    canasta(capsys, database_url, *FOOD)
    canasta(capsys, database_url, "cycles", "open", "food")
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE ledger_entries SET kind = 'forged' WHERE seq = 2"))
    engine.dispose()
    code, _, err = canasta(capsys, database_url, "audit")
    assert code == 1
    assert "Audit failed: 3 problem(s); first: entry 2: content was changed" in err
    assert "cycle 1 has no ledger entry that opened it" in err


def test_the_demo_runs_end_to_end(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = run(
        [
            "demo",
            "--households",
            "300",
            "--seconds",
            "2",
            "--concurrency",
            "8",
            "--dir",
            str(tmp_path / "demo"),
        ]
    )
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    assert "redeemed" in out and "Throughput:" in out
    assert "Audit passed" in out
    assert "all answered with their first receipt" in out
    # The cycles ran under the published policies, whose files the demo leaves to read.
    assert "fuel │ v2 ·" in out and "food-basket │ v2 ·" in out
    assert "Policy v2 (sha256" in out and "Política v2 (sha256" in out
    assert (tmp_path / "demo" / "food-basket-v2.toml").read_text().startswith('programme = "food-basket"')
    assert f"canasta serve --db sqlite:///{tmp_path / 'demo' / 'canasta.db'}" in out
    assert f"canasta audit --db sqlite:///{tmp_path / 'demo' / 'canasta.db'}" in out
    again = run(["demo", "--households", "300", "--seconds", "1", "--dir", str(tmp_path / "demo")])
    assert again == 0
    assert "Replacing the previous demo" in capsys.readouterr().out
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "canasta.db").write_bytes(b"")
    assert run(["demo", "--households", "300", "--dir", str(foreign)]) == 1
    assert "no demo made" in capsys.readouterr().err


def test_card_mistakes_are_one_sentence(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    people, _ = write_registry(tmp_path)
    canasta(capsys, database_url, "registry", "import", str(people))
    code, _, err = canasta(
        capsys,
        database_url,
        "programmes",
        "create",
        "x",
        "--unit",
        "kg",
        "--per",
        "household",
        "--quota",
        "abc",
    )
    assert (code, err) == (1, "Error: 'abc' is not a number.")
    canasta(capsys, database_url, "cards", "issue", "--out", str(tmp_path / "cards.csv"))
    h1 = next(r["card_id"] for r in csv.DictReader((tmp_path / "cards.csv").open()) if r["holder"] == "H1")
    h2 = next(r["card_id"] for r in csv.DictReader((tmp_path / "cards.csv").open()) if r["holder"] == "H2")
    canasta(capsys, database_url, "cards", "withdraw", h1)  # lost
    assert canasta(capsys, database_url, "cards", "issue", "--out", str(tmp_path / "more.csv"))[1].startswith(
        "Issued 1 cards"
    )
    code, _, err = canasta(capsys, database_url, "cards", "reissue", h1)
    assert code == 1 and "already has card" in err
    canasta(capsys, database_url, "cards", "withdraw", h2, "--status", "revoked")
    code, _, err = canasta(capsys, database_url, "cards", "reissue", h2)
    assert code == 1 and "revoked cards are not reissued" in err
    assert canasta(capsys, database_url, "cards", "issue", "--out", str(tmp_path / "none.csv"))[1].startswith(
        "Issued 0 cards"
    )
    code, _, err = canasta(
        capsys, database_url, "cards", "issue", "--out", str(tmp_path / "no" / "such" / "dir.csv")
    )
    assert code == 1 and "No such file or directory" in err


def test_a_missing_import_file_is_named(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    code, _, err = canasta(capsys, database_url, "registry", "import", str(tmp_path / "nope" / "people.csv"))
    assert code == 1
    assert "nope/people.csv, field '(file)': No such file or directory" in err


def test_a_schema_file_is_checked(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    schema = tmp_path / "schema.toml"
    schema.write_text(
        '[attributes.monthly_income]\ntype = "decimal"\nunit = "PEN"\nbelongs_to = "household"\n'
        'category = "income and assets"\npurpose = "Declared income, for means testing."\n',
        encoding="utf-8",
    )
    assert run(["registry", "check-schema", str(schema)]) == 0
    assert "declares 1 attribute(s); no problems found" in " ".join(capsys.readouterr().out.split())
    schema.write_text(schema.read_text().replace("monthly_income", "voted_last"), encoding="utf-8")
    assert run(["registry", "check-schema", str(schema)]) == 1
    assert "voting or turnout" in " ".join(capsys.readouterr().err.split())


def test_a_programme_officer_declares_previews_publishes_runs_and_explains(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    from tests.integration.test_rules import FOOD_V2, PEOPLE, SCHEMA

    (tmp_path / "schema.toml").write_text(SCHEMA, encoding="utf-8")
    (tmp_path / "people.csv").write_text(PEOPLE, encoding="utf-8")
    (tmp_path / "food-v2.toml").write_text(FOOD_V2, encoding="utf-8")
    db = database_url
    code, out, _ = canasta(capsys, db, "registry", "declare", str(tmp_path / "schema.toml"))
    assert code == 0 and "3 added, 0 removed" in out
    assert canasta(capsys, db, "registry", "import", str(tmp_path / "people.csv"))[0] == 0
    assert canasta(capsys, db, *FOOD)[0] == 0
    code, out, _ = canasta(capsys, db, "policy", "check", str(tmp_path / "food-v2.toml"))
    assert code == 0 and "food version 2 checks" in out
    code, out, _ = canasta(
        capsys, db, "policy", "diff", "published", str(tmp_path / "food-v2.toml"), "--period", "2026-12"
    )
    assert code == 0 and "(all) │ 4 │ 0 │ 2 │ 2 │ 0 │ 0 │ 8 │ 39" in out
    assert "H1 (Puno): 2 → 21 kg" in out
    code, out, _ = canasta(capsys, db, "policy", "publish", str(tmp_path / "food-v2.toml"))
    assert code == 0 and "Published food version 2" in out and "superseding version 1" in out
    code, out, _ = canasta(capsys, db, "cycle", "run", "food", "2026-12")
    assert code == 0 and "Ran food cycle 1 (2026-12-01 to 2026-12-30): 2 entitlements, 39 in all" in out
    code, out, _ = canasta(capsys, db, "explain", "food", "H1", "--lang", "es")
    assert code == 0 and "Le corresponden 21 kg de food en este ciclo." in out
    assert "✓ ingreso mensual es menor que 1500 → sí (ingreso mensual: 800 PEN)" in out
    code, out, _ = canasta(capsys, db, "explain", "food", "H2")
    assert code == 0 and "✗ monthly income is less than 1500 → no" in out
    code, out, _ = canasta(capsys, db, "policy", "show", "food")
    assert code == 0 and 'quota = "10 + 4 * members' in out
    report = tmp_path / "coverage.toml"
    report.write_text('title = "Coverage"\nprogramme = "food"\ngroup_by = ["region"]\nmin_group = 1\n')
    code, out, _ = canasta(capsys, db, "report", "run", str(report), "--out", str(tmp_path / "rows.csv"))
    assert code == 0 and "Puno │ 1 │ 1 │ 100.0% │ 21" in out
    assert (tmp_path / "rows.csv").read_text().splitlines()[0].startswith("region,households,entitled")
    assert canasta(capsys, db, "audit")[0] == 0


def test_policy_mistakes_name_file_line_column_and_token(
    capsys: pytest.CaptureFixture[str], database_url: str, tmp_path: Path
) -> None:
    assert canasta(capsys, database_url, *FOOD)[0] == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'programme = "food"\nversion = 2\neligible = """\nmembers > 1\n  AND voto = 1"""\nquota = "sqrt(2)"\n'
    )
    code, _, err = canasta(capsys, database_url, "policy", "publish", str(bad))
    assert code == 1
    assert "Error: bad.toml: 2 problem(s) in the policy; nothing was changed." in err
    assert "bad.toml, line 5, column 7 at 'voto': 'voto' refers to voting or turnout" in err
    assert "bad.toml, line 6, column 10 at 'SQRT': SQRT is not an allowed function" in err
    code, _, err = canasta(capsys, database_url, "cycle", "run", "food", "2026-13")
    assert code == 1 and "'2026-13' is not a period" in err
    code, _, err = canasta(capsys, database_url, "explain", "food", "H1", "--lang", "fr")
    assert code == 1 and "explanations are in en (English) or es (Spanish)" in err
