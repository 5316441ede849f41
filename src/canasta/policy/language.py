"""The rule language: a small, typed subset of SQL expressions over declared attributes.

An expression is parsed with sqlglot and then checked node by node against an allow-list:
literals, attributes, arithmetic, comparisons, AND/OR/NOT, CASE, COALESCE, LEAST/GREATEST,
ABS, IN lists, IS NULL, BETWEEN, and COUNT/SUM/MIN/MAX over the household's members with an
optional ``FILTER (WHERE …)``. Anything else (a subquery, a table, a function outside the
list, a window, a cast) is refused. Every name passes the protected-attribute firewall
before anything else is done with it.

The checked expression keeps its sqlglot tree. Its *facts* are the values it reads from the
registry: the beneficiary's own attributes, its household's, and each aggregate over the
members. A cycle run computes the facts in SQL and stores them with the entitlement, so the
explanation shows what was used, not what the registry says today.

This module does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from canasta.domain.errors import InvalidInput
from canasta.domain.firewall import firewall_reason, protected_category
from canasta.registry.schema import Attribute, AttributeType, NeedCategory, Owner


class Type(StrEnum):
    NUMBER = "number"
    BOOLEAN = "boolean"
    TEXT = "text"
    DATE = "date"


_OF_ATTRIBUTE = {
    AttributeType.INTEGER: Type.NUMBER,
    AttributeType.DECIMAL: Type.NUMBER,
    AttributeType.BOOLEAN: Type.BOOLEAN,
    AttributeType.TEXT: Type.TEXT,
    AttributeType.DATE: Type.DATE,
}

#: Attributes every registry has, declared by canasta itself.
BUILT_IN: tuple[Attribute, ...] = (
    Attribute(
        "region",
        AttributeType.TEXT,
        "",
        Owner.HOUSEHOLD,
        NeedCategory.LOCATION,
        "The region the household lives in, for programmes that serve some regions.",
    ),
    Attribute(
        "municipality",
        AttributeType.TEXT,
        "",
        Owner.HOUSEHOLD,
        NeedCategory.LOCATION,
        "The municipality the household lives in.",
    ),
    Attribute(
        "members",
        AttributeType.INTEGER,
        "",
        Owner.HOUSEHOLD,
        NeedCategory.HOUSEHOLD_COMPOSITION,
        "How many people are registered in the household.",
    ),
    Attribute(
        "age",
        AttributeType.INTEGER,
        "",
        Owner.PERSON,
        NeedCategory.AGE_AND_DEMOGRAPHY,
        "A member's age in whole years on the first day of the cycle.",
    ),
    Attribute(
        "sex",
        AttributeType.TEXT,
        "",
        Owner.PERSON,
        NeedCategory.AGE_AND_DEMOGRAPHY,
        "A member's sex as registered (F, M or X).",
    ),
    Attribute(
        "kind",
        AttributeType.TEXT,
        "",
        Owner.VEHICLE,
        NeedCategory.VEHICLE,
        "The kind of vehicle (car, motorcycle, van, truck, bus, tractor, boat, other).",
    ),
)
BUILT_IN_NAMES = frozenset(a.name for a in BUILT_IN)
AGGREGATES: dict[type[exp.Expr], str] = {exp.Count: "COUNT", exp.Sum: "SUM", exp.Min: "MIN", exp.Max: "MAX"}
MAX_EXPRESSION = 4000
MAX_DEPTH = 60


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a rule, and where: ``line`` and ``column`` count from 1 in the
    file the rule was read from."""

    file: str
    line: int
    column: int
    token: str
    reason: str

    def __str__(self) -> str:
        near = f" at {self.token!r}" if self.token else ""
        return f"{self.file}, line {self.line}, column {self.column}{near}: {self.reason}"


class PolicyRejected(InvalidInput):
    """A policy, report or rule that does not check; ``problems`` says every reason."""

    code = "policy-rejected"

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message + ": " + "; ".join(str(p) for p in problems[:3]))
        self.summary = message
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Source:
    """Where an expression's text sits in its file, to turn offsets into lines and columns."""

    file: str
    line: int = 1
    column: int = 1

    def at(self, text: str, offset: int) -> tuple[int, int]:
        before = text[:offset]
        newlines = before.count("\n")
        if newlines == 0:
            return self.line, self.column + offset
        return self.line + newlines, offset - before.rfind("\n")


