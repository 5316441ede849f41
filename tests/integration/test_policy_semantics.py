"""The compiled SQL means what the Python evaluation means, on every engine.

Hypothesis writes random policies from the whole language; each is compiled and run over a
registry with unknown values, empty households and awkward numbers, and every household's
facts, eligibility and quantity are compared with an independent Python computation from
the raw registry (the facts computed member by member, the rule evaluated over them).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canasta.adapters.tables import households as households_table
from canasta.domain.model import Household, Person
from canasta.policy.compile import Dialect, column_name, compile_grant, compile_select
from canasta.policy.document import Policy, parse_policy
from canasta.policy.explain import aggregate, evaluate, quantity
from canasta.service import registry as registry_service
from canasta.service import rules

SCHEMA = """\
[attributes.monthly_income]
type = "decimal"
unit = "PEN"
belongs_to = "household"
category = "income and assets"
purpose = "Declared income, for means testing."

[attributes.rural]
type = "boolean"
unit = ""
belongs_to = "household"
category = "location"
purpose = "Whether the household lives in a rural area."

[attributes.disabled]
type = "boolean"
unit = ""
belongs_to = "person"
category = "disability and care needs"
purpose = "Whether the member lives with a disability that needs care."

[attributes.hours_care]
type = "integer"
unit = "hours"
belongs_to = "person"
category = "disability and care needs"
purpose = "Hours of care a week the member needs."
"""
STARTS = date(2026, 12, 1)
#: More for a long campaign: CANASTA_POLICY_EXAMPLES=5000 pytest tests/integration/test_policy_semantics.py
EXAMPLES = int(os.environ.get("CANASTA_POLICY_EXAMPLES", "150"))
REGIONS = ["Norte", "Sur", "Centro"]


def _registry() -> list[Household]:
    chance = random.Random(20261201)
    homes = []
    for n in range(60):
        home = Household(f"H{n}", chance.choice(REGIONS), "Alameda", f"Calle {n}")
        home.attributes = {
            "monthly_income": chance.choice([None, 0.0, 0.1, 0.3, 999.99, 1500.0, 1500.5, 3200.25, 12.5]),
            "rural": chance.choice([None, True, False]),
        }
        for m in range(chance.choice([0, 1, 1, 2, 3, 5]) if n else 0):
            born = date(chance.randint(1930, 2026), chance.randint(1, 12), chance.randint(1, 28))
            if n == 1 and m == 0:
                born = date(2021, 12, 1)  # five on the cycle's first day, exactly
            home.members.append(
                Person(
                    f"H{n}-{m}",
                    "Ana",
                    "Pérez",
                    "",
                    chance.choice("FMX"),
                    min(born, date(2026, 11, 30)),
                    "",
                    {
                        "disabled": chance.choice([None, True, False]),
                        "hours_care": chance.choice([None, 0, 3, 40]),
                    },
                )
            )
        homes.append(home)
    return homes


def _python_row(policy: Policy, home: Household) -> tuple[Any, int | None, list[Any]]:
    start = int(STARTS.strftime("%Y%m%d"))
    members = [
        {
            "person.age": (start - int(p.date_of_birth.strftime("%Y%m%d"))) // 10000,
            "person.sex": p.sex,
            "person.disabled": p.attributes.get("disabled"),
            "person.hours_care": p.attributes.get("hours_care"),
        }
        for p in home.members
    ]
    facts: dict[str, Any] = {}
    for fact in policy.facts:
        if fact.attribute is None:
            facts[fact.key] = aggregate(fact, members)
        elif fact.attribute.name == "region":
            facts[fact.key] = home.region
        else:
            facts[fact.key] = home.attributes.get(fact.attribute.name)
    eligible = evaluate(policy.eligible.tree, facts)
    return (
        eligible,
        quantity(policy, evaluate(policy.quota.tree, facts)),
        [facts[f.key] for f in policy.facts],
    )


# -- random policies ---------------------------------------------------------------------

NUMBERS = st.sampled_from(["0", "1", "2", "3", "5", "0.5", "1.25", "1500", "999.99", "100"])
PERSON_BOOL = st.sampled_from(
    [
        "age < 5",
        "age >= 65",
        "age BETWEEN 18 AND 64",
        "disabled",
        "NOT disabled",
        "sex = 'F'",
        "sex IN ('F', 'X')",
        "hours_care > 10",
        "hours_care IS NULL",
        "disabled AND age < 18",
        "disabled OR hours_care >= 3",
        "COALESCE(disabled, FALSE)",
        "age <= 17",
        "age > 60",
        "age = 3",
        "age <> 40",
        "70 < age",
        "18 >= age",
        "age < 4.5",
        "age >= 0",
        "age BETWEEN 0 AND 4",
        "age < 200",
    ]
)


def numbers(depth: int) -> st.SearchStrategy[str]:
    leaves = st.one_of(
        NUMBERS,
        st.just("monthly_income"),
        st.just("members"),
        st.just("NULL"),
        PERSON_BOOL.map(lambda c: f"COUNT(*) FILTER (WHERE {c})"),
        PERSON_BOOL.map(lambda c: f"SUM(hours_care) FILTER (WHERE {c})"),
        st.sampled_from(["SUM(age)", "MIN(age)", "MAX(hours_care)", "COUNT(hours_care)"]),
    )
    if depth <= 0:
        return leaves
    sub = numbers(depth - 1)
    return st.one_of(
        leaves,
        st.tuples(sub, st.sampled_from(["+", "-", "*", "/"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(sub, sub).map(lambda t: f"COALESCE({t[0]}, {t[1]})"),
        st.tuples(sub, sub, sub).map(lambda t: f"LEAST({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(sub, sub).map(lambda t: f"GREATEST({t[0]}, {t[1]})"),
        sub.map(lambda a: f"ABS({a} + 0)"),  # sqlglot cannot parse ABS(NULL) itself
        sub.map(lambda a: f"-({a})"),
        st.tuples(booleans(depth - 1), sub, sub).map(
            lambda t: f"CASE WHEN {t[0]} THEN {t[1]} ELSE {t[2]} END"
        ),
    )


def booleans(depth: int) -> st.SearchStrategy[str]:
    leaves = st.sampled_from(
        [
            "rural",
            "TRUE",
            "monthly_income IS NULL",
            "region IN ('Norte', 'Sur')",
            "region NOT IN ('Norte', NULL)",
            "region = 'Centro'",
        ]
    )
    if depth <= 0:
        return leaves
    sub = booleans(depth - 1)
    num = numbers(depth - 1)
    return st.one_of(
        leaves,
        st.tuples(num, st.sampled_from(["<", "<=", ">", ">=", "=", "<>"]), num).map(
            lambda t: f"{t[0]} {t[1]} {t[2]}"
        ),
        st.tuples(num, num, num).map(lambda t: f"{t[0]} BETWEEN {t[1]} AND {t[2]}"),
        st.tuples(sub, sub).map(lambda t: f"({t[0]} AND {t[1]})"),
        st.tuples(sub, sub).map(lambda t: f"({t[0]} OR {t[1]})"),
        sub.map(lambda a: f"NOT ({a})"),
    )


POLICIES = st.tuples(
    booleans(3),
    numbers(3),
    st.sampled_from(["", "cap = 40\n", "cap = 7.5\n"]),
    st.sampled_from(["", 'rounding = "down"\nstep = 0.5\n', 'rounding = "up"\nstep = 2\n', "step = 0.25\n"]),
).map(lambda t: f'programme = "food"\nversion = 2\neligible = "{t[0]}"\nquota = "{t[1]}"\n{t[2]}{t[3]}')


# -- the engines -------------------------------------------------------------------------


@pytest.fixture
def registry(engine: sa.Engine) -> tuple[sa.Engine, dict[int, Household]]:
    rules.declare_schema(engine, SCHEMA, "schema.toml")
    homes = _registry()
    registry_service.import_households(engine, homes)
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.select(households_table.c.ref, households_table.c.id)).all())
    return engine, {int(ids[h.ref]): h for h in homes}


def _same(found: Any, expected: Any) -> bool:
    if isinstance(found, bool) or isinstance(expected, bool):
        return (None if found is None else bool(found)) == (None if expected is None else bool(expected))
    if isinstance(found, float) or isinstance(expected, float):
        return found is not None and expected is not None and float(found) == float(expected)
    return bool(found == expected)


def _compare(policy: Policy, rows: Sequence[Any], homes: dict[int, Household]) -> None:
    assert len(rows) == len(homes)
    for row in rows:
        home = homes[int(row[0])]
        eligible, milli, facts = _python_row(policy, home)
        stored = json.loads(row[4])
        assert all(_same(a, b) for a, b in zip(stored, facts, strict=True)), (home.ref, stored, facts)
        assert _same(row[2], eligible), (home.ref, policy.text, row[2], eligible)
        if eligible is True and milli is not None and milli > 0:
            assert int(row[3]) == milli, (home.ref, policy.text, row[3], milli)


def _compare_grant(policy: Policy, written: Sequence[Any], homes: dict[int, Household]) -> None:
    expected = {}
    for hid, home in homes.items():
        eligible, milli, facts = _python_row(policy, home)
        if eligible is True and milli is not None and milli > 0:
            expected[hid] = (milli, facts)
    assert {int(r[0]) for r in written} == set(expected), policy.text
    for row in written:
        milli, facts = expected[int(row[0])]
        assert int(row[1]) == milli, (policy.text, row)
        assert all(_same(a, b) for a, b in zip(json.loads(row[2]), facts, strict=True))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=POLICIES)
def test_sql_and_python_agree(registry: tuple[sa.Engine, dict[int, Household]], text: str) -> None:
    engine, homes = registry
    with engine.connect() as conn:
        policy = parse_policy(text, "p.toml", rules.catalogue(conn))
        rows = conn.exec_driver_sql(compile_select(policy, rules.dialect_of(conn), STARTS)).all()
        # The INSERT a cycle run executes is written apart from the SELECT (eligibility
        # inside, the quantity behind a fence): it must grant exactly the same.
        dialect = rules.dialect_of(conn)
    with engine.connect() as conn, conn.begin() as trial:
        conn.exec_driver_sql(compile_grant(policy, dialect, STARTS, 1, 1, 1))
        written = conn.exec_driver_sql("SELECT beneficiary_id, quantity, facts FROM entitlements").all()
        trial.rollback()
    _compare(policy, rows, homes)
    _compare_grant(policy, written, homes)


@pytest.fixture(scope="module")
def duck() -> Iterator[tuple[duckdb.DuckDBPyConnection, dict[int, Household]]]:
    """The same registry in DuckDB, with the columns canasta's tables would have."""
    conn = duckdb.connect()
    conn.execute(
        "CREATE TABLE households (id BIGINT PRIMARY KEY, region VARCHAR, municipality VARCHAR, "
        f"{column_name('monthly_income')} DOUBLE, {column_name('rural')} BOOLEAN)"
    )
    conn.execute(
        "CREATE TABLE persons (id BIGINT PRIMARY KEY, household_id BIGINT, merged_into BIGINT, sex VARCHAR, "
        "date_of_birth DATE, "
        f"{column_name('disabled')} BOOLEAN, {column_name('hours_care')} BIGINT)"
    )
    conn.execute(
        "CREATE TABLE entitlements (id INTEGER, cycle_id BIGINT, programme_id BIGINT, "
        "beneficiary_kind VARCHAR, beneficiary_id BIGINT, household_id BIGINT, quantity BIGINT, "
        "redeemed BIGINT, policy_id BIGINT, facts VARCHAR)"
    )
    homes = {n + 1: h for n, h in enumerate(_registry())}
    person = 0
    for hid, h in homes.items():
        conn.execute(
            "INSERT INTO households VALUES (?, ?, ?, ?, ?)",
            [hid, h.region, h.municipality, h.attributes["monthly_income"], h.attributes["rural"]],
        )
        for p in h.members:
            person += 1
            conn.execute(
                "INSERT INTO persons VALUES (?, ?, NULL, ?, ?, ?, ?)",
                [person, hid, p.sex, p.date_of_birth, p.attributes["disabled"], p.attributes["hours_care"]],
            )
    yield conn, homes
    conn.close()


@settings(max_examples=EXAMPLES, deadline=None)
@given(text=POLICIES)
def test_duckdb_and_python_agree(
    duck: tuple[duckdb.DuckDBPyConnection, dict[int, Household]], text: str, sqlite_catalogue: Any
) -> None:
    conn, homes = duck
    policy = parse_policy(text, "p.toml", sqlite_catalogue)
    rows = conn.execute(compile_select(policy, Dialect.DUCKDB, STARTS)).fetchall()
    _compare(policy, rows, homes)
    conn.execute("BEGIN")
    conn.execute(compile_grant(policy, Dialect.DUCKDB, STARTS, 1, 1, 1))
    written = conn.execute("SELECT beneficiary_id, quantity, facts FROM entitlements").fetchall()
    conn.execute("ROLLBACK")
    _compare_grant(policy, written, homes)


@pytest.fixture(scope="module")
def sqlite_catalogue() -> Any:
    from canasta.policy.language import Catalogue
    from canasta.registry.schema import parse_schema

    return Catalogue.of(parse_schema(SCHEMA, "schema.toml").attributes)
