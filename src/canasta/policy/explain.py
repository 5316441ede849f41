"""Evaluate a policy over one beneficiary's facts, and say why, in English or Spanish.

``evaluate`` follows the semantics the SQL compiler gives every engine (see
``policy.compile``): three-valued logic with NULL, real division that gives NULL on zero,
LEAST/GREATEST ignoring NULLs, and the same rounding and cap. The facts are those the cycle
run stored with the entitlement, so an explanation shows what was used.

This module does no I/O.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlglot import exp

from canasta.domain.quantity import MAX_MILLI, format_milli
from canasta.policy.document import Policy, Rounding
from canasta.policy.language import AGGREGATES, Catalogue, Fact, Type

Value = Any  # int | float | str | bool | date | None

LANGUAGES = ("en", "es")

#: What every explanation ends with: the decision can be taken to a person.
APPEAL = {
    "en": "If you think something here is wrong, you can appeal: a person will review your case.",
    "es": "Si cree que algo está mal, puede apelar: una persona revisará su caso.",
}

_BUILT_IN_LABELS = {
    "region": ("region", "región"),
    "municipality": ("municipality", "municipio"),
    "members": ("number of household members", "número de miembros del hogar"),
    "age": ("age", "edad"),
    "sex": ("sex", "sexo"),
    "kind": ("kind of vehicle", "tipo de vehículo"),
}
_WORDS = {
    "en": {
        "=": "is",
        "<>": "is not",
        "<": "is less than",
        "<=": "is at most",
        ">": "is more than",
        ">=": "is at least",
        "in": "is one of",
        "between": "is between",
        "and": "and",
        "or": "or",
        "not": "it is not true that",
        "null": "is not known",
        "count": "number of members",
        "count_where": "number of members whose",
        "count_with": "number of members with",
        "sum": "total {x} of the members",
        "sum_where": "total {x} of the members whose",
        "min": "lowest {x} among the members",
        "max": "highest {x} among the members",
        "if": "if",
        "then": "then",
        "else": "otherwise",
        "first_known": "the first known of",
        "least": "the smaller of",
        "greatest": "the larger of",
        "abs": "the size of",
        "yes": "yes",
        "no": "no",
        "unknown": "not known",
        "true": "yes",
        "false": "no",
        "household_of": "the household's",
    },
    "es": {
        "=": "es",
        "<>": "no es",
        "<": "es menor que",
        "<=": "es como máximo",
        ">": "es mayor que",
        ">=": "es al menos",
        "in": "es uno de",
        "between": "está entre",
        "and": "y",
        "or": "o",
        "not": "no es cierto que",
        "null": "no se conoce",
        "count": "número de miembros",
        "count_where": "número de miembros para los que",
        "count_with": "número de miembros con",
        "sum": "total de {x} de los miembros",
        "sum_where": "total de {x} de los miembros para los que",
        "min": "menor {x} entre los miembros",
        "max": "mayor {x} entre los miembros",
        "if": "si",
        "then": "entonces",
        "else": "si no",
        "first_known": "el primer valor conocido de",
        "least": "el menor de",
        "greatest": "el mayor de",
        "abs": "el valor absoluto de",
        "yes": "sí",
        "no": "no",
        "unknown": "no se sabe",
        "true": "sí",
        "false": "no",
        "household_of": "del hogar:",
    },
}


def load_facts(policy: Policy, stored: Sequence[Value]) -> dict[str, Value]:
    """Facts as read back from JSON, keyed and typed."""
    values: dict[str, Value] = {}
    for fact, raw in zip(policy.facts, stored, strict=True):
        values[fact.key] = _typed(fact, raw)
    return values


def _typed(fact: Fact, raw: Value) -> Value:
    if raw is None:
        return None
    if fact.type is Type.BOOLEAN:
        return bool(raw)
    if fact.type is Type.DATE and isinstance(raw, str):
        return date.fromisoformat(raw[:10])
    if fact.type is Type.NUMBER and isinstance(raw, str):
        return float(raw) if "." in raw else int(raw)
    return raw


def _and(left: Value, right: Value) -> Value:
    if left is False or right is False:
        return False
    if left is None or right is None:
        return None
    return True


def _or(left: Value, right: Value) -> Value:
    if left is True or right is True:
        return True
    if left is None or right is None:
        return None
    return False


_COMPARE: dict[type[exp.Expr], Callable[[Any, Any], bool]] = {
    exp.EQ: operator.eq,
    exp.NEQ: operator.ne,
    exp.LT: operator.lt,
    exp.LTE: operator.le,
    exp.GT: operator.gt,
    exp.GTE: operator.ge,
}
_ARITHMETIC: dict[type[exp.Expr], Callable[[Any, Any], Any]] = {
    exp.Add: operator.add,
    exp.Sub: operator.sub,
    exp.Mul: operator.mul,
}


def _truth(value: Value) -> Value:
    return None if value is None else bool(value)


def evaluate(node: exp.Expr, facts: Mapping[str, Value]) -> Value:
    """The value of a checked expression over one beneficiary's facts (or, inside an
    aggregate, over one member's: ``person.age``, ``person.sex``, …)."""
    key = node.meta.get("fact") if node.meta else None
    if key is not None:
        return facts[str(key)]
    if isinstance(node, exp.Paren):
        return evaluate(node.this, facts)
    if isinstance(node, exp.Column):
        # A member's attribute inside an aggregate: its facts are keyed person.<name>.
        return facts[f"{node.meta['owner']}.{node.meta['attribute']}"]
    if isinstance(node, exp.Literal):
        if node.is_string:
            return str(node.this)
        return float(node.this) if "." in node.this else int(node.this)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Cast):
        return date.fromisoformat(node.this.this)
    if isinstance(node, exp.Neg):
        value = evaluate(node.this, facts)
        return None if value is None else -value
    if isinstance(node, exp.Div):
        left, right = evaluate(node.this, facts), evaluate(node.expression, facts)
        if left is None or right is None or right == 0:
            return None
        return float(left) / right
    arithmetic = _ARITHMETIC.get(type(node))
    if arithmetic is not None:
        left, right = evaluate(node.this, facts), evaluate(node.expression, facts)
        return None if left is None or right is None else arithmetic(left, right)
    compare = _COMPARE.get(type(node))
    if compare is not None:
        left, right = evaluate(node.this, facts), evaluate(node.expression, facts)
        return None if left is None or right is None else compare(_plain(left), _plain(right))
    if isinstance(node, exp.And):
        return _and(_truth(evaluate(node.this, facts)), _truth(evaluate(node.expression, facts)))
    if isinstance(node, exp.Or):
        return _or(_truth(evaluate(node.this, facts)), _truth(evaluate(node.expression, facts)))
    if isinstance(node, exp.Not):
        value = _truth(evaluate(node.this, facts))
        return None if value is None else not value
    if isinstance(node, exp.Is):
        return evaluate(node.this, facts) is None
    if isinstance(node, exp.Between):
        value = evaluate(node.this, facts)
        low, high = evaluate(node.args["low"], facts), evaluate(node.args["high"], facts)
        above = None if value is None or low is None else _plain(value) >= _plain(low)
        below = None if value is None or high is None else _plain(value) <= _plain(high)
        return _and(above, below)
    if isinstance(node, exp.In):
        value = evaluate(node.this, facts)
        if value is None:
            return None
        items = [evaluate(i, facts) for i in node.expressions]
        if any(i is not None and _plain(i) == _plain(value) for i in items):
            return True
        return None if any(i is None for i in items) else False
    if isinstance(node, exp.Case):
        subject = evaluate(node.this, facts) if node.this is not None else None
        for branch in node.args.get("ifs") or []:
            test = evaluate(branch.this, facts)
            if node.this is not None:
                hit = subject is not None and test is not None and _plain(subject) == _plain(test)
            else:
                hit = _truth(test) is True
            if hit:
                return evaluate(branch.args["true"], facts)
        default = node.args.get("default")
        return evaluate(default, facts) if default is not None else None
    if isinstance(node, exp.Coalesce):
        for argument in [node.this, *node.expressions]:
            value = evaluate(argument, facts)
            if value is not None:
                return value
        return None
    if isinstance(node, exp.Least | exp.Greatest):
        known = [v for v in (evaluate(a, facts) for a in [node.this, *node.expressions]) if v is not None]
        if not known:
            return None
        return min(known) if isinstance(node, exp.Least) else max(known)
    if isinstance(node, exp.Abs):
        value = evaluate(node.this, facts)
        return None if value is None else abs(value)
    raise AssertionError(f"unchecked node {node.key}")


