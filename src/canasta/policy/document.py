"""Policy files: one programme version's eligibility and quota, in TOML.

::

    programme = "food"
    version = 2
    description = "Food basket: a base ration plus a share per member, more for small children."
    eligible = "monthly_income < 1500 OR COUNT(*) FILTER (WHERE disabled) > 0"
    quota = "10 + 4 * members + 3 * COUNT(*) FILTER (WHERE age < 5)"
    cap = 40            # optional, in the programme's unit
    rounding = "down"   # optional: down, up or nearest (default nearest)
    step = 0.5          # optional: round to a multiple of this (default 0.001)

The text of a published policy is stored under the SHA-256 of its bytes and never edited.
This module does no I/O.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from canasta.domain.quantity import MAX_MILLI
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

_FIELDS = {"programme", "version", "description", "eligible", "quota", "cap", "rounding", "step"}
_REQUIRED = ("programme", "version", "eligible", "quota")


class Rounding(StrEnum):
    DOWN = "down"
    UP = "up"
    NEAREST = "nearest"


@dataclass(frozen=True, slots=True)
class Policy:
    programme: str
    version: int
    description: str
    eligible: Checked
    quota: Checked
    #: In thousandths of the programme's unit; None for no cap.
    cap: int | None
    rounding: Rounding
    #: In thousandths; 1 rounds to the nearest thousandth.
    step: int
    per: Owner
    text: str
    sha256: str

    @property
    def facts(self) -> list[Fact]:
        """Every value the policy reads, eligibility's first, each once, in a fixed order:
        the order of the facts stored with each entitlement."""
        merged = dict(self.eligible.facts)
        for key, fact in self.quota.facts.items():
            merged.setdefault(key, fact)
        return list(merged.values())


def policy_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_policy(text: str, filename: str, catalogue: Catalogue, per: Owner | None = None) -> Policy:
    """Parse and check a policy file. ``per`` is the programme's kind when known (the
    caller checks the programme exists); without it, household is assumed."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line, column = error_position(error)
        raise PolicyRejected(
            f"{filename} is not valid TOML",
            [Problem(filename, line, column, "", str(error).split(" (at line")[0])],
        ) from None
    problems: list[Problem] = []

    def bad(key: str, reason: str, token: str = "") -> None:
        line, column = key_position(text, key)
        problems.append(Problem(filename, line, column, token or key, reason))

    for key in sorted(set(document) - _FIELDS):
        bad(key, f"{key!r} is not a field of a policy (those are {', '.join(sorted(_FIELDS))})")
    for key in _REQUIRED:
        if key not in document:
            problems.append(Problem(filename, 1, 1, "", f"{key!r} is missing"))
    programme = document.get("programme", "")
    if "programme" in document and (not isinstance(programme, str) or not programme.strip()):
        bad("programme", "must name the programme")
    version = document.get("version", 0)
    if "version" in document and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        bad("version", "must be a whole number from 1")
    description = document.get("description", "")
    if not isinstance(description, str) or len(description) > 500:
        bad("description", "must be text of at most 500 characters")
        description = ""
    cap = _milli(document, "cap", bad, allow_zero=False)
    step = _milli(document, "step", bad, allow_zero=False)
    rounding = Rounding.NEAREST
    if "rounding" in document:
        try:
            rounding = Rounding(str(document["rounding"]).lower())
        except ValueError:
            bad("rounding", "must be down, up or nearest")
    kind = per or Owner.HOUSEHOLD
    checked: dict[str, Checked] = {}
    for key, want, what in (
        ("eligible", Type.BOOLEAN, "the eligibility rule"),
        ("quota", Type.NUMBER, "the quota rule"),
    ):
        value = document.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            bad(key, f"{what} is written as text (in quotes)")
            continue
        try:
            checked[key] = check_expression(
                value, _value_source(text, key, value, filename), catalogue, kind, want, what
            )
        except PolicyRejected as rejected:
            problems.extend(rejected.problems)
    if problems:
        raise PolicyRejected(f"{filename}: {len(problems)} problem(s) in the policy", problems)
    return Policy(
        programme=str(programme).strip(),
        version=int(version),
        description=description.strip(),
        eligible=checked["eligible"],
        quota=checked["quota"],
        cap=cap,
        rounding=rounding,
        step=step or 1,
        per=kind,
        text=text,
        sha256=policy_hash(text),
    )


def _milli(
    document: dict[str, object], key: str, bad: Callable[[str, str], None], *, allow_zero: bool
) -> int | None:
    if key not in document:
        return None
    raw = document[key]
    try:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise InvalidOperation
        value = Decimal(str(raw)) * 1000
    except InvalidOperation:
        value = Decimal(-1)
    if value != value.to_integral_value() or value < (0 if allow_zero else 1) or value > MAX_MILLI:
        bad(key, f"must be a positive number with at most three decimals, at most {MAX_MILLI // 1000}")
        return None
    return int(value)


def _value_source(text: str, key: str, value: str, filename: str) -> Source:
    """Where the string value of ``key`` starts in the file, so that an expression's own
    offsets become the file's lines and columns."""
    line, _ = key_position(text, key)
    lines = text.splitlines(keepends=True)
    if not lines or line > len(lines):
        return Source(filename)
    start = sum(len(x) for x in lines[: line - 1])
    after = text[start:]
    found = re.match(rf"\s*{re.escape(key)}\s*=\s*(\"\"\"|'''|\"|')", after)
    if not found:
        return Source(filename, line, 1)
    offset = start + found.end()
    if found.group(1) in ('"""', "'''") and text[offset : offset + 1] == "\n":
        offset += 1
    elif found.group(1) in ('"""', "'''") and text[offset : offset + 2] == "\r\n":
        offset += 2
    if not text.startswith(value[:40], offset):
        return Source(filename, line, found.end(1) + 1)
    before = text[:offset]
    return Source(filename, before.count("\n") + 1, offset - before.rfind("\n"))
