"""Evaluating a policy over one beneficiary's facts, and saying why, in English and Spanish."""

from typing import Any

import pytest

from canasta.policy.document import Rounding, parse_policy
from canasta.policy.explain import evaluate, explain, load_facts, quantity
from canasta.policy.language import Catalogue, PolicyRejected, Source, check_expression
from canasta.registry.schema import Owner
from tests.unit.test_policy_language import CATALOGUE


def value(text: str, **facts: Any) -> Any:
    checked = check_expression(text, Source("t"), CATALOGUE, Owner.HOUSEHOLD, None, "t")
    keyed = {key: facts[key.split(".")[-1].replace("(*)", "").lower()] for key in checked.facts}
    return evaluate(checked.tree, keyed)


@pytest.mark.parametrize(
    ("text", "facts", "expected"),
    [
        ("monthly_income < 1500", {"monthly_income": None}, None),
        ("monthly_income < 1500 AND rural", {"monthly_income": None, "rural": False}, False),
        ("monthly_income < 1500 OR rural", {"monthly_income": None, "rural": True}, True),
        ("monthly_income < 1500 OR rural", {"monthly_income": None, "rural": False}, None),
        ("NOT rural", {"rural": None}, None),
        ("monthly_income IS NULL", {"monthly_income": None}, True),
        ("region IN ('a', NULL)", {"region": "b"}, None),
        ("region IN ('a', NULL)", {"region": "a"}, True),
        ("region NOT IN ('a')", {"region": None}, None),
        ("monthly_income / 0", {"monthly_income": 10.0}, None),
        ("7 / 2", {}, 3.5),
        ("LEAST(monthly_income, 5)", {"monthly_income": None}, 5),
        ("GREATEST(monthly_income, NULL)", {"monthly_income": None}, None),
        ("COALESCE(monthly_income, 3)", {"monthly_income": None}, 3),
        ("CASE WHEN rural THEN 1 ELSE 2 END", {"rural": None}, 2),
        ("CASE region WHEN 'a' THEN 1 END", {"region": "b"}, None),
        ("monthly_income BETWEEN 1 AND NULL", {"monthly_income": 0.0}, False),
        ("monthly_income BETWEEN 1 AND NULL", {"monthly_income": 2.0}, None),
        ("rural = TRUE", {"rural": True}, True),
    ],
)
def test_evaluation_follows_sql_three_valued_logic(text: str, facts: dict[str, Any], expected: Any) -> None:
    assert value(text, **facts) == expected


def policy(**extra: Any) -> Any:
    lines = ['programme = "food"', "version = 2", 'eligible = "TRUE"', 'quota = "members"']
    lines += [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in extra.items()]
    return parse_policy("\n".join(lines).replace("'", '"'), "p.toml", CATALOGUE)


@pytest.mark.parametrize(
    ("raw", "extra", "milli"),
    [
        (2.0004, {}, 2000),
        (2.0005, {}, 2001),
        (7.3, {"step": 0.5, "rounding": "down"}, 7000),
        (7.3, {"step": 0.5, "rounding": "up"}, 7500),
        (7.2, {"step": 0.5, "rounding": "nearest"}, 7000),
        (7.25, {"step": 0.5, "rounding": "nearest"}, 7500),
        (99, {"cap": 40}, 40000),
        (41.2, {"cap": 40.25, "step": 0.5, "rounding": "down"}, 40250),
        (40.3, {"cap": 40.25, "step": 0.5, "rounding": "down"}, 40000),
        (-3, {}, -3000),
        (None, {}, None),
        (float("inf"), {"cap": 5}, 5000),
    ],
)
def test_quantity_rounds_then_caps(raw: Any, extra: dict[str, Any], milli: int | None) -> None:
    assert quantity(policy(**extra), raw) == milli


def test_policy_fields_are_checked() -> None:
    with pytest.raises(PolicyRejected) as refused:
        parse_policy(
            'programme = ""\nversion = 0\neligible = 3\nquota = "1"\ncap = -1\n'
            'rounding = "sideways"\nstep = 0.0001\ncolour = 1\n',
            "p.toml",
            CATALOGUE,
        )
    found = " | ".join(str(p) for p in refused.value.problems)
    for reason in (
        "must name the programme",
        "must be a whole number from 1",
        "written as text",
        "'cap'",
        "must be down, up or nearest",
        "'step'",
        "'colour' is not a field of a policy",
    ):
        assert reason in found, found
    assert "line 8" in found


def test_a_toml_error_says_where() -> None:
    with pytest.raises(PolicyRejected) as refused:
        parse_policy('programme = "food"\nversion = = 2\n', "p.toml", CATALOGUE)
    assert "p.toml, line 2" in str(refused.value.problems[0])


def test_the_hash_is_of_the_exact_text() -> None:
    assert policy().sha256 != policy(cap=40).sha256
    assert policy().rounding is Rounding.NEAREST and policy().step == 1


FOOD = """\
programme = "food"
version = 2
eligible = "monthly_income < 1500 OR COUNT(*) FILTER (WHERE disabled) > 0"
quota = "10 + 4 * members + 3 * COUNT(*) FILTER (WHERE age < 5)"
cap = 25
"""


def test_an_explanation_shows_each_clause_the_values_and_the_result() -> None:
    food = parse_policy(FOOD, "food.toml", CATALOGUE)
    facts = load_facts(food, [800.0, 0, 4, 1])
    e = explain(food, CATALOGUE, facts, "kg", "en")
    assert e.eligible is True and e.combine == "or"
    assert [(c.text, c.result) for c in e.clauses] == [
        ("monthly income is less than 1500", "yes"),
        ("number of members with disabled is more than 0", "no"),
    ]
    assert e.clauses[0].used == [("monthly income", "800 PEN")]
    assert e.quota_raw == "29" and e.quantity == 25000
    assert e.adjustments == ["capped at 25 kg"]
    assert e.summary == "Entitled to 25 kg of food this cycle."


def test_an_explanation_in_spanish_and_for_someone_not_eligible() -> None:
    food = parse_policy(FOOD, "food.toml", CATALOGUE)
    e = explain(food, CATALOGUE, load_facts(food, [2500, 0, 1, 0]), "kg", "es")
    assert e.eligible is False and e.quantity == 0
    assert e.clauses[0].text == "monthly income es menor que 1500" and e.clauses[0].result == "no"
    assert e.summary.startswith("No le corresponde food")


def test_an_unknown_value_is_said_to_be_unknown() -> None:
    food = parse_policy(FOOD, "food.toml", CATALOGUE)
    e = explain(food, CATALOGUE, load_facts(food, [None, 0, 1, 0]), "kg", "en")
    assert e.eligible is None and e.clauses[0].result == "not known"
    assert "some facts the rule needs are unknown" in e.summary


def test_labels_come_from_the_schema() -> None:
    from dataclasses import replace

    labelled = dict(CATALOGUE.attributes)
    labelled["monthly_income"] = replace(labelled["monthly_income"], label_es="ingreso mensual")
    food = parse_policy(FOOD, "food.toml", Catalogue(labelled))
    e = explain(food, Catalogue(labelled), load_facts(food, [800, 0, 1, 0]), "kg", "es")
    assert e.clauses[0].text == "ingreso mensual es menor que 1500"
