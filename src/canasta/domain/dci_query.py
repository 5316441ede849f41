"""Search criteria of the DCI Social Registry API, read into a small condition tree.

Three query types reach a registry:

- ``idtype-value``: one identifier, ``{"type": "UIN", "value": "TEST-001"}``;
- ``expression``: a MongoDB-like filter, ``{"type": …, "value": {"expression": {"collection":
  "Group", "query": {"$and": [{"poverty_score": {"$lt": 5}}, …]}}}}`` (the ``expression``
  wrapper and ``collection`` are optional);
- ``predicate``: a list of ``{seq_num, expression1: {attribute_name, operator,
  attribute_value}, condition, expression2}``; each item is ``expression1``, or
  ``expression1 and|or expression2``, or ``expression1 and not expression2``, and the items,
  in ``seq_num`` order, must all hold.

Every attribute a query names goes through the protected-attribute firewall first, exactly as
a rule's names do: a query on a protected category is refused, whatever the registry holds.
What the names mean (columns, declared attributes) is the service's business.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from canasta.domain.errors import CanastaError
from canasta.domain.firewall import firewall_reason, protected_category

QUERY_TYPES = ("idtype-value", "expression", "predicate")
OPERATORS = ("eq", "ne", "lt", "le", "gt", "ge", "in")
_MONGO = {f"${op}": op for op in OPERATORS} | {"$lte": "le", "$gte": "ge"}
MAX_PAGE_SIZE = 1000
MAX_PAGE_NUMBER = 10_000_000
#: The DCI status reason codes of a refused search.
CRITERIA = "rjct.search_criteria.invalid"
FILTER = "rjct.filter.invalid"
PAGINATION = "rjct.pagination.invalid"
SORT = "rjct.sort.invalid"
MAX_NODES = 100


class QueryRejected(CanastaError):
    """A search the registry will not run; ``reason_code`` is the DCI status reason code."""

    code = "query-rejected"

    def __init__(self, message: str, reason_code: str = CRITERIA, protected: bool = False):
        super().__init__(message)
        self.reason_code = reason_code
        self.protected = protected


@dataclass(frozen=True, slots=True)
class Condition:
    attribute: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class Combined:
    #: and, or, not (``not`` has one part)
    kind: str
    parts: tuple[Node, ...]


Node = Condition | Combined


@dataclass(frozen=True, slots=True)
class Search:
    query_type: str
    #: Member (people) or Group (households)
    entity: str
    id_type: str | None
    id_value: str | None
    where: Node | None
    sort: tuple[tuple[str, bool], ...]
    page_size: int
    page_number: int


def attributes(node: Node | None) -> Iterator[str]:
    if node is None:
        return
    if isinstance(node, Condition):
        yield node.attribute
        return
    for part in node.parts:
        yield from attributes(part)


def _firewall(name: object, where: str) -> str:
    if not isinstance(name, str) or not name or len(name) > 64:
        raise QueryRejected(f"an attribute name must be a short string, not {name!r}", FILTER)
    match = protected_category(name)
    if match is not None:
        raise QueryRejected(firewall_reason(name, match, where), CRITERIA, protected=True)
    return name


def _value(value: Any, op: str, name: str) -> Any:
    if op == "in":
        if not isinstance(value, list) or not value or len(value) > 100:
            raise QueryRejected(f"'in' on {name} needs a list of 1 to 100 values", FILTER)
        return tuple(_value(v, "eq", name) for v in value)
    if isinstance(value, bool | int | float | str):
        if isinstance(value, str) and len(value) > 200:
            raise QueryRejected(f"the value for {name} is too long", FILTER)
        return value
    raise QueryRejected(f"the value for {name} must be a string, number or boolean", FILTER)


class _Counter:
    def __init__(self) -> None:
        self.nodes = 0

    def tick(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise QueryRejected(f"a query may have at most {MAX_NODES} conditions", FILTER)


def _mongo(query: Any, count: _Counter) -> Node:
    if not isinstance(query, Mapping) or not query:
        raise QueryRejected("an expression's query must be a non-empty object", FILTER)
    parts: list[Node] = []
    for key, value in query.items():
        count.tick()
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise QueryRejected(f"{key} needs a non-empty list", FILTER)
            parts.append(Combined(key[1:], tuple(_mongo(v, count) for v in value)))
        elif key == "$not":
            parts.append(Combined("not", (_mongo(value, count),)))
        elif isinstance(key, str) and key.startswith("$"):
            raise QueryRejected(f"unknown expression operator {key!r}", FILTER)
        else:
            name = _firewall(key, "a registry query")
            if isinstance(value, Mapping):
                if not value:
                    raise QueryRejected(f"no condition on {name}", FILTER)
                for op_key, operand in value.items():
                    op = _MONGO.get(op_key)
                    if op is None:
                        raise QueryRejected(f"unknown operator {op_key!r} on {name}", FILTER)
                    parts.append(Condition(name, op, _value(operand, op, name)))
            else:
                parts.append(Condition(name, "eq", _value(value, "eq", name)))
    return parts[0] if len(parts) == 1 else Combined("and", tuple(parts))


def _predicate_expression(expr: Any) -> Condition:
    if not isinstance(expr, Mapping):
        raise QueryRejected("a predicate's expression must be an object", FILTER)
    name = _firewall(expr.get("attribute_name"), "a registry query")
    op = expr.get("operator")
    if op not in ("eq", "lt", "le", "gt", "ge", "in", "ne"):
        raise QueryRejected(f"unknown predicate operator {op!r}", FILTER)
    if "attribute_value" not in expr:
        raise QueryRejected(f"the predicate on {name} has no attribute_value", FILTER)
    return Condition(name, str(op), _value(expr["attribute_value"], str(op), name))


def _seq_num(item: Any) -> float:
    number = item.get("seq_num", 0) if isinstance(item, Mapping) else 0
    return float(number) if isinstance(number, int | float) and not isinstance(number, bool) else 0.0


def _predicate(items: Any, count: _Counter) -> Node:
    if not isinstance(items, list) or not items:
        raise QueryRejected("a predicate query is a non-empty list", FILTER)
    parts: list[Node] = []
    ordered = sorted(
        items,
        key=lambda i: (
            i.get("seq_num", 0)
            if isinstance(i, Mapping) and isinstance(i.get("seq_num", 0), int | float)
            else 0
        ),
    )
    for item in ordered:
        count.tick()
        if not isinstance(item, Mapping) or "expression1" not in item:
            raise QueryRejected("each predicate needs expression1", FILTER)
        first = _predicate_expression(item["expression1"])
        second = item.get("expression2")
        condition = item.get("condition")
        if second is None:
            parts.append(first)
            continue
        other = _predicate_expression(second)
        if condition == "or":
            parts.append(Combined("or", (first, other)))
        elif condition == "not":
            parts.append(Combined("and", (first, Combined("not", (other,)))))
        elif condition in (None, "and"):
            parts.append(Combined("and", (first, other)))
        else:
            raise QueryRejected(f"unknown predicate condition {condition!r}", FILTER)
    return parts[0] if len(parts) == 1 else Combined("and", tuple(parts))


def _positive(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value != int(value)
        or value < 1
        or value > 2**31
    ):
        raise QueryRejected(f"{name} must be a whole number of at least 1", PAGINATION)
    return int(value)


def _sort(sort: Any) -> tuple[tuple[str, bool], ...]:
    if sort is None:
        return ()
    if not isinstance(sort, list) or len(sort) > 5:
        raise QueryRejected("sort is a list of at most 5 attributes", SORT)
    found = []
    for item in sort:
        if not isinstance(item, Mapping) or item.get("sort_order", "asc") not in ("asc", "desc"):
            raise QueryRejected("each sort item is {attribute_name, sort_order: asc|desc}", SORT)
        name = _firewall(item.get("attribute_name"), "a registry query's sort")
        found.append((name, item.get("sort_order", "asc") == "asc"))
    return tuple(found)


def parse_search(item: Mapping[str, Any], default_page_size: int = 100) -> Search:
    """One ``search_request`` item's criteria, checked. Raises ``QueryRejected`` with the
    DCI reason code when the criteria are not ones this registry runs."""
    criteria = item.get("search_criteria")
    if not isinstance(criteria, Mapping):
        raise QueryRejected("search_criteria must be an object")
    query_type = criteria.get("query_type")
    if query_type not in QUERY_TYPES:
        raise QueryRejected(f"query_type must be one of {', '.join(QUERY_TYPES)}, not {query_type!r}")
    query = criteria.get("query")
    entity = criteria.get("response_entity") or "Member"
    if entity not in ("Member", "Group"):
        raise QueryRejected(f"response_entity must be Member or Group, not {entity!r}")
    pagination = criteria.get("pagination") or item.get("pagination") or {}
    if not isinstance(pagination, Mapping):
        raise QueryRejected("pagination must be an object", PAGINATION)
    page_size = _positive(pagination.get("page_size"), "page_size", default_page_size)
    if page_size > MAX_PAGE_SIZE:
        raise QueryRejected(f"a page holds at most {MAX_PAGE_SIZE} records", PAGINATION)
    page_number = _positive(pagination.get("page_number"), "page_number", 1)
    if page_number > MAX_PAGE_NUMBER:
        raise QueryRejected(f"page_number is at most {MAX_PAGE_NUMBER:,}", PAGINATION)
    count = _Counter()
    id_type = id_value = None
    where: Node | None = None
    if query_type == "idtype-value":
        if not isinstance(query, Mapping) or not isinstance(query.get("type"), str):
            raise QueryRejected("an idtype-value query is {type, value}")
        id_type = _firewall(query["type"], "an identifier type")
        raw = query.get("value")
        if isinstance(raw, bool) or not isinstance(raw, str | int) or len(str(raw)) > 100:
            raise QueryRejected("an identifier value is a string or a number")
        id_value = str(raw)
    elif query_type == "expression":
        value = query.get("value") if isinstance(query, Mapping) and "value" in query else query
        if isinstance(value, Mapping) and "expression" in value:
            value = value["expression"]
        if isinstance(value, Mapping) and "query" in value:
            collection = value.get("collection")
            if collection in ("Group", "Member"):
                entity = str(criteria.get("response_entity") or collection)
            value = value["query"]
        where = _mongo(value, count)
    else:
        where = _predicate(query, count)
    return Search(
        str(query_type),
        str(entity),
        id_type,
        id_value,
        where,
        _sort(criteria.get("sort")),
        page_size,
        page_number,
    )


def named(search: Search) -> Sequence[str]:
    """Every attribute the search names (for the service to resolve)."""
    return [*attributes(search.where), *(name for name, _ in search.sort)]
