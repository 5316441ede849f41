"""A partner's search of the registry: the three query types over people and households,
pages and sorting, only the partner's fields, and an access-log entry per household."""

from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canasta.adapters.tables import access_log, households
from canasta.domain import dci_signature
from canasta.domain.dci_query import QueryRejected, parse_search
from canasta.service import dci_search, partners
from canasta.service.partners import Partner
from tests.helpers import build_world

TODAY = date(2026, 11, 29)
KEY = dci_signature.jwk(Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key(), "")["x"]
PURPOSE = "Checking eligibility for the school meals programme"


def _partner(engine: sa.Engine, fields: list[str], sender: str = "ministry") -> Partner:
    partner, _ = partners.register(engine, None, sender.title(), sender, KEY, "k1", PURPOSE, fields)
    return partner


def _search(query_type: str, query: Any, **criteria: Any) -> dict[str, Any]:
    return {
        "reference_id": "r1",
        "timestamp": "2026-11-29T12:00:00Z",
        "search_criteria": {"query_type": query_type, "query": query, **criteria},
    }


def _logged(engine: sa.Engine) -> list[tuple[str, str, str, str, str | None]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.select(
                    households.c.ref,
                    access_log.c.actor_kind,
                    access_log.c.actor_name,
                    access_log.c.purpose,
                    access_log.c.consent,
                )
                .join(households, households.c.id == access_log.c.household_id)
                .order_by(access_log.c.id)
            )
        ]


def test_a_person_by_identifier_with_only_the_partners_fields_and_the_read_logged(engine: sa.Engine) -> None:
    build_world(engine)
    partner = _partner(engine, ["registration_id", "given_names", "birth_date", "household"])
    item = _search(
        "idtype-value", {"type": "UIN", "value": "H3-1"}, consent={"ts": "2026-11-01", "purpose": "x"}
    )
    page = dci_search.run(
        engine, partner, parse_search(item), dci_search.consent_of(item["search_criteria"]), TODAY
    )
    assert page.total_count == 1 and page.entity == "Member"
    (record,) = page.records
    person = record["demographic_info"]
    assert person["name"] == {"@type": "Name", "given_name": "Ana"}  # no family names: not granted
    assert person["birth_date"] == "1980-01-02"
    assert "sex" not in person and "address" not in person and "phone_number" not in person
    assert record["member_identifier"] == [
        {"@type": "Identifier", "identifier_type": "UIN", "identifier_value": "H3-1"},
        {"@type": "Identifier", "identifier_type": "HOUSEHOLD_ID", "identifier_value": "H3"},
    ]
    assert "identifier" not in record  # the SRPerson array stays inside demographic_info
    assert _logged(engine) == [
        ("H3", "partner", "Ministry", PURPOSE, '{"consent":{"purpose":"x","ts":"2026-11-01"}}')
    ]


def test_households_by_expression_with_pages_and_sorting(engine: sa.Engine) -> None:
    build_world(engine)
    partner = _partner(engine, ["household", "group_size", "region"])
    query = {
        "expression": {
            "collection": "Group",
            "query": {"$and": [{"group_size": {"$ge": 2}}, {"location": "Norte"}]},
        }
    }
    first = parse_search(
        _search(
            "expression",
            {"type": "ns:org:QueryType:expression", "value": query},
            sort=[{"attribute_name": "group_size", "sort_order": "desc"}],
            pagination={"page_size": 2, "page_number": 1},
        )
    )
    page = dci_search.run(engine, partner, first, None, TODAY)
    assert (page.total_count, page.entity) == (3, "Group")
    assert [r["group_identifier"][0]["identifier_value"] for r in page.records] == ["H4", "H3"]
    assert page.records[0]["group_size"] == 4 and page.records[0]["place"] == {"address": {"region": "Norte"}}
    second = parse_search(
        _search(
            "expression",
            query,
            sort=[{"attribute_name": "group_size", "sort_order": "desc"}],
            pagination={"page_size": 2, "page_number": 2},
        )
    )
    assert [
        r["group_identifier"][0]["identifier_value"]
        for r in dci_search.run(engine, partner, second, None, TODAY).records
    ] == ["H2"]
    assert [ref for ref, *_ in _logged(engine)] == ["H4", "H3", "H2"]


