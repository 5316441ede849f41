"""Declared attributes: the registry schema file.

Rules may use only attributes declared here, each with a type, a unit, what it belongs to,
a need category from a fixed vocabulary and a one-sentence purpose. The file is TOML, one
table per attribute::

    [attributes.monthly_income]
    type = "decimal"
    unit = "PEN"
    belongs_to = "household"
    category = "income and assets"
    purpose = "Income the household declared at registration, for means testing."

Every attribute passes the protected-attribute firewall (its name and its purpose), and
every problem is reported with the file, line and column where it is.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TypeVar

from canasta.domain.errors import ImportRejected, RowProblem
from canasta.domain.firewall import firewall_reason, protected_category
from canasta.domain.toml_text import error_position


class AttributeType(StrEnum):
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    TEXT = "text"
    DATE = "date"


class Owner(StrEnum):
    HOUSEHOLD = "household"
    PERSON = "person"
    VEHICLE = "vehicle"


class NeedCategory(StrEnum):
    """The only purposes an attribute may serve."""

    AGE_AND_DEMOGRAPHY = "age and demography"
    HOUSEHOLD_COMPOSITION = "household composition"
    INCOME_AND_ASSETS = "income and assets"
    DISABILITY_AND_CARE = "disability and care needs"
    LOCATION = "location"
    VEHICLE = "vehicle"


#: At most 40 characters, so that its column (``attr_`` + name) fits every engine's limit.
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_FIELDS = {"type", "unit", "belongs_to", "category", "purpose"}
#: Optional: how explanations name the attribute to the beneficiary, in English and Spanish.
_LABELS = {"label_en", "label_es"}
MAX_PURPOSE = 300
#: Names every registry already has (rules use them as built-in attributes) and the words
#: that qualify a name in a rule.
RESERVED = frozenset(
    {"region", "municipality", "members", "age", "sex", "kind", "household", "person", "vehicle"}
)


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    type: AttributeType
    unit: str
    belongs_to: Owner
    category: NeedCategory
    purpose: str
    label_en: str = ""
    label_es: str = ""

    def label(self, language: str) -> str:
        chosen = self.label_es if language == "es" else self.label_en
        return chosen or self.name.replace("_", " ")


@dataclass(frozen=True, slots=True)
class Schema:
    attributes: dict[str, Attribute]

    def for_owner(self, owner: Owner) -> list[Attribute]:
        return [a for a in self.attributes.values() if a.belongs_to is owner]


def parse_schema(text: str, filename: str) -> Schema:
    """The declared attributes in ``text``, or ``ImportRejected`` with every problem."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line, column = error_position(error)
        raise ImportRejected(
            f"{filename} is not valid TOML",
            [RowProblem(filename, 0, "(toml)", f"{error} (line {line}, column {column})", line)],
        ) from None
    problems: list[RowProblem] = []

    def bad(name: str, field: str, reason: str) -> None:
        line, column = _locate(text, name, field)
        where = f"attributes.{name}" + (f".{field}" if field else "")
        problems.append(RowProblem(filename, 0, where, f"{reason} (line {line}, column {column})", line))

    extra = set(document) - {"attributes"}
    for key in sorted(extra):
        line, column = _locate(text, key, "")
        problems.append(
            RowProblem(
                filename,
                0,
                key,
                f"only [attributes.*] tables belong here (line {line}, column {column})",
                line,
            )
        )
    declared = document.get("attributes", {})
    if not isinstance(declared, dict) or not declared:
        problems.append(RowProblem(filename, 0, "attributes", "no attributes are declared"))
        raise ImportRejected(f"{filename}: the schema declares nothing", problems)
    attributes: dict[str, Attribute] = {}
    for name, fields in declared.items():
        before = len(problems)
        if not _NAME.match(name):
            bad(
                name,
                "",
                "an attribute name is 1-40 lower-case letters, digits or '_', starting with a letter",
            )
        if name in RESERVED:
            bad(name, "", f"{name!r} is built in (or qualifies names in rules) and cannot be declared again")
        match = protected_category(name)
        if match:
            bad(name, "", firewall_reason(name, match, "a declared attribute"))
        if not isinstance(fields, dict):
            bad(name, "", "must be a table of type, unit, belongs_to, category and purpose")
            continue
        for field in sorted(set(fields) - _FIELDS - _LABELS):
            bad(
                name,
                field,
                f"is not a field of an attribute (those are {', '.join(sorted(_FIELDS | _LABELS))})",
            )
        labels = {}
        for field in sorted(_LABELS & set(fields)):
            label = fields[field]
            if not isinstance(label, str) or not label.strip() or len(label) > 80:
                bad(name, field, "must be a short name of at most 80 characters")
                continue
            said = protected_category(label)
            if said:
                bad(name, field, firewall_reason(label, said, "the label of an attribute"))
            labels[field] = label.strip()
        for field in sorted(_FIELDS - set(fields)):
            bad(name, field, "is missing")
        kind = _choice(fields.get("type"), AttributeType)
        if "type" in fields and kind is None:
            bad(name, "type", f"must be one of {', '.join(t.value for t in AttributeType)}")
        owner = _choice(fields.get("belongs_to"), Owner)
        if "belongs_to" in fields and owner is None:
            bad(name, "belongs_to", f"must be one of {', '.join(o.value for o in Owner)}")
        category = _choice(fields.get("category"), NeedCategory)
        if "category" in fields and category is None:
            bad(name, "category", f"must be one of: {'; '.join(c.value for c in NeedCategory)}")
        unit = fields.get("unit", "")
        if "unit" in fields and (not isinstance(unit, str) or len(unit) > 32):
            bad(name, "unit", "must be text of at most 32 characters ('' for none)")
        purpose = fields.get("purpose", "")
        if "purpose" in fields:
            if not isinstance(purpose, str) or not purpose.strip():
                bad(name, "purpose", "must say in one sentence what the attribute is for")
            elif "\n" in purpose.strip() or len(purpose) > MAX_PURPOSE:
                bad(name, "purpose", f"must be one sentence of at most {MAX_PURPOSE} characters")
            else:
                said = protected_category(purpose)
                if said:
                    bad(name, "purpose", firewall_reason(purpose, said, "the purpose of an attribute"))
        if len(problems) == before and kind and owner and category and isinstance(unit, str):
            attributes[name] = Attribute(name, kind, unit, owner, category, str(purpose).strip(), **labels)
    if problems:
        raise ImportRejected(f"{filename}: {len(problems)} problem(s) in the schema", problems)
    return Schema(attributes)


