"""Compile a checked policy to one set-based SQL statement per engine.

The statement computes, for every household (or vehicle) in one pass, whether it is
eligible, its quantity in thousandths after rounding and cap, and the facts the rule read (a
JSON array in the order of ``Policy.facts``). Aggregates over members become one grouped
scan of ``persons`` joined back by household.

The SQL is written here rather than by sqlglot's generator because the three engines
disagree on what the same text means (integer division, ``CAST`` to an integer rounding or
truncating, ``LEAST`` with a NULL, numeric literals being exact or binary), and the rule
must mean the same thing everywhere, and the same as ``explain.evaluate`` in Python:

* ``/`` is always division of real numbers, and dividing by zero gives NULL;
* decimal literals and decimal attributes are binary doubles on every engine;
* ``LEAST`` and ``GREATEST`` ignore NULLs (NULL only when all are);
* COUNT and SUM over no members are 0; MIN and MAX over none are NULL;
* a quota is rounded to the nearest thousandth, then to the policy's step, then capped;
  a NULL or non-positive quota, or an eligibility that is not TRUE, grants nothing.

This module does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from sqlglot import exp

from canasta.domain.quantity import MAX_MILLI
from canasta.policy.document import Policy, Rounding
from canasta.policy.language import AGGREGATES, Checked, Fact
from canasta.registry.schema import Owner


class Dialect(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"
    DUCKDB = "duckdb"


#: Built-in attributes that are columns of the core tables.
_CORE_COLUMNS = {"region", "municipality", "sex", "kind"}


def column_name(attribute: str) -> str:
    """The column that stores an attribute's values."""
    return attribute if attribute in _CORE_COLUMNS else f"attr_{attribute}"


@dataclass(frozen=True, slots=True)
class _Context:
    dialect: Dialect
    starts_on: date
    facts: dict[str, int]
    per: Owner


def _double(ctx: _Context) -> str:
    return {Dialect.SQLITE: "REAL", Dialect.POSTGRESQL: "DOUBLE PRECISION", Dialect.DUCKDB: "DOUBLE"}[
        ctx.dialect
    ]


def _int_div(ctx: _Context, left: str, right: str) -> str:
    """Division of whole numbers, truncating (as ``/`` does on SQLite and PostgreSQL)."""
    return f"({left} // {right})" if ctx.dialect is Dialect.DUCKDB else f"({left} / {right})"


def _floor(ctx: _Context, value: str) -> str:
    """FLOOR, where it matters: for a positive value. SQLite has no FLOOR of its own (the
    one SQLAlchemy installs is a Python function, slow and unable to take NULL), and its
    CAST to INTEGER truncates, which is FLOOR for every value that can still grant
    something; a value at or below zero grants nothing either way. Whole numbers stay
    whole, so SQLite's ``/`` by the step then truncates as FLOOR would."""
    if ctx.dialect is Dialect.SQLITE:
        return f"CAST({value} AS INTEGER)"
    return f"FLOOR({value})"


def _string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _age(ctx: _Context) -> str:
    start = int(ctx.starts_on.strftime("%Y%m%d"))
    if ctx.dialect is Dialect.SQLITE:
        born = "CAST(REPLACE(p.date_of_birth, '-', '') AS INTEGER)"
    elif ctx.dialect is Dialect.POSTGRESQL:
        born = "CAST(to_char(p.date_of_birth, 'YYYYMMDD') AS INTEGER)"
    else:
        born = "(year(p.date_of_birth) * 10000 + month(p.date_of_birth) * 100 + day(p.date_of_birth))"
    return _int_div(ctx, f"({start} - {born})", "10000")


def _born_before(ctx: _Context, years: int) -> str | None:
    """The date ``years`` whole years before the cycle starts, as a literal (29 February
    becomes the 28th in a year without it); None when there is no such year."""
    start = ctx.starts_on
    if years < 0 or start.year - years < 1:
        return None
    try:
        day = start.replace(year=start.year - years)
    except ValueError:
        day = start.replace(year=start.year - years, day=28)
    return _string(day.isoformat()) if ctx.dialect is Dialect.SQLITE else f"DATE '{day.isoformat()}'"


