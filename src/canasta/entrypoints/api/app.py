"""The FastAPI application: outlets redeem and read balances; everything else is the CLI's
for now. Handlers only translate: the service layer decides."""

import functools
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp

from canasta import __version__
from canasta.domain.errors import OutletMismatch, Unauthenticated
from canasta.domain.model import format_card_id
from canasta.domain.offline import SignedEntry
from canasta.domain.quantity import format_milli
from canasta.domain.signed_note import Verifier
from canasta.entrypoints.api import problems
from canasta.entrypoints.api.dci import Notifier, dci_router
from canasta.entrypoints.api.log import log_router, receipt_router
from canasta.entrypoints.api.redemptions import FastPath, RedemptionEndpoint
from canasta.entrypoints.api.schemas import (
    KEY_PATTERN,
    AllowanceOut,
    BalanceLine,
    BalanceOut,
    ClauseOut,
    EnrolRequest,
    EntryOutcomeOut,
    ExplanationOut,
    FactUsed,
    OfflineOut,
    PolicyRef,
    Problem,
    QuotaOut,
    ReceiptOut,
    RedemptionRequest,
    SyncOut,
    SyncRequest,
)
from canasta.entrypoints.web import pages
from canasta.policy.explain import APPEAL
from canasta.service import offline as offline_service
from canasta.service import rules
from canasta.service.bootstrap import Canasta, bootstrap
from canasta.service.card_tokens import revocation_list
from canasta.service.cards import card_balance
from canasta.service.programmes import list_programmes
from canasta.service.settings import Settings
from canasta.service.transparency import keyring_of

_bearer = HTTPBearer(auto_error=False, description="The outlet's API token")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": text}
    for status, text in [
        (401, "Missing or invalid outlet token"),
        (403, "Card withdrawn, or outlet acting for another outlet"),
        (404, "Unknown card or programme"),
        (409, "Insufficient balance or no open cycle"),
        (422, "Invalid request, malformed card id, reused idempotency key, wrong programme"),
        (503, "May not have been recorded; retry with the same key, which records it at most once"),
    ]
}


_REDEMPTION_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": RedemptionRequest.model_json_schema()}},
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "pattern": KEY_PATTERN},
            "description": "The idempotency key, if not sent in the body",
        }
    ],
    "security": [{"HTTPBearer": []}],
}


