"""The Spanish catalogue is complete and in step with the pages.

The messages are extracted the way ``pybabel extract -F babel.cfg`` extracts them: the
method map, the per-method options and the keywords all come from ``babel.cfg``, so the
test and the command line cannot disagree about what a translatable message is. Then every
extracted message must have a Spanish translation (not empty, not fuzzy) that keeps its
``%(name)s`` placeholders, and every message in the catalogue must still be used.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from canasta.entrypoints.web.templating import catalogue_path, environment

ROOT = Path(__file__).resolve().parents[2]
BABEL_CFG = ROOT / "babel.cfg"
LANGUAGE = "es"

#: A printf-style named placeholder, as ``%`` formatting (and Jinja's newstyle gettext)
#: reads it: ``%(name)s``, ``%(n)d``, ``%(x).1f``.
PLACEHOLDER = re.compile(r"%\((\w+)\)[#0 +-]*(?:\d+|\*)?(?:\.\d+)?[diouxXeEfFgGcrsa]")

Key = tuple[str, str | None]  # msgid, msgctxt


@dataclass(frozen=True)
class Extracted:
    """One message the code uses, and every place it is used (``path:line``)."""

    msgid: str
    plural: str | None
    context: str | None
    places: tuple[str, ...]


def _extract() -> dict[Key, Extracted]:
    with BABEL_CFG.open(encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config, str(BABEL_CFG))  # type: ignore[no-untyped-call]
    places: defaultdict[Key, list[str]] = defaultdict(list)
    plurals: dict[Key, str | None] = {}
    found = extract_from_dir(ROOT, method_map, options_map, keywords=DEFAULT_KEYWORDS)
    for filename, lineno, message, _comments, context in found:
        if isinstance(message, tuple):
            msgid, plural = message[0], message[1] if len(message) > 1 else None
        else:
            msgid, plural = message, None
        if msgid is None:
            continue
        key = (msgid, context)
        places[key].append(f"{Path(filename).as_posix()}:{lineno}")
        plurals.setdefault(key, plural)
    return {
        key: Extracted(key[0], plurals[key], key[1], tuple(where)) for key, where in sorted(places.items())
    }


@pytest.fixture(scope="module")
def extracted() -> dict[Key, Extracted]:
    found = _extract()
    assert found, f"nothing was extracted with {BABEL_CFG}: is the mapping right?"
    return found


@pytest.fixture(scope="module")
def catalogue() -> Catalog:
    with catalogue_path(LANGUAGE).open("rb") as source:
        return read_po(source, locale=LANGUAGE)


def _key(message: Message) -> Key:
    msgid = message.id[0] if isinstance(message.id, tuple | list) else message.id
    return (str(msgid), message.context)


def _strings(value: Any) -> list[str]:
    """A msgid or msgstr as its forms: one string, or the singular and plurals."""
    if isinstance(value, tuple | list):
        return [str(v) if v is not None else "" for v in value]
    return [str(value) if value is not None else ""]


def _placeholders(text: str) -> set[str]:
    return {match.group(0) for match in PLACEHOLDER.finditer(text)}


def _label(key: Key) -> str:
    msgid, context = key
    return repr(msgid) if context is None else f"{msgid!r} (context {context!r})"


def test_babel_cfg_finds_the_python_and_the_template_messages(extracted: dict[Key, Extracted]) -> None:
    """Both extractors run: a message from errors.py (``_``), the dashboard's chart labels
    from staff.py (``gettext(lang, ...)``, message second) and one from a template."""
    ids = {msgid for msgid, _context in extracted}
    assert "Your role does not allow this." in ids
    assert {"coverage", "uptake", "Coverage and uptake by region: %(p)s"} <= ids
    assert "Skip to content" in ids


def test_every_message_has_a_spanish_translation(extracted: dict[Key, Extracted], catalogue: Catalog) -> None:
    missing: list[str] = []
    for key, message in extracted.items():
        entry = catalogue.get(key[0], context=key[1])
        if entry is None:
            problem = "not in the catalogue"
        elif entry.fuzzy:
            problem = "fuzzy"
        elif not all(form.strip() for form in _strings(entry.string)):
            problem = "empty msgstr"
        else:
            continue
        missing.append(f"  {', '.join(message.places)}: {_label(key)} ({problem})")
    assert not missing, (
        f"{len(missing)} message(s) without a Spanish translation in {catalogue_path(LANGUAGE)}; "
        "run the update in docs/translations.md and translate them:\n" + "\n".join(missing)
    )


def test_translations_keep_the_placeholders(catalogue: Catalog) -> None:
    wrong: list[str] = []
    for entry in catalogue:
        if not entry.id:
            continue  # the header
        sources = _strings(entry.id)
        expected = set().union(*(_placeholders(s) for s in sources))
        for form in _strings(entry.string):
            if form and _placeholders(form) != expected:
                wrong.append(
                    f"  {_label(_key(entry))}: has {sorted(_placeholders(form))}, needs {sorted(expected)}"
                )
    assert not wrong, "translations whose %(name)s placeholders differ from the msgid:\n" + "\n".join(wrong)


def test_the_catalogue_has_no_obsolete_messages(extracted: dict[Key, Extracted], catalogue: Catalog) -> None:
    stale = sorted(_label(_key(entry)) for entry in catalogue if entry.id and _key(entry) not in extracted)
    old = sorted(_label(_key(entry)) for entry in catalogue.obsolete.values())
    assert not stale, (
        f"{len(stale)} message(s) in {catalogue_path(LANGUAGE)} that no page or module uses any more; "
        "run `pybabel update ... --ignore-obsolete` (docs/translations.md) or delete them:\n  "
        + "\n  ".join(stale)
    )
    assert not old, "obsolete (#~) entries left in the catalogue; delete them:\n  " + "\n  ".join(old)


def test_the_catalogue_header_is_spanish_utf8() -> None:
    with catalogue_path(LANGUAGE).open("rb") as source:
        catalogue = read_po(source)
    assert str(catalogue.locale) == LANGUAGE
    assert catalogue.charset.lower() == "utf-8"
    assert catalogue.num_plurals == 2
    assert not catalogue.fuzzy


def test_a_template_renders_in_spanish() -> None:
    page = (
        environment(LANGUAGE)
        .get_template("error.html")
        .render(status=404, message="x", home="/portal/", lang=LANGUAGE, path="/portal/")
    )
    assert '<html lang="es">' in page
    assert "Volver al inicio" in page
    assert "Back to the start" not in page
    assert "Error 404" in page