E = TypeVar("E", bound=StrEnum)


def _choice(value: object, kind: type[E]) -> E | None:
    if not isinstance(value, str):
        return None
    try:
        return kind(value.strip().lower())
    except ValueError:
        return None


def _locate(text: str, name: str, field: str) -> tuple[int, int]:
    """Where ``[attributes.name]`` (or its ``field``) is written in ``text``."""
    lines = text.splitlines()
    start = 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.replace(" ", "") in (f"[attributes.{name}]", f'[attributes."{name}"]', f"[{name}]"):
            start = number
            if not field:
                return number, line.index("[") + 1
            continue
        if start and stripped.startswith("["):
            break
        if start and field and re.match(rf"\s*{re.escape(field)}\s*=", line):
            return number, line.index(field) + 1
    return start, 1


_TRUE = {"true", "yes", "1", "si", "sí", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f"}
MAX_TEXT = 200


def parse_value(attribute: Attribute, text: str) -> object:
    """The value of ``attribute`` written as ``text`` in an import, None when empty (not
    known). Raises ``ValueError`` with a reason a registrar can act on."""
    raw = text.strip()
    if not raw:
        return None
    kind = attribute.type
    if kind is AttributeType.INTEGER:
        if not re.fullmatch(r"-?\d{1,15}", raw):
            raise ValueError(f"{raw!r} is not a whole number")
        return int(raw)
    if kind is AttributeType.DECIMAL:
        if not re.fullmatch(r"-?\d{1,15}(\.\d{1,6})?", raw):
            raise ValueError(f"{raw!r} is not a number (digits, with '.' for decimals)")
        return float(raw)
    if kind is AttributeType.BOOLEAN:
        folded = raw.lower()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
        raise ValueError(f"{raw!r} is not yes or no (true/false, yes/no, sí/no, 1/0)")
    if kind is AttributeType.DATE:
        try:
            if len(raw) != 10:
                raise ValueError
            return date.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is not an ISO date (YYYY-MM-DD)") from None
    if len(raw) > MAX_TEXT:
        raise ValueError(f"is longer than {MAX_TEXT} characters")
    return raw
