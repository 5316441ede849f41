"""DCI search criteria read into conditions, and every refusal with its DCI reason code."""

from typing import Any

import pytest

from canasta.domain.dci_query import (
    CRITERIA,
    FILTER,
    PAGINATION,
    SORT,
    Combined,
    Condition,
    QueryRejected,
    named,
    parse_search,
)


def _item(query_type: str, query: Any, **criteria: Any) -> dict[str, Any]:
    return {
        "reference_id": "r1",
        "timestamp": "2026-11-29T12:00:00Z",
        "search_criteria": {"query_type": query_type, "query": query, **criteria},
    }


def _uin(**criteria: Any) -> dict[str, Any]:
    return _item("idtype-value", {"type": "UIN", "value": "1"}, **criteria)


def test_an_identifier_query() -> None:
    found = parse_search(_item("idtype-value", {"type": "UIN", "value": "TEST-001"}))
    assert (found.query_type, found.entity, found.id_type, found.id_value) == (
        "idtype-value",
        "Member",
        "UIN",
        "TEST-001",
    )
    assert (found.page_size, found.page_number, found.where) == (100, 1, None)


def test_an_expression_in_its_wrapper_picks_the_collection() -> None:
    query = {
        "type": "ns:org:QueryType:expression",
        "value": {
            "expression": {
                "collection": "Group",
                "query": {"$and": [{"poverty_score": {"$lt": 5}}, {"location": {"$eq": "central_region"}}]},
            }
        },
    }
    found = parse_search(_item("expression", query))
    assert found.entity == "Group"
    assert found.where == Combined(
        "and", (Condition("poverty_score", "lt", 5), Condition("location", "eq", "central_region"))
    )
    bare = parse_search(_item("expression", {"group_size": {"$gte": 2, "$lte": 4}, "region": "Norte"}))
    assert bare.where == Combined(
        "and",
        (
            Condition("group_size", "ge", 2),
            Condition("group_size", "le", 4),
            Condition("region", "eq", "Norte"),
        ),
    )


def test_predicates_combine_in_sequence_order() -> None:
    query = [
        {
            "seq_num": 2,
            "expression1": {"attribute_name": "poverty_score", "operator": "lt", "attribute_value": "2.5"},
        },
        {
            "seq_num": 1,
            "expression1": {"attribute_name": "age", "operator": "lt", "attribute_value": 25},
            "condition": "not",
            "expression2": {"attribute_name": "sex", "operator": "in", "attribute_value": ["F"]},
        },
    ]
    found = parse_search(_item("predicate", query, sort=[{"attribute_name": "age", "sort_order": "desc"}]))
    assert found.where == Combined(
        "and",
        (
            Combined("and", (Condition("age", "lt", 25), Combined("not", (Condition("sex", "in", ("F",)),)))),
            Condition("poverty_score", "lt", "2.5"),
        ),
    )
    assert found.sort == (("age", False),)
    assert list(named(found)) == ["age", "sex", "poverty_score", "age"]


@pytest.mark.parametrize(
    ("query_type", "query"),
    [
        ("idtype-value", {"type": "religion", "value": "x"}),
        ("expression", {"$and": [{"age": {"$gt": 18}}, {"voted_last_election": True}]}),
        (
            "predicate",
            [{"expression1": {"attribute_name": "etnia", "operator": "eq", "attribute_value": "x"}}],
        ),
        ("expression", {"partyMembership": "x"}),
    ],
)
def test_a_protected_category_is_refused_wherever_it_is_named(query_type: str, query: Any) -> None:
    with pytest.raises(QueryRejected, match="protected") as refused:
        parse_search(_item(query_type, query))
    assert refused.value.protected and refused.value.reason_code == CRITERIA


def test_a_protected_sort_is_refused() -> None:
    with pytest.raises(QueryRejected, match="protected"):
        parse_search(_uin(sort=[{"attribute_name": "religion"}]))


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (_item("graphql", {}), CRITERIA),
        (_item("expression", {"age": {"$regex": "x"}}), FILTER),
        (_item("expression", {"$where": "1"}), FILTER),
        (_item("expression", {}), FILTER),
        (
            _item("predicate", [{"expression1": {"attribute_name": "age", "operator": "like"}}]),
            FILTER,
        ),
        (_item("predicate", []), FILTER),
        (_item("expression", {"age": {"$in": []}}), FILTER),
        (_item("expression", {"age": {"$eq": {"nested": 1}}}), FILTER),
        (_item("idtype-value", {"type": "UIN"}), CRITERIA),
        (
            _uin(pagination={"page_size": 0}),
            PAGINATION,
        ),
        (
            _uin(pagination={"page_size": 5000}),
            PAGINATION,
        ),
        (
            {
                **_item("idtype-value", {"type": "UIN", "value": "1"}),
                "pagination": {"page_size": 5, "page_number": -1},
            },
            PAGINATION,
        ),
        (
            _item(
                "idtype-value",
                {"type": "UIN", "value": "1"},
                sort=[{"attribute_name": "age", "sort_order": "up"}],
            ),
            SORT,
        ),
        (
            _uin(response_entity="Household"),
            CRITERIA,
        ),
        (_item("expression", {"$and": [{"age": {"$gt": n}} for n in range(200)]}), FILTER),
    ],
)
def test_bad_criteria_are_refused_with_their_reason_code(item: dict[str, Any], reason: str) -> None:
    with pytest.raises(QueryRejected) as refused:
        parse_search(item)
    assert refused.value.reason_code == reason and not refused.value.protected