_MIRROR: dict[type[exp.Expr], type[exp.Expr]] = {
    exp.LT: exp.GT,
    exp.GT: exp.LT,
    exp.LTE: exp.GTE,
    exp.GTE: exp.LTE,
    exp.EQ: exp.EQ,
    exp.NEQ: exp.NEQ,
}


def _whole(node: exp.Expr) -> int | None:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    return None


def _is_age(node: exp.Expr) -> bool:
    while isinstance(node, exp.Paren):
        node = node.this
    return isinstance(node, exp.Column) and node.meta.get("attribute") == "age"


def _age_compared(node: exp.Expr, ctx: _Context) -> str | None:
    """``age`` compared with a whole number, as a comparison of the date of birth with a
    constant date: the same truth (age is whole years, ``(start - born) / 10000`` on
    YYYYMMDD numbers) without computing an age for every member. None when it does not
    apply; the caller then computes the age."""
    if isinstance(node, exp.Between) and _is_age(node.this):
        low, high = _whole(node.args["low"]), _whole(node.args["high"])
        if low is None or high is None or low < 1:
            return None
        oldest, youngest = _born_before(ctx, low), _born_before(ctx, high + 1)
        if oldest is None or youngest is None:
            return None
        return f"(p.date_of_birth <= {oldest} AND p.date_of_birth > {youngest})"
    kind = type(node)
    if kind not in _MIRROR:
        return None
    left, right = node.this, node.expression
    if _is_age(right) and not _is_age(left):
        left, right, kind = right, left, _MIRROR[kind]
    number = _whole(right)
    if not _is_age(left) or number is None:
        return None
    # age < n is "born after the date n years before the start" (n >= 1).
    if kind in (exp.LTE, exp.GT):
        number += 1  # age <= n is age < n + 1; age > n is age >= n + 1
    if number < 1:
        return None
    before, after = _born_before(ctx, number), _born_before(ctx, number + 1)
    if before is None or after is None:
        return None
    if kind in (exp.LT, exp.LTE):
        return f"(p.date_of_birth > {before})"
    if kind in (exp.GT, exp.GTE):
        return f"(p.date_of_birth <= {before})"
    within = f"(p.date_of_birth <= {before} AND p.date_of_birth > {after})"
    return within if kind is exp.EQ else f"(NOT {within})"


