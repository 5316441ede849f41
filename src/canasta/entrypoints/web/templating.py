"""Templates and languages for the staff pages and the portal.

One Jinja2 environment per language, each with its gettext catalogue installed (the
Spanish one is read from ``locale/es/LC_MESSAGES/messages.po`` and compiled in memory when
the server starts, so no compiled file has to be kept in step with its source). Autoescape
is on for every template: whatever a person typed comes out as text.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from canasta.domain.quantity import format_milli

HERE = Path(__file__).parent
LOCALES = HERE / "locale"
LANGUAGES = ("en", "es")
LANGUAGE_NAMES = {"en": "English", "es": "Español"}
DEFAULT_LANGUAGE = "es"
LANG_COOKIE = "canasta_lang"


def catalogue_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / "messages.po"


@functools.cache
def translations(language: str) -> NullTranslations:
    path = catalogue_path(language)
    if language == "en" or not path.exists():
        return NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled)


def _quantity(value: int) -> str:
    return format_milli(int(value))


def _short_time(value: str | None) -> str:
    """An ISO 8601 timestamp as 'YYYY-MM-DD HH:MM UTC'."""
    if not value:
        return ""
    return value[:16].replace("T", " ") + " UTC"


def _(message: str) -> str:
    """Marks a message for the catalogue; translated when shown."""
    return message


#: Words stored in English in the database, shown in the reader's language.
ROLE_NAMES = {
    "registrar": _("registrar"),
    "reviewer": _("reviewer"),
    "programme_officer": _("programme officer"),
    "outlet_manager": _("outlet manager"),
    "auditor": _("auditor"),
    "admin": _("administrator"),
    "partner system": _("partner system"),
}
WHAT_NAMES = {
    "record": _("the whole record"),
    "search result": _("a search result"),
    "duplicate review": _("a duplicate check"),
    "appeal": _("an appeal"),
}
SUBJECT_NAMES = {
    "entitlement": _("an entitlement"),
    "redemption": _("a redemption"),
    "data": _("wrong data"),
}
STATUS_NAMES = {
    "open": _("open"),
    "upheld": _("upheld"),
    "rejected": _("rejected"),
}


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


@functools.cache
def environment(language: str) -> Environment:
    env = Environment(
        loader=PackageLoader("canasta.entrypoints.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    env.filters["qty"] = _quantity
    env.filters["when"] = _short_time
    env.filters["percent"] = _percent
    env.globals["LANGUAGE_NAMES"] = LANGUAGE_NAMES
    words = translations(language)
    for name, table in (
        ("role_name", ROLE_NAMES),
        ("what_name", WHAT_NAMES),
        ("status_name", STATUS_NAMES),
        ("subject_name", SUBJECT_NAMES),
    ):
        env.globals[name] = _lookup(words, table)
    return env


def _lookup(words: NullTranslations, table: dict[str, str]) -> Callable[[str], str]:
    def name(value: str) -> str:
        known = table.get(value)
        return words.gettext(known) if known is not None else value.replace("_", " ")

    return name


def gettext(language: str, message: str) -> str:
    return translations(language).gettext(message)


def language_of(request: Request) -> str:
    """The language chosen with the switch (a cookie), else the browser's first choice
    that canasta speaks, else Spanish."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    language = language_of(request)
    page = environment(language).get_template(template)
    body = page.render(
        {
            **context,
            "lang": language,
            "path": request.url.path,
        }
    )
    return HTMLResponse(body, status_code=status_code, headers=dict(headers or {}))
