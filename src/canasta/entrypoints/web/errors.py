"""Errors on the pages: the same domain errors as the API, shown as a page in the reader's
language instead of a problem document."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from canasta.domain import errors as e
from canasta.entrypoints.api.problems import error_document
from canasta.entrypoints.web import security
from canasta.entrypoints.web.templating import gettext, language_of, render

log = logging.getLogger("canasta.web")


class SignInNeeded(Exception):
    """No live session: the reader is sent to the sign-in page at ``to``."""

    def __init__(self, to: str) -> None:
        super().__init__(to)
        self.to = to


def _(message: str) -> str:
    """Marks a message for the catalogue; translated when shown."""
    return message


#: What a reader is told for each kind of error, in their language. Anything else shows
#: the error's own sentence (English), which names what was wrong.
MESSAGES: dict[str, str] = {
    e.SignInRefused.code: _("The card number or PIN, or the user name or password, is wrong."),
    e.SignInLocked.code: _("Too many wrong attempts. Sign-in is locked for a while; try again later."),
    e.Forbidden.code: _("Your role does not allow this."),
    e.NotFound.code: _("There is nothing here, or it is not yours to see."),
    "csrf": _("The form has expired. Load the page again and send it again."),
}


def message_for(request: Request, error: e.CanastaError) -> str:
    lang = language_of(request)
    if isinstance(error, e.FormExpired):
        return gettext(lang, MESSAGES["csrf"])
    if isinstance(error, e.NotFound):
        return gettext(lang, MESSAGES[e.NotFound.code])
    known = MESSAGES.get(error.code)
    if known is not None:
        return gettext(lang, known)
    return error.message


def _is_page(request: Request) -> bool:
    return request.url.path.startswith(("/portal", "/staff"))


def error_page(request: Request, status: int, message: str) -> Response:
    home = "/staff/" if request.url.path.startswith("/staff") else "/portal/"
    # Also on a 500, which is answered outside the middleware that adds the page headers.
    headers = security.page_headers(request)
    return render(
        request, "error.html", {"status": status, "message": message, "home": home}, status, headers
    )


Handler = Callable[[Request, Exception], Awaitable[Response]]


def install(app: FastAPI) -> None:
    """Wrap the API's handlers: on /portal and /staff an error is a page."""
    handlers = dict(app.exception_handlers)

    def wrap(kind: type[Exception] | int, page: Callable[[Request, Exception], Response]) -> None:
        api = handlers.get(kind)

        async def handler(request: Request, exc: Exception) -> Response:
            if _is_page(request) or api is None:
                return page(request, exc)
            return await api(request, exc)  # type: ignore[no-any-return]

        app.add_exception_handler(kind, handler)

    def domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, e.CanastaError)
        status = int(error_document(exc)["status"])
        return error_page(request, status, message_for(request, exc))

    def validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        fields = ", ".join(".".join(str(p) for p in err.get("loc", ())[1:]) for err in exc.errors()[:3])
        lang = language_of(request)
        return error_page(request, 422, gettext(lang, _("A value in the form is not valid:")) + f" {fields}")

    def http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        lang = language_of(request)
        if exc.status_code == 404:
            return error_page(request, 404, gettext(lang, MESSAGES[e.NotFound.code]))
        return error_page(request, exc.status_code, str(exc.detail))

    def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path, exc_info=exc)
        lang = language_of(request)
        return error_page(
            request, 500, gettext(lang, _("Something failed on the server. Nothing was changed."))
        )

    async def sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)
        return RedirectResponse(exc.to, status_code=303)

    wrap(e.CanastaError, domain)
    wrap(RequestValidationError, validation)
    wrap(StarletteHTTPException, http)
    wrap(Exception, unexpected)
    app.add_exception_handler(SignInNeeded, sign_in)