@dataclass(frozen=True, slots=True)
class Catalogue:
    """What a rule may name: the declared attributes plus the built-in ones."""

    attributes: Mapping[str, Attribute]

    @classmethod
    def of(cls, declared: Mapping[str, Attribute]) -> Catalogue:
        merged = {a.name: a for a in BUILT_IN}
        merged.update(declared)
        return cls(merged)

    def owned_by(self, owner: Owner, name: str) -> Attribute | None:
        found = self.attributes.get(name)
        return found if found is not None and found.belongs_to is owner else None


@dataclass(frozen=True, slots=True)
class Fact:
    """A value an expression reads: an attribute of the beneficiary (or its household), or
    an aggregate over the household's members. ``key`` is its canonical text."""

    key: str
    type: Type
    #: The attribute, for an attribute fact; None for an aggregate.
    attribute: Attribute | None
    #: For an aggregate: COUNT, SUM, MIN or MAX, its argument (None for COUNT(*)) and filter.
    function: str = ""
    argument: exp.Expr | None = None
    condition: exp.Expr | None = None


@dataclass(slots=True)
class Checked:
    """An expression that parsed and checked, with its type and the facts it reads."""

    text: str
    tree: exp.Expr
    type: Type
    facts: dict[str, Fact] = field(default_factory=dict)


