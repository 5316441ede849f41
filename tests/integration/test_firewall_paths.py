"""The protected-attribute firewall on every path into canasta: a schema, an import file's
columns, a policy's rules and a report definition. Each smuggling attempt is refused with
the rule it breaks named, and nothing is stored."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from canasta.adapters.tables import declared_attributes, persons, policies, vehicles
from canasta.domain.errors import ImportRejected
from canasta.domain.model import BeneficiaryKind, Programme
from canasta.domain.quantity import to_milli
from canasta.policy.language import PolicyRejected
from canasta.service import programmes as programme_service
from canasta.service import registry as registry_service
from canasta.service import rules
from tests.integration.test_rules import PEOPLE, SCHEMA

SMUGGLED = [
    "voted",
    "voter_turnout",
    "VotedLastElection",
    "sufragio",
    "voto",
    "party_member",
    "militante",
    "religion",
    "Religión",
    "credo",
    "etnia",
    "raza",
    "sindicalizado",
    "orientation_sexuelle",
]
RULE = "invariant 4"


def attribute(name: str, purpose: str = "Something about the household.") -> str:
    return (
        f'[attributes."{name}"]\ntype = "boolean"\nunit = ""\nbelongs_to = "household"\n'
        f'category = "household composition"\npurpose = "{purpose}"\n'
    )


@pytest.mark.parametrize("name", SMUGGLED)
def test_a_schema_cannot_declare_one(engine: sa.Engine, name: str) -> None:
    with pytest.raises(ImportRejected) as refused:
        rules.declare_schema(engine, SCHEMA + attribute(name), "schema.toml")
    assert any(RULE in p.reason for p in refused.value.problems), refused.value.problems
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(declared_attributes)) == 0


@pytest.mark.parametrize(
    "purpose",
    ["Whether they voted in the last election.", "Religión que profesa el hogar.", "Etnia declarada."],
)
def test_nor_hide_one_in_a_purpose(engine: sa.Engine, purpose: str) -> None:
    with pytest.raises(ImportRejected) as refused:
        rules.declare_schema(engine, attribute("flag_b", purpose), "schema.toml")
    assert any(RULE in p.reason and "purpose" in p.field for p in refused.value.problems)


@pytest.mark.parametrize("name", SMUGGLED)
def test_an_import_cannot_carry_one(engine: sa.Engine, tmp_path: Path, name: str) -> None:
    rules.declare_schema(engine, SCHEMA, "schema.toml")
    lines = PEOPLE.splitlines()
    people = tmp_path / "people.csv"
    people.write_text("\n".join([lines[0] + f",{name}", *(line + ",1" for line in lines[1:])]) + "\n")
    cars = tmp_path / "vehicles.csv"
    cars.write_text(f"plate,kind,household_ref,{name}\nAB1,car,H1,1\n")

    def load_people(path: Path) -> object:
        return registry_service.import_registrations_file(engine, path, today=date(2026, 11, 29))

    def load_vehicles(path: Path) -> object:
        return registry_service.import_vehicles_file(engine, path)

    for path, load in ((people, load_people), (cars, load_vehicles)):
        with pytest.raises(ImportRejected) as refused:
            load(path)
        assert [p.field for p in refused.value.problems] == [name.lower()]
        assert RULE in refused.value.problems[0].reason
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(persons)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(vehicles)) == 0


@pytest.fixture
def food(engine: sa.Engine) -> sa.Engine:
    rules.declare_schema(engine, SCHEMA, "schema.toml")
    programme_service.create_programme(
        engine, Programme("food", "kg", BeneficiaryKind.HOUSEHOLD, 30, quota_fixed=to_milli(5))
    )
    return engine


@pytest.mark.parametrize("name", SMUGGLED)
@pytest.mark.parametrize(
    "where",
    [
        'eligible = "monthly_income < 1500 AND {0} = TRUE"\nquota = "10"',
        'eligible = "TRUE"\nquota = "10 + 5 * COUNT(*) FILTER (WHERE {0})"',
        'eligible = "household.{0}"\nquota = "10"',
        'eligible = "region <> \'x\'"\nquota = "CASE WHEN {0} THEN 1 ELSE 10 END"',
    ],
)
def test_a_rule_cannot_reference_one(food: sa.Engine, name: str, where: str) -> None:
    text = f'programme = "food"\nversion = 2\n{where.format(name)}\n'
    with pytest.raises(PolicyRejected) as refused:
        rules.publish_policy(food, text, "food.toml")
    assert any(RULE in p.reason and p.line >= 3 and p.column > 1 for p in refused.value.problems)
    with food.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(policies)) == 1  # v1 only


@pytest.mark.parametrize("name", SMUGGLED)
@pytest.mark.parametrize(
    "definition",
    [
        'title = "Coverage"\nprogramme = "food"\ngroup_by = ["region", "{0}"]\n',
        'title = "Coverage"\nprogramme = "food"\nwhere = "{0} = FALSE"\n',
        'title = "Coverage by {0}"\nprogramme = "food"\n',
    ],
)
def test_a_report_cannot_use_one(food: sa.Engine, name: str, definition: str) -> None:
    with pytest.raises(PolicyRejected) as refused:
        rules.run_report(food, definition.format(name), "report.toml")
    assert any(RULE in p.reason for p in refused.value.problems), refused.value.problems