def aggregate(fact: Fact, members: Sequence[Mapping[str, Value]]) -> Value:
    """An aggregate fact computed in Python over the members' values, as the SQL does."""
    chosen = [m for m in members if fact.condition is None or _truth(evaluate(fact.condition, m)) is True]
    if fact.function == "COUNT":
        if fact.argument is None:
            return len(chosen)
        return sum(1 for m in chosen if evaluate(fact.argument, m) is not None)
    assert fact.argument is not None
    known = [v for v in (evaluate(fact.argument, m) for m in chosen) if v is not None]
    if fact.function == "SUM":
        return sum(known) if known else 0
    if not known:
        return None
    return min(known) if fact.function == "MIN" else max(known)


def _plain(value: Value) -> Value:
    """Booleans compare as 1 and 0 (as SQLite stores them)."""
    return int(value) if isinstance(value, bool) else value


def quantity(policy: Policy, raw: Value) -> int | None:
    """The quota's raw value in thousandths after rounding and cap, as the SQL computes it;
    None when the quota is not known."""
    if raw is None:
        return None
    scaled = float(raw) * 1000 + 0.5
    if math.isnan(scaled):
        return None
    cap = min(policy.cap or MAX_MILLI, MAX_MILLI)
    if math.isinf(scaled):
        return cap if scaled > 0 else 0
    milli = float(math.floor(scaled))
    step = policy.step
    if step > 1:
        if policy.rounding is Rounding.DOWN:
            milli = math.floor(milli / step) * step
        elif policy.rounding is Rounding.UP:
            milli = math.floor((milli + step - 1) / step) * step
        else:
            milli = math.floor((milli + step // 2) / step) * step
    return int(min(milli, cap))


@dataclass(frozen=True, slots=True)
class Clause:
    """One clause of the eligibility rule: what it says, the values it used, its result."""

    text: str
    used: list[tuple[str, str]]
    result: str
    holds: bool | None


@dataclass(slots=True)
class Explanation:
    language: str
    programme: str
    policy_version: int
    policy_sha256: str
    eligible: bool | None
    combine: str
    clauses: list[Clause]
    quota_text: str
    quota_used: list[tuple[str, str]]
    quota_raw: str
    #: In thousandths: what the beneficiary is entitled to (0 when not eligible).
    quantity: int
    unit: str
    adjustments: list[str] = field(default_factory=list)
    summary: str = ""


class _Words:
    def __init__(self, language: str, catalogue: Catalogue, unit: str) -> None:
        self.language = language if language in LANGUAGES else "en"
        self.w = _WORDS[self.language]
        self.catalogue = catalogue
        self.unit = unit

    def label(self, name: str, owner: str = "") -> str:
        index = 1 if self.language == "es" else 0
        if name in _BUILT_IN_LABELS:
            return _BUILT_IN_LABELS[name][index]
        attribute = self.catalogue.attributes.get(name)
        return attribute.label(self.language) if attribute else name.replace("_", " ")

    def value(self, value: Value, unit: str = "") -> str:
        if value is None:
            return self.w["unknown"]
        if isinstance(value, bool):
            return self.w["true"] if value else self.w["false"]
        if isinstance(value, float):
            text = f"{value:.3f}".rstrip("0").rstrip(".")
        elif isinstance(value, date):
            text = value.isoformat()
        else:
            text = str(value)
        return f"{text} {unit}".strip()

    def say(self, node: exp.Expr) -> str:
        w = self.w
        say = self.say
        if isinstance(node, exp.Paren):
            return f"({say(node.this)})"
        if isinstance(node, exp.Filter) or type(node) in AGGREGATES:
            function = node.this if isinstance(node, exp.Filter) else node
            condition = node.expression.this if isinstance(node, exp.Filter) else None
            name = AGGREGATES[type(function)]
            argument = function.this
            if (
                name == "COUNT"
                and isinstance(condition, exp.Column)
                and condition.meta.get("type") == "boolean"
            ):
                return f"{w['count_with']} {say(condition)}"
            if name == "COUNT":
                head = w["count_where"] if condition is not None else w["count"]
            else:
                what = say(argument)
                head = w[name.lower() + ("_where" if condition is not None else "")].format(x=what)
            return f"{head} {say(condition)}" if condition is not None else head
        if isinstance(node, exp.Column):
            name = str(node.meta.get("attribute", node.name))
            label = self.label(name)
            if node.meta.get("owner") == "household" and len(node.parts) == 2:
                return f"{w['household_of']} {label}"
            return label
        if isinstance(node, exp.Literal):
            return f"'{node.this}'" if node.is_string else str(node.this)
        if isinstance(node, exp.Boolean):
            return w["true"] if node.this else w["false"]
        if isinstance(node, exp.Null):
            return w["unknown"]
        if isinstance(node, exp.Cast):
            return str(node.this.this)
        if isinstance(node, exp.Neg):
            return f"-{say(node.this)}"
        symbols: dict[type[exp.Expr], str] = {exp.Add: "+", exp.Sub: "-", exp.Mul: "×", exp.Div: "÷"}
        if type(node) in symbols:
            return f"{say(node.this)} {symbols[type(node)]} {say(node.expression)}"
        words: dict[type[exp.Expr], str] = {
            exp.EQ: "=",
            exp.NEQ: "<>",
            exp.LT: "<",
            exp.LTE: "<=",
            exp.GT: ">",
            exp.GTE: ">=",
        }
        if type(node) in words:
            return f"{say(node.this)} {w[words[type(node)]]} {say(node.expression)}"
        if isinstance(node, exp.And | exp.Or):
            return f"{say(node.this)} {w[node.key]} {say(node.expression)}"
        if isinstance(node, exp.Not):
            inner = node.this
            if isinstance(inner, exp.Is):
                return f"{say(inner.this)} {'is known' if self.language == 'en' else 'se conoce'}"
            if isinstance(inner, exp.In):
                return f"{say(inner.this)} {w['<>']} {self._list(inner.expressions)}"
            return f"{w['not']} {say(inner)}"
        if isinstance(node, exp.Is):
            return f"{say(node.this)} {w['null']}"
        if isinstance(node, exp.Between):
            joiner = "and" if self.language == "en" else "y"
            return (
                f"{say(node.this)} {w['between']} {say(node.args['low'])} {joiner} {say(node.args['high'])}"
            )
        if isinstance(node, exp.In):
            return f"{say(node.this)} {w['in']} {self._list(node.expressions)}"
        if isinstance(node, exp.Case):
            parts = []
            for branch in node.args.get("ifs") or []:
                test = (
                    f"{say(node.this)} {w['=']} {say(branch.this)}"
                    if node.this is not None
                    else say(branch.this)
                )
                parts.append(f"{w['if']} {test}, {say(branch.args['true'])}")
            if node.args.get("default") is not None:
                parts.append(f"{w['else']} {say(node.args['default'])}")
            return "; ".join(parts)
        if isinstance(node, exp.Coalesce | exp.Least | exp.Greatest | exp.Abs):
            named: dict[type[exp.Expr], str] = {
                exp.Coalesce: "first_known",
                exp.Least: "least",
                exp.Greatest: "greatest",
                exp.Abs: "abs",
            }
            arguments = [node.this, *node.expressions] if not isinstance(node, exp.Abs) else [node.this]
            return f"{w[named[type(node)]]} {self._list(arguments)}"
        return node.sql()

    def _list(self, items: Sequence[exp.Expr]) -> str:
        said = [self.say(i) for i in items]
        if len(said) == 1:
            return said[0]
        joiner = " or " if self.language == "en" else " o "
        return ", ".join(said[:-1]) + joiner + said[-1]

    def used(self, node: exp.Expr, facts: Mapping[str, Value]) -> list[tuple[str, str]]:
        seen: dict[str, tuple[str, str]] = {}
        for child in node.walk(bfs=False):
            key = child.meta.get("fact") if child.meta else None
            if key is None or key in seen:
                continue
            name = str(child.meta.get("attribute", ""))
            unit = ""
            attribute = self.catalogue.attributes.get(name)
            if attribute is not None and attribute.unit and not isinstance(child, exp.Filter):
                unit = attribute.unit
            seen[str(key)] = (self.say(child), self.value(facts[str(key)], unit))
        return list(seen.values())


def _clauses(node: exp.Expr, kind: type[exp.Expr]) -> list[exp.Expr]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, kind):
        return _clauses(node.this, kind) + _clauses(node.expression, kind)
    return [node]


def explain(
    policy: Policy,
    catalogue: Catalogue,
    facts: Mapping[str, Value],
    unit: str,
    language: str = "en",
) -> Explanation:
    """Why one beneficiary gets what it gets under ``policy``, clause by clause."""
    words = _Words(language, catalogue, unit)
    w = words.w
    tree = policy.eligible.tree
    while isinstance(tree, exp.Paren):
        tree = tree.this
    combine = "or" if isinstance(tree, exp.Or) else "and"
    parts = _clauses(tree, exp.Or if combine == "or" else exp.And)
    clauses = []
    for part in parts:
        holds = _truth(evaluate(part, facts))
        result = w["unknown"] if holds is None else (w["yes"] if holds else w["no"])
        clauses.append(Clause(words.say(part), words.used(part, facts), result, holds))
    eligible = _truth(evaluate(policy.eligible.tree, facts))
    raw = evaluate(policy.quota.tree, facts)
    granted = quantity(policy, raw) if eligible is True else None
    adjustments = []
    if raw is not None and eligible is True:
        exact = round(float(raw) * 1000)
        if policy.step > 1 and granted is not None and granted != exact:
            step = format_milli(policy.step)
            adjustments.append(
                f"rounded {policy.rounding.value} to a multiple of {step} {unit}"
                if language != "es"
                else f"redondeado ({_ROUNDING_ES[policy.rounding]}) a un múltiplo de {step} {unit}"
            )
        if policy.cap is not None and granted == policy.cap and exact > policy.cap:
            cap = format_milli(policy.cap)
            adjustments.append(
                f"capped at {cap} {unit}" if language != "es" else f"limitado al tope de {cap} {unit}"
            )
    final = granted if granted is not None and granted > 0 else 0
    summary = _summary(language, eligible, final, unit, policy)
    return Explanation(
        language=words.language,
        programme=policy.programme,
        policy_version=policy.version,
        policy_sha256=policy.sha256,
        eligible=eligible,
        combine=combine,
        clauses=clauses,
        quota_text=words.say(policy.quota.tree),
        quota_used=words.used(policy.quota.tree, facts),
        quota_raw=words.value(raw),
        quantity=final,
        unit=unit,
        adjustments=adjustments,
        summary=summary,
    )


_ROUNDING_ES = {Rounding.DOWN: "hacia abajo", Rounding.UP: "hacia arriba", Rounding.NEAREST: "al más cercano"}


def _summary(language: str, eligible: bool | None, final: int, unit: str, policy: Policy) -> str:
    amount = f"{format_milli(final)} {unit}"
    if language == "es":
        if eligible is not True:
            why = "no cumple" if eligible is False else "no se conocen todos los datos de"
            return f"No le corresponde {policy.programme} en este ciclo: {why} la regla de elegibilidad."
        if final == 0:
            return f"Cumple la regla, pero la cuota calculada es cero: no le corresponde {policy.programme}."
        return f"Le corresponden {amount} de {policy.programme} en este ciclo."
    if eligible is not True:
        why = (
            "the eligibility rule is not met"
            if eligible is False
            else "some facts the rule needs are unknown"
        )
        return f"Not entitled to {policy.programme} this cycle: {why}."
    if final == 0:
        return f"Eligible, but the quota works out at zero, so nothing is granted in {policy.programme}."
    return f"Entitled to {amount} of {policy.programme} this cycle."