class _Checker:
    def __init__(self, text: str, source: Source, catalogue: Catalogue, per: Owner, what: str) -> None:
        self.text = text
        self.source = source
        self.catalogue = catalogue
        self.per = per
        self.what = what
        self.problems: list[Problem] = []
        self.facts: dict[str, Fact] = {}
        self.types: dict[int, Type] = {}

    # -- reporting ---------------------------------------------------------------------

    def where(self, node: exp.Expr) -> tuple[int, int, str]:
        """Line, column and token of ``node``: an identifier knows where it is; any other
        node is found by its first token, searched back from its first identifier."""
        if isinstance(node, exp.Column | exp.Identifier):
            ident = node if isinstance(node, exp.Identifier) else node.this
            if isinstance(ident, exp.Identifier) and "start" in ident.meta:
                line, column = self.source.at(self.text, int(ident.meta["start"]))
                return line, column, node.sql()
        limit = len(self.text)
        for ident in node.find_all(exp.Identifier):
            if "start" in ident.meta:
                limit = min(limit, int(ident.meta["start"]))
        token = _first_token(node)
        lowered = self.text.lower()
        offset = lowered.rfind(token.lower(), 0, limit + 1) if token else -1
        if offset < 0:
            offset = lowered.find(token.lower()) if token else 0
        line, column = self.source.at(self.text, max(offset, 0))
        return line, column, token

    def bad(self, node: exp.Expr, reason: str) -> None:
        line, column, token = self.where(node)
        self.problems.append(Problem(self.source.file, line, column, token, reason))

    # -- checking ----------------------------------------------------------------------

    def check(self, node: exp.Expr, scope: Owner, depth: int = 0) -> Type | None:
        if depth > MAX_DEPTH:
            self.bad(node, f"the expression nests more than {MAX_DEPTH} levels deep")
            return None
        kind = self._check(node, scope, depth + 1)
        if kind is not None:
            self.types[id(node)] = kind
        return kind

    def _check(self, node: exp.Expr, scope: Owner, depth: int) -> Type | None:
        check = self.check
        if isinstance(node, exp.Paren):
            return check(node.this, scope, depth)
        if isinstance(node, exp.Literal):
            if not node.is_string and not _NUMBER.match(node.this):
                self.bad(node, "a number is written with digits and an optional decimal point")
                return None
            if node.is_string:
                said = protected_category(node.this)
                if said:
                    self.bad(node, firewall_reason(node.this, said, f"a value in {self.what}"))
                return Type.TEXT
            return Type.NUMBER
        if isinstance(node, exp.Boolean):
            return Type.BOOLEAN
        if isinstance(node, exp.Null):
            return None
        if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.DATE):
            value = node.this
            if not (isinstance(value, exp.Literal) and value.is_string and _ISO.match(value.this)):
                self.bad(node, "a date is written DATE 'YYYY-MM-DD'")
                return None
            return Type.DATE
        if isinstance(node, exp.Column):
            return self.attribute(node, scope)
        if isinstance(node, exp.Neg):
            return self.expect(node.this, scope, depth, Type.NUMBER, "a minus sign")
        if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div):
            self.expect(node.this, scope, depth, Type.NUMBER, "arithmetic")
            self.expect(node.expression, scope, depth, Type.NUMBER, "arithmetic")
            return Type.NUMBER
        if isinstance(node, exp.EQ | exp.NEQ | exp.LT | exp.LTE | exp.GT | exp.GTE):
            left = check(node.this, scope, depth)
            right = check(node.expression, scope, depth)
            self.same(node, left, right, "a comparison")
            self.settle(node.this, right)
            self.settle(node.expression, left)
            if isinstance(node, exp.EQ | exp.NEQ):
                return Type.BOOLEAN
            if Type.BOOLEAN in (left, right):
                self.bad(node, "true and false cannot be ordered; compare them with = or <>")
            return Type.BOOLEAN
        if isinstance(node, exp.Between):
            parts = [node.this, node.args["low"], node.args["high"]]
            kinds = [check(n, scope, depth) for n in parts]
            for other in kinds[1:]:
                self.same(node, kinds[0], other, "BETWEEN")
            for part in parts:
                self.settle(part, _one(_unify(kinds)))
            return Type.BOOLEAN
        if isinstance(node, exp.And | exp.Or):
            self.expect(node.this, scope, depth, Type.BOOLEAN, node.key.upper())
            self.expect(node.expression, scope, depth, Type.BOOLEAN, node.key.upper())
            return Type.BOOLEAN
        if isinstance(node, exp.Not):
            self.expect(node.this, scope, depth, Type.BOOLEAN, "NOT")
            return Type.BOOLEAN
        if isinstance(node, exp.Is):
            check(node.this, scope, depth)
            if not isinstance(node.expression, exp.Null):
                self.bad(node, "IS is only used as IS NULL or IS NOT NULL")
            return Type.BOOLEAN
        if isinstance(node, exp.In):
            if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
                self.bad(node, "IN takes a list of values, not a query")
                return Type.BOOLEAN
            left = check(node.this, scope, depth)
            for item in node.expressions:
                literal = item.this if isinstance(item, exp.Neg) else item
                if not isinstance(literal, exp.Literal | exp.Boolean | exp.Null | exp.Cast):
                    self.bad(item, "an IN list holds only literal values")
                    continue
                self.same(item, left, check(item, scope, depth), "an IN list")
            return Type.BOOLEAN
        if isinstance(node, exp.Case):
            return self.case(node, scope, depth)
        if isinstance(node, exp.Coalesce | exp.Least | exp.Greatest):
            name = {exp.Coalesce: "COALESCE", exp.Least: "LEAST", exp.Greatest: "GREATEST"}[type(node)]
            arguments = [node.this, *node.expressions]
            kinds = [check(a, scope, depth) for a in arguments]
            found = _unify(kinds)
            if found is False:
                self.bad(node, f"the values of {name} must all be of one type")
                return None
            for argument in arguments:
                self.settle(argument, _one(found))
            if name != "COALESCE" and found not in (Type.NUMBER, Type.DATE, None):
                self.bad(node, f"{name} compares numbers or dates")
            return _one(found)
        if isinstance(node, exp.Abs):
            return self.expect(node.this, scope, depth, Type.NUMBER, "ABS")
        if isinstance(node, exp.Filter) or type(node) in AGGREGATES:
            return self.aggregate(node, scope, depth)
        self.refuse(node)
        return None

    def refuse(self, node: exp.Expr) -> None:
        if isinstance(node, exp.Subquery | exp.Select | exp.Exists | exp.Table | exp.Union):
            self.bad(node, "subqueries and tables are not part of the rule language")
        elif isinstance(node, exp.Func):
            name = node.sql_name() if not isinstance(node, exp.Anonymous) else str(node.this)
            self.bad(
                node,
                f"{name.upper()} is not an allowed function (allowed: COALESCE, LEAST, GREATEST, "
                "ABS, and COUNT, SUM, MIN, MAX over members)",
            )
        else:
            self.bad(node, f"{node.key.upper()} is not part of the rule language")

    def expect(self, node: exp.Expr, scope: Owner, depth: int, want: Type, what: str) -> Type:
        found = self.check(node, scope, depth)
        if found is not None and found is not want:
            self.bad(node, f"{what} needs a {want.value}, and this is a {found.value}")
        self.settle(node, want)
        return want

    def settle(self, node: exp.Expr, kind: Type | None) -> None:
        """Give a bare NULL the type its place expects, so that every engine (PostgreSQL
        will not guess) reads it the same way."""
        while isinstance(node, exp.Paren):
            node = node.this
        if kind is None or self.types.get(id(node)) is not None:
            return
        if isinstance(node, exp.Null):
            self.types[id(node)] = kind
        elif isinstance(node, exp.Coalesce | exp.Least | exp.Greatest):
            self.types[id(node)] = kind
            for argument in [node.this, *node.expressions]:
                self.settle(argument, kind)
        elif isinstance(node, exp.Case):
            self.types[id(node)] = kind
            for branch in node.args.get("ifs") or []:
                self.settle(branch.args["true"], kind)
            if node.args.get("default") is not None:
                self.settle(node.args["default"], kind)

    def same(self, node: exp.Expr, left: Type | None, right: Type | None, what: str) -> None:
        if left is not None and right is not None and left is not right:
            self.bad(node, f"{what} cannot compare a {left.value} with a {right.value}")

    def case(self, node: exp.Case, scope: Owner, depth: int) -> Type | None:
        subject = self.check(node.this, scope, depth) if node.this else None
        results: list[Type | None] = []
        for branch in node.args.get("ifs") or []:
            if node.this is not None:
                self.same(branch, subject, self.check(branch.this, scope, depth), "CASE … WHEN")
            else:
                self.expect(branch.this, scope, depth, Type.BOOLEAN, "WHEN")
            results.append(self.check(branch.args["true"], scope, depth))
        if node.args.get("default") is not None:
            results.append(self.check(node.args["default"], scope, depth))
        found = _unify(results)
        if found is False:
            self.bad(node, "every THEN and ELSE of a CASE must give the same type")
            return None
        for branch in node.args.get("ifs") or []:
            self.settle(branch.args["true"], _one(found))
        if node.args.get("default") is not None:
            self.settle(node.args["default"], _one(found))
        return _one(found)

    def attribute(self, node: exp.Column, scope: Owner) -> Type | None:
        parts = [p.name for p in node.parts]
        for part in parts:
            said = protected_category(part)
            if said:
                self.bad(node, firewall_reason(part, said, f"a name in {self.what}"))
                return None
        if len(parts) > 2 or any(isinstance(p, exp.Identifier) and p.quoted for p in node.parts):
            self.bad(node, "an attribute is written name or owner.name (household, person, vehicle)")
            return None
        owner_name, name = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
        if owner_name:
            try:
                owner = Owner(owner_name.lower())
            except ValueError:
                self.bad(node, f"{owner_name!r} is not household, person or vehicle")
                return None
        else:
            owner = scope
        found = self.catalogue.owned_by(owner, name)
        member = self.catalogue.owned_by(Owner.PERSON, name)
        if found is None and not owner_name and member is not None:
            found, owner = member, Owner.PERSON
        if found is None:
            other = self.catalogue.attributes.get(name)
            if other is None:
                self.bad(node, f"{name!r} is not a declared attribute{_suggest(name, self.catalogue)}")
            elif scope is Owner.PERSON and not owner_name:
                self.bad(
                    node, f"inside an aggregate over members only members' attributes are used, not {name!r}"
                )
            elif other.belongs_to is Owner.VEHICLE and self.per is not Owner.VEHICLE:
                self.bad(node, f"{name!r} belongs to a vehicle, and this programme is per household")
            else:
                self.bad(node, f"{name!r} belongs to a {other.belongs_to.value}, not a {owner.value}")
            return None
        if owner is Owner.PERSON and scope is not Owner.PERSON:
            self.bad(
                node,
                f"{name!r} belongs to each member: use it inside COUNT(*) FILTER (WHERE …), SUM, "
                "MIN or MAX over the household's members",
            )
            return None
        if scope is Owner.PERSON and owner is not Owner.PERSON:
            self.bad(
                node, f"inside an aggregate over members only members' attributes are used, not {name!r}"
            )
            return None
        if owner is Owner.VEHICLE and self.per is not Owner.VEHICLE:
            self.bad(node, f"{name!r} belongs to a vehicle, and this programme is per household")
            return None
        kind = _OF_ATTRIBUTE[found.type]
        if owner is not Owner.PERSON:
            if found.name == "members":
                key = "COUNT(*)"
                self.facts.setdefault(key, Fact(key, Type.NUMBER, None, "COUNT"))
            else:
                key = f"{owner.value}.{found.name}"
                self.facts.setdefault(key, Fact(key, kind, found))
            node.meta["fact"] = key
        node.meta["attribute"] = found.name
        node.meta["owner"] = owner.value
        return kind

    def aggregate(self, node: exp.Expr, scope: Owner, depth: int) -> Type | None:
        if scope is Owner.PERSON:
            self.bad(node, "aggregates cannot be nested")
            return None
        function = node.this if isinstance(node, exp.Filter) else node
        condition = node.expression.this if isinstance(node, exp.Filter) else None
        name = AGGREGATES.get(type(function))
        if name is None:
            self.refuse(function)
            return None
        argument: exp.Expr | None = function.this
        if isinstance(argument, exp.Star):
            if name != "COUNT":
                self.bad(node, f"{name}(*) means nothing; name what to add up")
                return None
            argument = None
        elif argument is None or isinstance(argument, exp.Distinct):
            self.bad(node, f"{name} takes one value (COUNT(*) counts members); DISTINCT is not supported")
            return None
        result = Type.NUMBER
        if argument is not None:
            kind = self.check(argument, Owner.PERSON, depth)
            if name == "SUM" and kind not in (Type.NUMBER, None):
                self.bad(argument, f"SUM adds numbers, and this is a {kind.value if kind else 'null'}")
            if name in ("MIN", "MAX") and kind is not None:
                result = kind
        if condition is not None:
            self.expect(condition, Owner.PERSON, depth, Type.BOOLEAN, "FILTER (WHERE …)")
        key = _canonical(node)
        self.facts.setdefault(key, Fact(key, result, None, name, argument, condition))
        node.meta["fact"] = key
        return result


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER = re.compile(r"^\d{1,15}(\.\d{1,6})?$")


