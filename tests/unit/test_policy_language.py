"""The rule language: what parses and checks, what is refused, and where errors point."""

import pytest

from canasta.policy.document import parse_policy
from canasta.policy.language import Catalogue, PolicyRejected, Source, Type, check_expression
from canasta.registry.schema import Attribute, AttributeType, NeedCategory, Owner

DECLARED = {
    "monthly_income": Attribute(
        "monthly_income",
        AttributeType.DECIMAL,
        "PEN",
        Owner.HOUSEHOLD,
        NeedCategory.INCOME_AND_ASSETS,
        "Declared income, for means testing.",
    ),
    "rural": Attribute(
        "rural", AttributeType.BOOLEAN, "", Owner.HOUSEHOLD, NeedCategory.LOCATION, "Lives in a rural area."
    ),
    "disabled": Attribute(
        "disabled",
        AttributeType.BOOLEAN,
        "",
        Owner.PERSON,
        NeedCategory.DISABILITY_AND_CARE,
        "Lives with a disability that needs care.",
    ),
    "engine_cc": Attribute(
        "engine_cc", AttributeType.INTEGER, "cc", Owner.VEHICLE, NeedCategory.VEHICLE, "Engine size."
    ),
}
CATALOGUE = Catalogue.of(DECLARED)


def check(text: str, want: Type | None = Type.BOOLEAN, per: Owner = Owner.HOUSEHOLD) -> Type:
    return check_expression(text, Source("p.toml"), CATALOGUE, per, want, "the rule").type


def problems(text: str, want: Type | None = Type.BOOLEAN, per: Owner = Owner.HOUSEHOLD) -> list[str]:
    with pytest.raises(PolicyRejected) as refused:
        check_expression(text, Source("p.toml"), CATALOGUE, per, want, "the rule")
    return [str(p) for p in refused.value.problems]


@pytest.mark.parametrize(
    "text",
    [
        "monthly_income < 1500",
        "household.monthly_income <= 1500.5 AND NOT rural",
        "region IN ('Puno', 'Cusco') OR municipality = 'Juliaca'",
        "region NOT IN ('Lima')",
        "COUNT(*) FILTER (WHERE age < 5) > 0",
        "COUNT(*) FILTER (WHERE disabled AND sex = 'F') >= 1",
        "SUM(age) > 100 AND MIN(age) < 5 AND MAX(age) BETWEEN 60 AND 120",
        "COUNT(age) = members",
        "CASE WHEN rural THEN monthly_income < 2000 ELSE monthly_income < 1500 END",
        "COALESCE(monthly_income, 0) / members < 300",
        "LEAST(monthly_income, 1000) = GREATEST(monthly_income, 1000)",
        "ABS(-monthly_income) > 0",
        "monthly_income IS NULL OR monthly_income IS NOT NULL",
        "TRUE",
    ],
)
def test_the_allowed_subset_checks(text: str) -> None:
    assert check(text) is Type.BOOLEAN


def test_a_quota_is_a_number_and_vehicle_rules_see_the_household() -> None:
    assert check("10 + 4 * members + 3 * COUNT(*) FILTER (WHERE age < 5)", Type.NUMBER) is Type.NUMBER
    assert check("kind = 'car' AND engine_cc < 2000 AND household.rural", per=Owner.VEHICLE) is Type.BOOLEAN
    assert check("CASE kind WHEN 'motorcycle' THEN 20 ELSE 60 END", Type.NUMBER, Owner.VEHICLE) is Type.NUMBER


