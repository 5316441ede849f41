"""RFC 9457 problem details: the one place where domain errors become HTTP answers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from canasta.domain import errors as e
from canasta.domain.card_token import (
    BadCard,
    CardExpired,
    CardNotYetValid,
    CardSignatureInvalid,
    UnknownCardIssuer,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
#: Headers some statuses carry: how to authenticate, when to retry.
HEADERS = {401: {"WWW-Authenticate": "Bearer"}, 503: {"Retry-After": "1"}}

#: Most specific first: the first matching class decides.
STATUS: list[tuple[type[e.CanastaError], int, str]] = [
    (e.MalformedCardId, 422, "Malformed card id"),
    (CardExpired, 403, "Card expired"),
    (CardNotYetValid, 403, "Card not yet valid"),
    (UnknownCardIssuer, 422, "Unknown card issuer"),
    (CardSignatureInvalid, 422, "Card signature invalid"),
    (BadCard, 422, "Malformed card code"),
    (e.LedgerDamaged, 500, "Ledger damaged"),
    (e.CardNotFound, 404, "Unknown card"),
    (e.CardRevoked, 403, "Card withdrawn"),
    (e.ProgrammeNotFound, 404, "Unknown programme"),
    (e.WrongProgramme, 422, "Not entitled in this programme"),
    (e.CycleClosed, 409, "No open cycle"),
    (e.QuotaExceeded, 409, "Insufficient balance"),
    (e.OutletMismatch, 403, "Outlet mismatch"),
    (e.IdempotencyKeyReused, 422, "Idempotency key reused"),
    (e.SignInLocked, 429, "Too many attempts"),
    (e.Unauthenticated, 401, "Not authenticated"),
    (e.Forbidden, 403, "Forbidden"),
    (e.Unavailable, 503, "Temporarily unavailable"),
    (e.TooLarge, 413, "Content too large"),
    (e.NotFound, 404, "Not found"),
    (e.Conflict, 409, "Conflict"),
    (e.InvalidInput, 422, "Invalid input"),
    (e.CanastaError, 400, "Bad request"),
]


def problem_document(
    status: int, slug: str, title: str, detail: str, instance: str | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def problem(
    status: int, slug: str, title: str, detail: str, instance: str | None = None, **extra: Any
) -> JSONResponse:
    body = problem_document(status, slug, title, detail, instance, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=HEADERS.get(status))


def error_document(error: e.CanastaError, instance: str | None = None) -> dict[str, Any]:
    for cls, status, title in STATUS:
        if isinstance(error, cls):
            return problem_document(status, error.code, title, error.message, instance)
    raise AssertionError("CanastaError is always matched")  # pragma: no cover


def for_error(error: e.CanastaError, instance: str | None = None) -> JSONResponse:
    body = error_document(error, instance)
    status = body["status"]
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=HEADERS.get(status))


def validation_document(errors: Sequence[Any], instance: str | None = None) -> dict[str, Any]:
    """A 422 problem listing each invalid field as ``{location, message}``."""
    details = [
        {
            "location": ".".join(str(part) for part in err.get("loc", ())),
            "message": err.get("msg", "invalid"),
        }
        for err in errors
    ]
    summary = "; ".join(f"{d['location']}: {d['message']}" for d in details[:5])
    return problem_document(422, "validation-error", "Invalid request", summary, instance, errors=details)


INTERNAL_ERROR = (
    "internal-error",
    "Internal error",
    "the server failed; nothing was recorded for this request and it is safe to retry",
)


def install(app: FastAPI) -> None:
    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, e.CanastaError)
        return for_error(exc, request.url.path)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        body = validation_document(exc.errors(), request.url.path)
        return JSONResponse(body, status_code=422, media_type=PROBLEM_JSON)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem(
            exc.status_code,
            "http-" + str(exc.status_code),
            str(exc.detail) if exc.status_code != 404 else "Not found",
            str(exc.detail),
            request.url.path,
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path, exc_info=exc)
        return problem(500, *INTERNAL_ERROR, request.url.path)

    app.add_exception_handler(e.CanastaError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