def _canonical(node: exp.Expr) -> str:
    return node.sql(dialect="postgres", normalize=True, identify=False)


def _first_token(node: exp.Expr) -> str:
    text = node.sql()
    match = re.match(r"\s*([A-Za-z_][A-Za-z_0-9]*|'[^']*'|\S)", text)
    return match.group(1) if match else ""


def _unify(kinds: list[Type | None]) -> Type | bool | None:
    """The one type of ``kinds`` (None when all are NULL), or False when they disagree."""
    known = {k for k in kinds if k is not None}
    if len(known) > 1:
        return False
    return known.pop() if known else None


def _one(found: Type | bool | None) -> Type | None:
    return found if isinstance(found, Type) else None


def _suggest(name: str, catalogue: Catalogue) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(catalogue.attributes), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _parse(text: str, source: Source) -> exp.Expr:
    if len(text) > MAX_EXPRESSION:
        raise PolicyRejected(
            f"{source.file}: an expression is too long",
            [Problem(source.file, source.line, source.column, "", f"at most {MAX_EXPRESSION} characters")],
        )
    try:
        tree = sqlglot.parse_one(text, dialect="postgres")
    except ParseError as error:
        problems = []
        for found in error.errors or [{}]:
            line = int(found.get("line") or 1)
            column = int(found.get("col") or 1)
            token = str(found.get("highlight") or "")
            offset = _offset(text, line, column) - len(token)
            line, column = source.at(text, max(offset, 0))
            reason = str(found.get("description") or error).split(". Line")[0]
            problems.append(Problem(source.file, line, column, token, f"cannot parse: {reason}"))
        raise PolicyRejected(f"{source.file}: an expression does not parse", problems) from None
    except TokenError as error:
        raise PolicyRejected(
            f"{source.file}: an expression does not parse",
            [Problem(source.file, source.line, source.column, "", f"cannot read: {error}")],
        ) from None
    if tree is None:
        raise PolicyRejected(
            f"{source.file}: an expression is empty",
            [Problem(source.file, source.line, source.column, "", "the expression is empty")],
        )
    return tree


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    return sum(len(x) + 1 for x in lines[: line - 1]) + column