def create_app(canasta: Canasta) -> FastAPI:
    notifier = Notifier(canasta)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far lives as long as the server: move it out of the cyclic
        # collector's sight, so a full collection does not stall a batch for tens of ms.
        gc.collect()
        gc.freeze()
        # Requests allocate many short-lived objects; collecting the young generation every
        # 700 allocations (the default) cost a few per cent of a request for nothing.
        gc.set_threshold(50_000, 20, 20)
        canasta.desk.start()
        notifier.start()
        try:
            yield
        finally:
            notifier.stop()
            canasta.desk.stop()

    app = FastAPI(
        title="canasta",
        version=__version__,
        summary="Rationed goods and benefits: outlets redeem against published entitlements.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        # No request tracing: canasta keeps no record of who asked what beyond its own logs,
        # and the per-request checks cost a tenth of a redemption.
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    problems.install(app)

    async def authenticate_token(token: str) -> str:
        """The outlet a bearer token belongs to (cached, so the hot path reads no table)."""
        cached = canasta.outlets.cached(token)
        if cached is not None:
            return cached
        return await run_in_threadpool(canasta.outlets.authenticate, token)

    async def outlet(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> str:
        if credentials is None:
            raise Unauthenticated("send the outlet's API token as 'Authorization: Bearer <token>'")
        return await authenticate_token(credentials.credentials)

    Outlet = Annotated[str, Depends(outlet)]

    @functools.cache
    def issuer_keys() -> tuple[Verifier, ...]:
        """The key scanned cards are checked with (looked up once, on first use)."""
        return (keyring_of(canasta.engine).issuer.verifier,)

    endpoint = RedemptionEndpoint(canasta.desk, authenticate_token, canasta.log, issuer_keys)

    @app.post(
        "/api/v1/redemptions",
        status_code=201,
        response_model=ReceiptOut,
        responses=_ERRORS,
        tags=["redemptions"],
        openapi_extra=_REDEMPTION_OPENAPI,
    )
    async def redeem(request: Request) -> Response:
        """Hand out ``quantity`` of ``programme`` to the card's holder. Answered only once the
        redemption is committed. A retry with the same idempotency key gets the same receipt
        (with ``Idempotent-Replayed: true``) and is recorded once."""
        # Served by FastPath in front of this app; this route documents it in the OpenAPI
        # and answers when the app runs without the fast path. Both use the same endpoint.
        headers = request.headers
        status, content, extra = await endpoint.answer(
            headers.get("authorization"), headers.get("idempotency-key"), await request.body()
        )
        return Response(content, status_code=status, headers={k.decode(): v.decode() for k, v in extra})

    @app.get(
        "/api/v1/cards/{card}/balance",
        response_model=BalanceOut,
        responses=_ERRORS,
        tags=["cards"],
    )
    def balance(card: str, _outlet: Outlet) -> BalanceOut:
        """What the card's holder may still take in each open cycle."""
        found, lines = card_balance(canasta.engine, card)
        return BalanceOut(
            card=format_card_id(found.id),
            status=found.status.value,
            balances=[
                BalanceLine(
                    programme=b.programme,
                    unit=b.unit,
                    cycle=b.cycle_id,
                    starts_on=b.starts_on.isoformat(),
                    ends_on=b.ends_on.isoformat(),
                    entitled=format_milli(b.entitled),
                    redeemed=format_milli(b.redeemed),
                    remaining=format_milli(b.remaining),
                    entitlement=b.entitlement_id,
                )
                for b in lines
            ],
        )

    def same_outlet(code: str, caller: str) -> None:
        if code != caller:
            raise OutletMismatch(f"this token belongs to outlet {caller!r}, not {code!r}")

    def offline_view(code: str) -> OfflineOut:
        return OfflineOut(
            outlet=code,
            allowances=[
                AllowanceOut(**a.as_dict()) for a in offline_service.allowances(canasta.engine, code)
            ],
            issuer_key=str(keyring_of(canasta.engine).issuer.verifier),
        )

    @app.post("/api/v1/outlets/{code}/enrol", response_model=OfflineOut, responses=_ERRORS, tags=["offline"])
    def enrol(code: str, body: EnrolRequest, caller: Outlet) -> OfflineOut:
        """Record the key the outlet signs its journal with (once; the same key again is
        harmless), and answer with what it needs offline: its allowances and the issuer's key."""
        same_outlet(code, caller)
        offline_service.enrol(canasta.engine, code, body.public_key)
        return offline_view(code)

    @app.get(
        "/api/v1/outlets/{code}/allowance", response_model=OfflineOut, responses=_ERRORS, tags=["offline"]
    )
    def allowance(code: str, caller: Outlet) -> OfflineOut:
        """What the outlet may hand out offline now, per programme with an open cycle."""
        same_outlet(code, caller)
        return offline_view(code)

    @app.post("/api/v1/outlets/{code}/sync", response_model=SyncOut, responses=_ERRORS, tags=["offline"])
    def sync(code: str, body: SyncRequest, caller: Outlet) -> SyncOut:
        """Upload journal entries; all or nothing. Each comes back with its outcome, so the
        outlet can mark it synced; a retry is answered ``already``."""
        same_outlet(code, caller)
        entries = [SignedEntry.from_dict(e, f"entries[{i}]") for i, e in enumerate(body.entries)]
        report = offline_service.sync(canasta.engine, code, entries)
        return SyncOut(
            outlet=report.outlet,
            outcomes=[
                EntryOutcomeOut(
                    counter=o.counter,
                    outcome=o.outcome,
                    ledger_position=o.ledger_seq,
                    applied=o.applied,
                    shortfall=o.shortfall,
                    reason=o.reason,
                )
                for o in report.outcomes
            ],
            gaps=[[a, b] for a, b in report.gaps],
            highest=report.highest,
        )

    @app.get(
        "/api/v1/cards/revocations",
        response_class=PlainTextResponse,
        tags=["cards"],
        responses={200: {"content": {"text/plain": {}}, "description": "The signed revocation list"}},
    )
    async def revocations() -> PlainTextResponse:
        """Every lost and revoked card, one ``CARDID lost|revoked`` line each sorted by id, as a
        note signed by the issuer key (public, no token: it names only card ids). Outlets
        download it to refuse withdrawn cards offline and check it with the issuer's key from
        ``GET /log/v1/keys``."""
        note = await run_in_threadpool(
            revocation_list, canasta.engine, keyring_of(canasta.engine), datetime.now(UTC)
        )
        return PlainTextResponse(
            note, media_type="text/plain; charset=utf-8", headers={"cache-control": "public, max-age=60"}
        )

    @app.get(
        "/api/v1/entitlements/{entitlement}/explanation",
        response_model=ExplanationOut,
        responses={
            404: {"model": Problem, "description": "No such entitlement for this card"},
            422: {"model": Problem, "description": "Malformed card id or language"},
        },
        tags=["entitlements"],
    )
    def explanation(
        entitlement: Annotated[int, Path(ge=1, le=2**63 - 1)],
        card: Annotated[
            str,
            Header(
                alias="Canasta-Card",
                description="The card of the household or vehicle the entitlement belongs to; "
                "without it (or with another card) the entitlement is not found.",
            ),
        ],
        lang: Annotated[Literal["en", "es"] | None, Query(description="en or es")] = None,
        accept_language: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> ExplanationOut:
        """Why the card's holder gets what it gets in a cycle: each clause of the published
        rule, the values it used (as the cycle run read them) and the result, in plain
        English or Spanish (``lang``, or the Accept-Language header)."""
        language = lang or ("es" if (accept_language or "").strip().lower().startswith("es") else "en")
        found = rules.explain_entitlement(canasta.engine, entitlement, language, card=card)
        e = found.explanation
        eligible = e.eligible is True
        return ExplanationOut(
            entitlement=entitlement,
            language=e.language,
            cycle=found.cycle_id or 0,
            starts_on=found.starts_on.isoformat(),
            ends_on=found.ends_on.isoformat() if found.ends_on else "",
            policy=PolicyRef(programme=e.programme, version=e.policy_version, sha256=e.policy_sha256),
            eligible=e.eligible,
            summary=e.summary,
            combine=e.combine,
            clauses=[
                ClauseOut(
                    text=c.text,
                    used=[FactUsed(what=w, value=v) for w, v in c.used],
                    holds=c.holds,
                    result=c.result,
                )
                for c in e.clauses
            ],
            quota=QuotaOut(
                text=e.quota_text,
                used=[FactUsed(what=w, value=v) for w, v in e.quota_used],
                computed=e.quota_raw,
                adjustments=e.adjustments,
                quantity=format_milli(e.quantity),
                unit=e.unit,
            )
            if eligible
            else None,
            appeal=APPEAL[e.language],
        )

    @app.get("/api/v1/health", tags=["operations"])
    def health() -> dict[str, Any]:
        """Liveness and the redemption desk's counters."""
        stats = canasta.desk.stats
        return {
            "status": "ok",
            "version": __version__,
            "database": canasta.engine.dialect.name,
            "batches": stats.batches,
            "redemptions": stats.redemptions,
            "largest_batch": stats.largest_batch,
            "failed_batches": stats.failed_batches,
            "busy_seconds": round(stats.busy_seconds, 3),
            "slowest_batch_seconds": round(stats.slowest_batch_seconds, 4),
        }

    @app.get("/problems/{slug}", include_in_schema=False)
    def problem_type(slug: str, request: Request) -> Response:
        for cls, status, title in problems.STATUS:
            if cls.code == slug:
                return Response(
                    f"{title} (HTTP {status}): {(cls.__doc__ or title).strip()}\n",
                    media_type="text/plain",
                )
        return problems.problem(404, "http-404", "Not found", f"no problem type {slug!r}", request.url.path)

    def unit_of(programme: str) -> str | None:
        return {p.name: p.unit for p in list_programmes(canasta.engine)}.get(programme)

    app.include_router(receipt_router(canasta.log, unit_of))
    app.include_router(log_router(canasta.log))
    app.include_router(dci_router(canasta))
    app.state.notifier = notifier
    pages.install(app, canasta)
    app.state.redemptions = endpoint
    return app


def create_server(canasta: Canasta) -> ASGIApp:
    """What ``canasta serve`` runs: the app, with the redemption route answered up front."""
    app = create_app(canasta)
    return FastPath(app, app.state.redemptions)


def create_server_from_env() -> ASGIApp:
    """The server for each worker process of ``canasta serve --workers N`` (settings from the
    environment, which ``serve`` sets)."""
    return create_server(bootstrap(Settings.from_env(), inline=True))