def _sql(node: exp.Expr, ctx: _Context, person: bool = False) -> str:
    """SQL for a checked node; ``person`` inside an aggregate over members."""
    if person:
        dated = _age_compared(node, ctx)
        if dated is not None:
            return dated
    fact = node.meta.get("fact") if node.meta else None
    if fact is not None and not person:
        index = ctx.facts[str(fact)]
        if _is_aggregate(node):
            counted = isinstance(node, exp.Column) or _function(node) in ("COUNT", "SUM")
            return f"COALESCE(m.f{index}, 0)" if counted else f"m.f{index}"
        alias = "v" if node.meta["owner"] == "vehicle" else "h"
        return f"{alias}.{column_name(str(node.meta['attribute']))}"

    def recurse(child: exp.Expr) -> str:
        return _sql(child, ctx, person)

    if isinstance(node, exp.Paren):
        return f"({recurse(node.this)})"
    if isinstance(node, exp.Column):
        name = str(node.meta["attribute"])
        return _age(ctx) if name == "age" else f"p.{column_name(name)}"
    if isinstance(node, exp.Literal):
        if node.is_string:
            return _string(node.this)
        if "." in node.this and ctx.dialect is not Dialect.SQLITE:
            return f"CAST({node.this} AS {_double(ctx)})"
        return str(node.this)
    if isinstance(node, exp.Boolean):
        truth = bool(node.this)
        if ctx.dialect is Dialect.SQLITE:
            return "1" if truth else "0"
        return "TRUE" if truth else "FALSE"
    if isinstance(node, exp.Null):
        kind = node.meta.get("type") if node.meta else None
        if kind is None or ctx.dialect is Dialect.SQLITE:
            return "NULL"
        sql_type = {"number": _double(ctx), "boolean": "BOOLEAN", "text": "VARCHAR", "date": "DATE"}[
            str(kind)
        ]
        return f"CAST(NULL AS {sql_type})"
    if isinstance(node, exp.Cast):
        value = _string(node.this.this)
        return value if ctx.dialect is Dialect.SQLITE else f"CAST({value} AS DATE)"
    if isinstance(node, exp.Neg):
        return f"(-{recurse(node.this)})"
    if isinstance(node, exp.Div):
        return f"(CAST({recurse(node.this)} AS {_double(ctx)}) / NULLIF({recurse(node.expression)}, 0))"
    binary: dict[type[exp.Expr], str] = {
        exp.Add: "+",
        exp.Sub: "-",
        exp.Mul: "*",
        exp.EQ: "=",
        exp.NEQ: "<>",
        exp.LT: "<",
        exp.LTE: "<=",
        exp.GT: ">",
        exp.GTE: ">=",
        exp.And: "AND",
        exp.Or: "OR",
    }
    symbol = binary.get(type(node))
    if symbol is not None:
        return f"({recurse(node.this)} {symbol} {recurse(node.expression)})"
    if isinstance(node, exp.Not):
        return f"(NOT {recurse(node.this)})"
    if isinstance(node, exp.Is):
        return f"({recurse(node.this)} IS NULL)"
    if isinstance(node, exp.Between):
        return f"({recurse(node.this)} BETWEEN {recurse(node.args['low'])} AND {recurse(node.args['high'])})"
    if isinstance(node, exp.In):
        items = ", ".join(recurse(i) for i in node.expressions)
        return f"({recurse(node.this)} IN ({items}))"
    if isinstance(node, exp.Case):
        parts = ["CASE"]
        if node.this is not None:
            parts.append(recurse(node.this))
        for branch in node.args.get("ifs") or []:
            parts.append(f"WHEN {recurse(branch.this)} THEN {recurse(branch.args['true'])}")
        if node.args.get("default") is not None:
            parts.append(f"ELSE {recurse(node.args['default'])}")
        parts.append("END")
        return "(" + " ".join(parts) + ")"
    if isinstance(node, exp.Coalesce):
        return f"COALESCE({', '.join(recurse(a) for a in [node.this, *node.expressions])})"
    if isinstance(node, exp.Least | exp.Greatest):
        values = [recurse(a) for a in [node.this, *node.expressions]]
        # Every value is replaced by the first non-NULL one when NULL, so NULLs are ignored.
        filled = [f"COALESCE({', '.join([v, *values[:i], *values[i + 1 :]])})" for i, v in enumerate(values)]
        if ctx.dialect is Dialect.SQLITE:
            name = "MIN" if isinstance(node, exp.Least) else "MAX"
            if len(filled) == 1:
                return filled[0]
        else:
            name = "LEAST" if isinstance(node, exp.Least) else "GREATEST"
        return f"{name}({', '.join(filled)})"
    if isinstance(node, exp.Abs):
        return f"ABS({recurse(node.this)})"
    raise AssertionError(f"unchecked node {node.key}")  # the checker refuses everything else


def _is_aggregate(node: exp.Expr) -> bool:
    return (
        isinstance(node, exp.Filter)
        or _function(node) != ""
        or (isinstance(node, exp.Column) and node.meta.get("attribute") == "members")
    )


def _function(node: exp.Expr) -> str:
    target = node.this if isinstance(node, exp.Filter) else node
    return AGGREGATES.get(type(target), "")


def _aggregate_sql(fact: Fact, ctx: _Context) -> str:
    # FILTER (WHERE …) is native on all three engines (SQLite since 3.30) and cheaper than
    # the CASE inside the aggregate it replaces.
    where = f" FILTER (WHERE {_sql(fact.condition, ctx, person=True)})" if fact.condition is not None else ""
    if fact.function == "COUNT":
        if fact.argument is None:
            return f"COUNT(*){where}"
        return f"COUNT({_sql(fact.argument, ctx, person=True)}){where}"
    assert fact.argument is not None
    return f"{fact.function}({_sql(fact.argument, ctx, person=True)}){where}"


def _facts_json(facts: list[Fact], ctx: _Context) -> str:
    values = [_fact_sql(f, ctx) for f in facts]
    if ctx.dialect is Dialect.POSTGRESQL:
        return f"CAST(json_build_array({', '.join(values)}) AS TEXT)" if values else "'[]'"
    if ctx.dialect is Dialect.DUCKDB:
        return f"CAST(json_array({', '.join(values)}) AS VARCHAR)" if values else "'[]'"
    return f"json_array({', '.join(values)})"