def check_expression(
    text: str,
    source: Source,
    catalogue: Catalogue,
    per: Owner,
    want: Type | None,
    what: str,
) -> Checked:
    """Parse and check ``text`` as a rule expression for a programme ``per`` household or
    vehicle, expecting a value of type ``want``; ``what`` names it in errors ("the
    eligibility rule"). Raises ``PolicyRejected`` with every problem found."""
    checker = _Checker(text, source, catalogue, per, what)
    if not text.strip():
        raise PolicyRejected(
            f"{source.file}: {what} is empty",
            [Problem(source.file, source.line, source.column, "", f"{what} is empty")],
        )
    tree = _parse(text, source)
    found = checker.check(tree, per)
    checker.settle(tree, want)
    if want is not None and found is not None and found is not want and not checker.problems:
        checker.bad(tree, f"{what} must give a {want.value}, and this gives a {found.value}")
    if checker.problems:
        raise PolicyRejected(f"{source.file}: {what} does not check", checker.problems)
    result = Checked(text, tree, want or found or Type.TEXT, checker.facts)
    for node in tree.walk():
        kind = checker.types.get(id(node))
        if kind is not None:
            node.meta["type"] = kind.value
    return result


def walk_facts(tree: exp.Expr) -> Iterator[str]:
    """The fact keys ``tree`` reads, in order of appearance."""
    for node in tree.walk():
        key = node.meta.get("fact") if node.meta else None
        if key:
            yield str(key)
