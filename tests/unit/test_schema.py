"""The registry schema file: declared attributes, checked, with the firewall on every name."""

import pytest

from canasta.domain.errors import ImportRejected
from canasta.registry.schema import AttributeType, NeedCategory, Owner, parse_schema

GOOD = """
[attributes.monthly_income]
type = "decimal"
unit = "PEN"
belongs_to = "household"
category = "income and assets"
purpose = "Income the household declared at registration, for means testing."

[attributes.disability_level]
type = "integer"
unit = ""
belongs_to = "person"
category = "disability and care needs"
purpose = "Assessed level of disability, 0 to 3, for the care supplement."
"""


def problems(text: str) -> dict[str, str]:
    with pytest.raises(ImportRejected) as caught:
        parse_schema(text, "schema.toml")
    return {p.field: p.reason for p in caught.value.problems}


def test_a_good_schema_declares_its_attributes() -> None:
    schema = parse_schema(GOOD, "schema.toml")
    income = schema.attributes["monthly_income"]
    assert (income.type, income.belongs_to, income.category) == (
        AttributeType.DECIMAL,
        Owner.HOUSEHOLD,
        NeedCategory.INCOME_AND_ASSETS,
    )
    assert [a.name for a in schema.for_owner(Owner.PERSON)] == ["disability_level"]


def test_a_protected_attribute_cannot_be_declared_under_any_spelling() -> None:
    for name in ["religion", "voter_turnout", "etnia", "party_member", "sindicalizado"]:
        text = GOOD.replace("monthly_income", name)
        found = problems(text)
        assert "protected category" in found[f"attributes.{name}"], name
        assert "line 2, column 1" in found[f"attributes.{name}"]


def test_a_purpose_that_names_a_protected_category_is_refused() -> None:
    text = GOOD.replace("for the care supplement", "weighted by the person's religion")
    found = problems(text)
    assert "religion or belief" in found["attributes.disability_level.purpose"]
    assert "line 14" in found["attributes.disability_level.purpose"]


def test_every_problem_is_named_with_its_place() -> None:
    text = GOOD.replace('category = "income and assets"', 'category = "loyalty"').replace(
        'type = "integer"', 'type = "number"\ncolour = "red"'
    )
    found = problems(text)
    assert found["attributes.monthly_income.category"].startswith("must be one of: age and demography")
    assert "(line 6, column 1)" in found["attributes.monthly_income.category"]
    assert found["attributes.disability_level.type"].startswith("must be one of integer, decimal")
    assert "is not a field of an attribute" in found["attributes.disability_level.colour"]


def test_missing_fields_bad_names_and_broken_toml() -> None:
    found = problems('[attributes.Income]\ntype = "decimal"\n')
    assert "lower-case letters" in found["attributes.Income"]
    assert found["attributes.Income.purpose"].startswith("is missing")
    broken = problems('[attributes.x\ntype = "decimal"\n')
    assert "line 1" in broken["(toml)"]
    assert "no attributes are declared" in problems('title = "x"\n')["attributes"]