@pytest.mark.parametrize(
    ("text", "token", "reason"),
    [
        ("(SELECT 1) = 1", "(", "subqueries and tables are not part"),
        ("EXISTS (SELECT 1 FROM persons)", "EXISTS", "subqueries and tables are not part"),
        ("monthly_income IN (SELECT 1)", "monthly_income", "IN takes a list of values"),
        ("sqrt(members) > 1", "SQRT", "is not an allowed function"),
        ("lower(region) = 'puno'", "LOWER", "is not an allowed function"),
        ("foo(1) = 2", "FOO", "is not an allowed function"),
        ("CAST(members AS TEXT) = '1'", "CAST", "is not an allowed function"),
        ("region || 'x' = 'Punox'", "region", "not part of the rule language"),
        ("members % 2 = 0", "members", "not part of the rule language"),
        ("region LIKE 'P%'", "region", "not part of the rule language"),
        ("SUM(members) OVER () > 1", "SUM", "not part of the rule language"),
    ],
)
def test_anything_outside_the_subset_is_refused_where_it_is(text: str, token: str, reason: str) -> None:
    found = problems(text)
    assert any(f"at {token!r}" in p and reason in p for p in found), found


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("age > 60", "belongs to each member: use it inside COUNT"),
        ("person.age > 60", "belongs to each member"),
        ("COUNT(*) FILTER (WHERE monthly_income > 3) > 0", "only members' attributes"),
        ("COUNT(*) FILTER (WHERE COUNT(*) > 1) > 0", "aggregates cannot be nested"),
        ("SUM(*) > 1", "SUM(*) means nothing"),
        ("COUNT(DISTINCT age) > 1", "DISTINCT is not supported"),
        ("monthly_incme < 1", "did you mean 'monthly_income'?"),
        ("engine_cc > 1", "belongs to a vehicle, and this programme is per household"),
        ("region < 3", "cannot compare a text with a number"),
        ("rural + 1 > 2", "arithmetic needs a number, and this is a boolean"),
        ("members AND rural", "AND needs a boolean, and this is a number"),
        ("region IN (1, 2)", "an IN list cannot compare a text with a number"),
        ("region IN (members)", "an IN list holds only literal values"),
        ("CASE WHEN rural THEN 1 ELSE 'x' END = 1", "every THEN and ELSE of a CASE"),
        ("rural < TRUE", "true and false cannot be ordered"),
        ("monthly_income < 1e9", "a number is written with digits"),
        ("school.region = 'x'", "'school' is not household, person or vehicle"),
        ("\"region\" = 'x'", "an attribute is written name or owner.name"),
        ("members + 1", "must give a boolean, and this gives a number"),
        ("monthly_income < < 3", "not part of the rule language"),
    ],
)
def test_mistakes_are_named(text: str, reason: str) -> None:
    found = problems(text)
    assert any(reason in p for p in found), found


def test_a_parse_error_names_line_column_and_token() -> None:
    found = problems("monthly_income < 1500 AND (rural OR")
    assert found and "p.toml, line 1" in found[0] and "cannot parse" in found[0]


def test_every_problem_is_reported_not_just_the_first() -> None:
    assert len(problems("sqrt(members) > 1 AND voted AND region < 3")) == 3


SMUGGLED = [
    "voted",
    "voter_turnout",
    "VoterTurnout",
    "sufragio",
    "voto",
    "party_member",
    "militante",
    "religion",
    "religión",
    "credo",
    "etnia",
    "raza",
    "sindicato",
    "orientacao_sexual",
    "household.afiliacion_partidaria",
    "vota_2024",
]


@pytest.mark.parametrize("name", SMUGGLED)
def test_the_firewall_refuses_protected_names_in_a_rule(name: str) -> None:
    found = problems(
        f'monthly_income < 1500 AND "{name}" = 1'.replace('"', "") if "." in name else f"{name} = 1"
    )
    assert any("a protected category" in p and "invariant 4" in p for p in found), found


@pytest.mark.parametrize("value", ["evangélico", "Partido Verde", "votó", "indígena"])
def test_the_firewall_refuses_protected_values_in_a_rule(value: str) -> None:
    found = problems(f"region = '{value}'")
    assert any("a protected category" in p and "a value in the rule" in p for p in found), found


def test_the_firewall_reaches_inside_aggregates() -> None:
    found = problems("COUNT(*) FILTER (WHERE religion = 'x') > 0")
    assert any("religion or belief" in p for p in found), found


POLICY = """\
programme = "food"
version = 2
eligible = \"\"\"
monthly_income < 1500
  AND sqrt(members) > 1
\"\"\"
quota = "10 + voted"
"""


def test_policy_errors_point_into_the_file() -> None:
    with pytest.raises(PolicyRejected) as refused:
        parse_policy(POLICY, "food.toml", CATALOGUE)
    found = [str(p) for p in refused.value.problems]
    assert "food.toml, line 5, column 7 at 'SQRT'" in found[0]
    assert "food.toml, line 7, column 15 at 'voted'" in found[1]
