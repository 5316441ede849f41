"""What keeps the pages safe: response headers (a strict Content-Security-Policy: no script
at all, styles only from canasta's own stylesheet), session cookies, and CSRF checks.

Forms of a signed-in session carry that session's CSRF token (kept server-side with the
session). Sign-in forms, before there is a session, carry a random value that must equal
the one in a short-lived cookie (a double-submit token); and every form post must come
from this site's own origin when the browser says where it comes from.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.responses import Response

from canasta.domain.errors import FormExpired
from canasta.entrypoints.web.templating import render
from canasta.service import sessions

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
PREFIXES = ("/portal", "/staff", "/static/", "/lang/")

PRE_COOKIE = "canasta_pre"
STAFF_COOKIE = "canasta_staff"
PORTAL_COOKIE = "canasta_portal"


def page_headers(request: Request) -> dict[str, str]:
    headers = dict(PAGE_HEADERS)
    if request.url.path.startswith("/static/"):
        del headers["cache-control"]
    if secure(request):
        headers["strict-transport-security"] = "max-age=31536000"
    return headers


async def add_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    if request.url.path.startswith(PREFIXES):
        for name, value in page_headers(request).items():
            response.headers.setdefault(name, value)
    return response


def public_origin(request: Request) -> str | None:
    """The origin browsers use when a proxy terminates TLS (``Settings.public_url``)."""
    origin = getattr(request.app.state, "public_origin", None)
    return origin if isinstance(origin, str) else None


def secure(request: Request) -> bool:
    """Whether the browser reached us over HTTPS (directly, or through the public origin)."""
    origin = public_origin(request)
    return request.url.scheme == "https" or (origin is not None and origin.startswith("https://"))


def set_session_cookie(response: Response, request: Request, name: str, token: str, path: str) -> None:
    response.set_cookie(
        name, token, path=path, httponly=True, samesite="strict", secure=secure(request), max_age=None
    )


def clear_cookie(response: Response, request: Request, name: str, path: str) -> None:
    response.delete_cookie(name, path=path, httponly=True, samesite="strict", secure=secure(request))


def pre_token(request: Request) -> str:
    """The sign-in form's double-submit value: the cookie's, or a new one."""
    current = request.cookies.get(PRE_COOKIE)
    if current and 20 <= len(current) <= 64:
        return current
    return secrets.token_urlsafe(24)


def set_pre_cookie(response: Response, request: Request, value: str, path: str) -> None:
    response.set_cookie(
        PRE_COOKIE, value, path=path, httponly=True, samesite="strict", secure=secure(request), max_age=3600
    )


def check_origin(request: Request) -> None:
    """Refuse a form posted from another site (when the browser names the origin)."""
    origin = (request.headers.get("origin") or "").lower()
    if origin and origin != "null":
        ours = {f"{request.url.scheme}://{request.headers.get('host', '')}".lower(), public_origin(request)}
        if origin not in ours:
            raise FormExpired("this form was sent from another site")


def check_token(request: Request, expected: str, sent: str | None) -> None:
    """A signed-in session's form: from this site, with the session's CSRF token."""
    check_origin(request)
    if not sessions.csrf_matches(expected, sent):
        raise FormExpired("the form has expired; load the page again and resend it")


def check_pre_token(request: Request, sent: str | None) -> None:
    check_origin(request)
    cookie = request.cookies.get(PRE_COOKIE)
    if not cookie or not sent or not secrets.compare_digest(cookie.encode(), sent.encode()):
        raise FormExpired("the form has expired; load the page again and resend it")


def sign_in_page(
    request: Request, template: str, path: str, error: str | None = None, status_code: int = 200
) -> Response:
    """A sign-in form with its double-submit token, in the cookie and in the page."""
    value = pre_token(request)
    response = render(request, template, {"pre": value, "error": error}, status_code)
    set_pre_cookie(response, request, value, path)
    return response