def test_people_by_predicate_on_age_and_sex(engine: sa.Engine) -> None:
    build_world(engine)
    partner = _partner(engine, ["registration_id", "birth_date", "sex"])
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE persons SET date_of_birth = :d, sex = 'M' WHERE registration_id = 'H4-3'"),
            {"d": date(2010, 6, 1)},
        )
    query = [
        {"seq_num": 1, "expression1": {"attribute_name": "age", "operator": "lt", "attribute_value": "25"}},
        {
            "seq_num": 2,
            "expression1": {"attribute_name": "gender", "operator": "eq", "attribute_value": "male"},
        },
    ]
    page = dci_search.run(engine, partner, parse_search(_search("predicate", query)), None, TODAY)
    assert [r["member_identifier"][0]["identifier_value"] for r in page.records] == ["H4-3"]
    older = [
        {"seq_num": 1, "expression1": {"attribute_name": "age", "operator": "ge", "attribute_value": 46}}
    ]
    # Ten people born in January 1980, one of them moved to 2010 above.
    found = dci_search.run(engine, partner, parse_search(_search("predicate", older)), None, TODAY)
    assert found.total_count == 9


def test_an_attribute_the_registry_does_not_hold_is_refused_and_nothing_is_logged(engine: sa.Engine) -> None:
    build_world(engine)
    partner = _partner(engine, ["registration_id", "household", "birth_date", "sex"])
    for item, reason in [
        (_search("expression", {"poverty_score": {"$lt": 5}}), "rjct.filter.invalid"),
        (_search("idtype-value", {"type": "PASSPORT", "value": "x"}), "rjct.filter.invalid"),
        (_search("expression", {"age": {"$lt": "old"}}), "rjct.filter.invalid"),
        (_search("expression", {"sex": "unknown"}), "rjct.filter.invalid"),
        (
            _search("idtype-value", {"type": "UIN", "value": "H1-0"}, sort=[{"attribute_name": "shoe_size"}]),
            "rjct.sort.invalid",
        ),
    ]:
        with pytest.raises(QueryRejected) as refused:
            dci_search.run(engine, partner, parse_search(item), None, TODAY)
        assert refused.value.reason_code == reason
    assert _logged(engine) == []


def test_a_partner_filters_sorts_and_looks_up_only_by_what_it_receives(engine: sa.Engine) -> None:
    """A filter on a field the partner is not given would tell it that field through the
    matches (and the count), with no record returned and nothing logged."""
    build_world(engine)
    partner = _partner(engine, ["household", "group_size"])
    for item, reason in [
        (_search("expression", {"birth_date": "1980-01-02"}), "rjct.filter.invalid"),
        (_search("expression", {"$not": {"age": {"$lt": 50}}}), "rjct.filter.invalid"),
        (
            _search(
                "predicate",
                [{"expression1": {"attribute_name": "sex", "operator": "eq", "attribute_value": "F"}}],
            ),
            "rjct.filter.invalid",
        ),
        (_search("idtype-value", {"type": "UIN", "value": "H3-1"}), "rjct.filter.invalid"),
        (_search("idtype-value", {"type": "MOBILE", "value": "555"}), "rjct.filter.invalid"),
        (
            _search("expression", {"group_size": {"$ge": 1}}, sort=[{"attribute_name": "family_name"}]),
            "rjct.sort.invalid",
        ),
    ]:
        with pytest.raises(QueryRejected, match="may not") as refused:
            dci_search.run(engine, partner, parse_search(item), None, TODAY)
        assert refused.value.reason_code == reason
    assert _logged(engine) == []
    groups = parse_search(_search("expression", {"group_size": {"$ge": 3}}, response_entity="Group"))
    assert dci_search.run(engine, partner, groups, None, TODAY).total_count == 2


def test_values_that_do_not_fit_are_refused_not_failed(engine: sa.Engine) -> None:
    build_world(engine)
    partner = _partner(engine, ["registration_id", "birth_date", "region", "group_size"])
    for query in (
        {"age": {"$lt": 10000}},
        {"age": {"$lt": 1e300}},
        {"group_size": {"$gt": 10**400}},
        {"group_size": {"$gt": "many"}},
    ):
        with pytest.raises(QueryRejected):
            dci_search.run(engine, partner, parse_search(_search("expression", query)), None, TODAY)
    # A number for a text column is compared as text, on both databases.
    page = dci_search.run(engine, partner, parse_search(_search("expression", {"region": 5})), None, TODAY)
    assert page.total_count == 0
    with pytest.raises(QueryRejected) as refused:
        parse_search(
            _search("expression", {"region": "Norte"}, pagination={"page_size": 10, "page_number": 10**30})
        )
    assert refused.value.reason_code == "rjct.pagination.invalid"
    group_by_age = _search(
        "expression", {"group_size": {"$ge": 1}}, response_entity="Group", sort=[{"attribute_name": "age"}]
    )
    with pytest.raises(QueryRejected) as sorted_refused:
        dci_search.run(engine, partner, parse_search(group_by_age), None, TODAY)
    assert sorted_refused.value.reason_code == "rjct.sort.invalid"
