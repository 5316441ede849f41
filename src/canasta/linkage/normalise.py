"""Registrations normalised for matching (pure functions, no I/O).

Spanish and Portuguese names are written in many ways for the same person: with or without
accents, in upper case, with doubled spaces, with a compound given name shortened to its
first part ("María José" → "María"), with the two family names swapped or the second one
left out. ``normalise_registration`` turns one registration (the registration format, all
values strings) into the flat record the linkage model compares:

* every text folded (``fold``): accents stripped (NFKD), lower case, punctuation dropped,
  spaces collapsed;
* given names split into the first given name and the others;
* family names kept in order (``family_name``, ``second_family_name``) and also as a sorted
  pair (``family_names_sorted``), so that a swap still agrees, and a phonetic key of the
  first family name (``family_key``) for blocking;
* the phone reduced to its last eight digits, so "+56 9 1234 5678", "912345678" and
  "9 1234-5678" agree;
* the address with street kinds expanded ("Av." → "avenida"; "Calle" dropped, as clerks
  drop it) and flat numbers written one way ("depto", "dpto." → "depto").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from functools import lru_cache

#: Columns of a normalised registration, in order.
NORMALISED_COLUMNS = (
    "unique_id",
    "given_names",
    "first_given_name",
    "other_given_names",
    "family_name",
    "second_family_name",
    "family_names_sorted",
    "family_key",
    "sex",
    "date_of_birth",
    "birth_year",
    "birth_month",
    "birth_monthday",
    "birth_date_unordered",
    "given_initial",
    "sex_key",
    "region",
    "municipality",
    "address",
    "phone",
    "household_ref",
)

_NON_WORD = re.compile(r"[^a-z0-9 ]+")
_SPACES = re.compile(r"\s+")

#: Street kinds and flat words as written, folded, and how they are normalised ("" drops).
_ADDRESS_WORDS = {
    "av": "avenida",
    "avd": "avenida",
    "avda": "avenida",
    "avenida": "avenida",
    "pje": "pasaje",
    "psje": "pasaje",
    "pasaje": "pasaje",
    "cno": "camino",
    "camino": "camino",
    "calle": "",
    "c": "",
    "depto": "depto",
    "dpto": "depto",
    "dto": "depto",
    "departamento": "depto",
}


@lru_cache(maxsize=1 << 16)
def fold(text: str) -> str:
    """Text reduced for comparison: "  NÚÑEZ-Pérez " → "nunez perez". (Names repeat: a
    country has a few thousand of each kind, so the answers are cached.)"""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return _SPACES.sub(" ", _NON_WORD.sub(" ", stripped)).strip()


def split_given_names(given_names: str) -> tuple[str, str]:
    """(first given name, the other given names) of folded text: "maria de los angeles" →
    ("maria", "de los angeles"); ("", "") when there are none."""
    first, _, rest = fold(given_names).partition(" ")
    return first, rest


def family_names_sorted(family_name: str, second_family_name: str) -> str:
    """Both family names folded, sorted and joined by "|", so that a swap agrees; one name
    alone when the other is missing; "" when both are."""
    names = sorted(n for n in (fold(family_name), fold(second_family_name)) if n)
    return "|".join(names)


@lru_cache(maxsize=1 << 16)
def phonetic_key(name: str) -> str:
    """A coarse sound key of a Spanish or Portuguese name, tolerant of the commonest
    spelling slips: "Gonzalez", "Gonsales" and "Gonzales" all give "gnsls".

    The folded name loses spaces and h; b/v, c/k/q/s/z, g/j, y/i/ll and ss are merged;
    vowels after the first letter are dropped and repeated letters collapsed."""
    text = fold(name).replace(" ", "")
    for written, sound in (
        ("ll", "y"), ("ch", "x"), ("qu", "k"), ("ss", "s"), ("ph", "f"),
        ("ce", "se"), ("ci", "si"), ("h", ""),
    ):  # fmt: skip
        text = text.replace(written, sound)
    text = text.translate(str.maketrans("vzckqjwy", "bsskkgbi"))
    if not text:
        return ""
    key = [text[0]]
    for c in text[1:]:
        if c in "aeiou" or c == key[-1]:
            continue
        key.append(c)
    return "".join(key)


def phone_digits(phone: str, keep: int = 8) -> str:
    """The last ``keep`` digits of a phone, or "" when it has fewer digits than that."""
    digits = "".join(c for c in phone if c.isdigit())
    return digits[-keep:] if len(digits) >= keep else ""


def normalise_address(address: str) -> str:
    """ "Avda. Los Álamos 1234, Dpto. 502" → "avenida los alamos 1234 depto 502"."""
    words = []
    for word in fold(address).split(" "):
        replacement = _ADDRESS_WORDS.get(word, word)
        if replacement:
            words.append(replacement)
    return " ".join(words)


def birth_year(date_of_birth: str) -> str:
    """The year of an ISO date ("1984-03-07" → "1984"), or "" when there is none."""
    year = date_of_birth.strip()[:4]
    return year if len(year) == 4 and year.isdigit() else ""


def birth_keys(date_of_birth: str) -> tuple[str, str, str]:
    """Blocking keys of an ISO date that survive one kind of error each: the year and month
    (a mistyped day), the month and day (a mistyped year), and the year with day and month
    in either order (day and month exchanged). "" when the date is not ``YYYY-MM-DD``."""
    text = date_of_birth.strip()
    if len(text) != 10 or text[4] != "-" or text[7] != "-" or not text.replace("-", "").isdigit():
        return "", "", ""
    year, month, day = text[:4], text[5:7], text[8:]
    return f"{year}-{month}", f"{month}-{day}", f"{year}:{min(month, day)}:{max(month, day)}"


def normalise_registration(row: Mapping[str, str]) -> dict[str, str | None]:
    """One registration as the linkage model compares it (``NORMALISED_COLUMNS``); a
    missing or empty value becomes ``None`` (SQL NULL: neither agreement nor disagreement).
    Optional columns (sex, region, municipality, address, phone, household_ref) may be
    absent from ``row``."""
    first, others = split_given_names(row.get("given_names", ""))
    family, second = fold(row.get("family_name", "")), fold(row.get("second_family_name", ""))
    date_of_birth = row.get("date_of_birth", "").strip()
    month, monthday, unordered = birth_keys(date_of_birth)
    values = {
        "unique_id": row["registration_id"],
        "given_names": fold(row.get("given_names", "")),
        "first_given_name": first,
        "other_given_names": others,
        "family_name": family,
        "second_family_name": second,
        "family_names_sorted": family_names_sorted(family, second),
        "family_key": phonetic_key(family),
        "sex": row.get("sex", "").strip().upper(),
        "date_of_birth": date_of_birth,
        "birth_year": birth_year(date_of_birth),
        "birth_month": month,
        "birth_monthday": monthday,
        "birth_date_unordered": unordered,
        "given_initial": first[:1],
        # For blocking: the sex, or "?" when not given, so a rule that also keys on sex
        # still pairs registrations that do not say it.
        "sex_key": row.get("sex", "").strip().upper() or "?",
        "region": fold(row.get("region", "")),
        "municipality": fold(row.get("municipality", "")),
        "address": normalise_address(row.get("address", "")),
        "phone": phone_digits(row.get("phone", "")),
        "household_ref": row.get("household_ref", "").strip(),
    }
    return {column: (values[column] or None) for column in NORMALISED_COLUMNS}