def _quantity(policy: Policy, quota: str, ctx: _Context) -> str:
    """The quota in thousandths: nearest thousandth, then the step, then the cap. The
    arithmetic is on doubles (exact for whole numbers below 2**53) so that no engine
    overflows or rounds differently before the cap; the capped whole number is then cast."""
    whole = "INTEGER" if ctx.dialect is Dialect.SQLITE else "BIGINT"
    milli = _floor(ctx, f"CAST({quota} AS {_double(ctx)}) * 1000 + 0.5")
    step = policy.step
    if step > 1:
        if policy.rounding is Rounding.DOWN:
            milli = _floor(ctx, f"{milli} / {step}") + f" * {step}"
        elif policy.rounding is Rounding.UP:
            milli = _floor(ctx, f"({milli} + {step - 1}) / {step}") + f" * {step}"
        else:
            milli = _floor(ctx, f"({milli} + {step // 2}) / {step}") + f" * {step}"
    cap = min(policy.cap or MAX_MILLI, MAX_MILLI)
    if ctx.dialect is Dialect.SQLITE:
        # SQLite's two-argument MIN is NULL when either is: an unknown quota stays unknown.
        return f"CAST(MIN({milli}, {cap}) AS {whole})"
    # LEAST would ignore a NULL and grant the cap to an unknown quota: a CASE it is.
    return f"CAST(CASE WHEN {milli} > {cap} THEN {cap} ELSE {milli} END AS {whole})"


def _from(
    facts: list[Fact], per: Owner, ctx: _Context, only: int | None = None, households: bool = False
) -> tuple[str, str, str]:
    """The FROM clause that provides ``facts`` for each household or vehicle, and the
    expressions of its beneficiary id and household id."""
    aggregates = [(ctx.facts[f.key], f) for f in facts if f.attribute is None]
    vehicle = per is Owner.VEHICLE
    household_used = households or any(
        f.attribute is not None and f.attribute.belongs_to is Owner.HOUSEHOLD for f in facts
    )
    if vehicle:
        source = "vehicles v"
        if household_used:
            source += " JOIN households h ON h.id = v.household_id"
        ids = "v.id", "v.household_id"
    else:
        source = "households h"
        ids = "h.id", "h.id"
    if aggregates:
        columns = ", ".join(f"{_aggregate_sql(f, ctx)} AS f{i}" for i, f in aggregates)
        # A registration merged into another (a duplicate) is not a member: the person is
        # counted once, by the registration they were merged into.
        inner_where = " WHERE p.merged_into IS NULL"
        if only is not None:
            target = (
                f"(SELECT household_id FROM vehicles WHERE id = {int(only)})" if vehicle else str(int(only))
            )
            inner_where += f" AND p.household_id = {target}"
        source += (
            f" LEFT JOIN (SELECT p.household_id AS household_id, {columns} FROM persons p{inner_where}"
            f" GROUP BY p.household_id) m ON m.household_id = {ids[1]}"
        )
    return source, ids[0], ids[1]


def compile_select(policy: Policy, dialect: Dialect, starts_on: date, only: int | None = None) -> str:
    """A SELECT of ``beneficiary_id, household_id, eligible, quantity, facts`` for every
    household (or vehicle) of the registry, or only the one whose id is ``only``. ``eligible``
    is the rule's raw value (TRUE, FALSE or NULL); ``quantity`` is NULL or in thousandths."""
    facts = policy.facts
    ctx = _Context(dialect, starts_on, {f.key: i for i, f in enumerate(facts)}, policy.per)
    source, beneficiary, household = _from(facts, policy.per, ctx, only)
    where = f" WHERE {beneficiary} = {int(only)}" if only is not None else ""
    eligible = _sql(policy.eligible.tree, ctx)
    quota = _sql(policy.quota.tree, ctx)
    return (
        f"SELECT {beneficiary} AS beneficiary_id, {household} AS household_id, {eligible} AS eligible, "
        f"{_quantity(policy, quota, ctx)} AS quantity, {_facts_json(facts, ctx)} AS facts "
        f"FROM {source}{where}"
    )


