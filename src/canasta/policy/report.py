"""Report definitions: coverage and uptake of a programme, grouped by declared attributes.

::

    title = "Food: coverage by region"
    programme = "food"
    group_by = ["region"]
    where = "members >= 3"          # optional: a rule expression over each household
    min_group = 10                  # optional: smaller groups are merged (default 10)

A report may only group by and filter on declared (or built-in) attributes, so it passes
the same protected-attribute firewall as a rule, on its title, its groups and its filter.
Groups smaller than ``min_group`` are merged into one row, so that a report never singles
out a household. This module does no I/O.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

from sqlglot import exp

from canasta.domain.firewall import firewall_reason, protected_category
from canasta.domain.toml_text import error_position, key_position
from canasta.policy.language import (
    Catalogue,
    Checked,
    Fact,
    PolicyRejected,
    Problem,
    Source,
    Type,
    check_expression,
)
from canasta.registry.schema import Owner

_FIELDS = {"title", "programme", "group_by", "where", "min_group"}
DEFAULT_MIN_GROUP = 10


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    programme: str
    group_by: list[Fact]
    where: Checked | None
    min_group: int


def _line_of(text: str, key: str) -> int:
    return key_position(text, key)[0]


def parse_report(text: str, filename: str, catalogue: Catalogue, per: Owner) -> Report:
    """Parse and check a report definition for a programme ``per`` household or vehicle."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line, column = error_position(error)
        raise PolicyRejected(
            f"{filename} is not valid TOML", [Problem(filename, line, column, "", str(error))]
        ) from None
    problems: list[Problem] = []

    def bad(key: str, token: str, reason: str) -> None:
        problems.append(Problem(filename, _line_of(text, key), 1, token, reason))

    for key in sorted(set(document) - _FIELDS):
        said = protected_category(key)
        reason = (
            firewall_reason(key, said, "a field of a report")
            if said
            else f"{key!r} is not a field of a report (those are {', '.join(sorted(_FIELDS))})"
        )
        bad(key, key, reason)
    title = document.get("title", "")
    if not isinstance(title, str) or not title.strip() or len(title) > 200:
        bad("title", "", "a report needs a title of at most 200 characters")
        title = ""
    else:
        said = protected_category(title)
        if said:
            bad("title", title, firewall_reason(title, said, "the title of a report"))
    programme = document.get("programme", "")
    if not isinstance(programme, str) or not programme.strip():
        bad("programme", "", "a report names its programme")
    min_group = document.get("min_group", DEFAULT_MIN_GROUP)
    if not isinstance(min_group, int) or isinstance(min_group, bool) or not 1 <= min_group <= 10_000:
        bad("min_group", str(min_group), "must be a whole number from 1 to 10000")
        min_group = DEFAULT_MIN_GROUP
    names = document.get("group_by", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or len(names) > 4:
        bad("group_by", "", "must be a list of at most four attribute names")
        names = []
    groups: list[Fact] = []
    for name in names:
        source = Source(filename, _line_of(text, "group_by"))
        try:
            checked = check_expression(name, source, catalogue, per, None, "a group")
        except PolicyRejected as rejected:
            problems.extend(rejected.problems)
            continue
        if not isinstance(checked.tree, exp.Column):
            bad("group_by", name, "a report groups by attribute names, not by expressions")
            continue
        for fact in checked.facts.values():
            if fact.attribute is None:
                bad("group_by", name, "a report groups by an attribute, not by a count over members")
            else:
                groups.append(fact)
    where = None
    raw = document.get("where")
    if raw is not None:
        if not isinstance(raw, str):
            bad("where", "", "the filter is a rule expression written as text")
        else:
            try:
                where = check_expression(
                    raw,
                    Source(filename, _line_of(text, "where")),
                    catalogue,
                    per,
                    Type.BOOLEAN,
                    "the report's filter",
                )
            except PolicyRejected as rejected:
                problems.extend(rejected.problems)
    if problems:
        raise PolicyRejected(f"{filename}: {len(problems)} problem(s) in the report", problems)
    return Report(title.strip(), str(programme).strip(), groups, where, int(min_group))