def compile_report(
    per: Owner,
    group_by: list[Fact],
    where: Checked | None,
    dialect: Dialect,
    starts_on: date,
    cycle_id: int | None,
) -> str:
    """A SELECT of the group's values, then ``beneficiaries, entitled, granted, redeemed``
    for every group of households (or vehicles), with their entitlements in ``cycle_id``."""
    facts = list(group_by)
    if where is not None:
        facts += [f for f in where.facts.values() if f.key not in {g.key for g in group_by}]
    ctx = _Context(dialect, starts_on, {f.key: i for i, f in enumerate(facts)}, per)
    source, beneficiary, _ = _from(facts, per, ctx, households=True)
    kind = "vehicle" if per is Owner.VEHICLE else "household"
    cycle = int(cycle_id) if cycle_id is not None else 0
    source += (
        f" LEFT JOIN entitlements e ON e.beneficiary_id = {beneficiary} AND e.beneficiary_kind = '{kind}'"
        f" AND e.cycle_id = {cycle}"
    )
    groups = [_fact_sql(f, ctx) for f in group_by]
    columns = [f"{g} AS g{i}" for i, g in enumerate(groups)]
    condition = ""
    if where is not None:
        truth = _sql(where.tree, ctx)
        condition = f" WHERE {truth}" if dialect is not Dialect.SQLITE else f" WHERE ({truth}) = 1"
    group = f" GROUP BY {', '.join(groups)} ORDER BY {', '.join(groups)}" if groups else ""
    return (
        f"SELECT {', '.join([*columns, 'COUNT(*) AS beneficiaries'])}, COUNT(e.id) AS entitled, "
        "COALESCE(SUM(e.quantity), 0) AS granted, COALESCE(SUM(e.redeemed), 0) AS redeemed "
        f"FROM {source}{condition}{group}"
    )


def _fact_sql(fact: Fact, ctx: _Context) -> str:
    index = ctx.facts[fact.key]
    if fact.attribute is None:
        return f"COALESCE(m.f{index}, 0)" if fact.function in ("COUNT", "SUM") else f"m.f{index}"
    alias = "v" if fact.attribute.belongs_to is Owner.VEHICLE else "h"
    return f"{alias}.{column_name(fact.attribute.name)}"


def compile_grant(
    policy: Policy, dialect: Dialect, starts_on: date, cycle_id: int, programme_id: int, policy_id: int
) -> str:
    """An INSERT of every entitlement the policy grants in one cycle, each stamped with the
    published policy (by its id) and the facts it read.

    Eligibility filters the inner SELECT; the quantity is computed there once, behind an
    ``OFFSET 0`` that keeps the engines from folding the inner SELECT into the outer one
    (which would compute the quota again for ``quantity > 0``, and on PostgreSQL turn a
    merge join into a hash join that spills to disk)."""
    facts = policy.facts
    ctx = _Context(dialect, starts_on, {f.key: i for i, f in enumerate(facts)}, policy.per)
    source, beneficiary, household = _from(facts, policy.per, ctx)
    eligible = _sql(policy.eligible.tree, ctx)
    if dialect is Dialect.SQLITE:
        eligible = f"({eligible}) = 1"
    quantity = _quantity(policy, _sql(policy.quota.tree, ctx), ctx)
    fence = "LIMIT -1 OFFSET 0" if dialect is Dialect.SQLITE else "OFFSET 0"
    kind = "vehicle" if policy.per is Owner.VEHICLE else "household"
    return (
        "INSERT INTO entitlements (cycle_id, programme_id, beneficiary_kind, beneficiary_id, "
        "household_id, quantity, redeemed, policy_id, facts) "
        f"SELECT {int(cycle_id)}, {int(programme_id)}, '{kind}', r.beneficiary_id, r.household_id, "
        f"r.quantity, 0, {int(policy_id)}, r.facts "
        f"FROM (SELECT {beneficiary} AS beneficiary_id, {household} AS household_id, "
        f"{quantity} AS quantity, {_facts_json(facts, ctx)} AS facts FROM {source} "
        f"WHERE {eligible} {fence}) r "
        "WHERE r.quantity > 0"
    )
