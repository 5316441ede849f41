"""The beneficiary portal under /portal: sign in with card and PIN; entitlements and why;
what was handed out, with receipts to download and verify; who read the record; appeals.

Light pages for a cheap phone: no JavaScript, no images but the card holder's own data,
each page a few kilobytes.
"""

import json
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from canasta.domain.errors import CanastaError, InvalidInput, NotFound, SignInLocked
from canasta.entrypoints.web import security
from canasta.entrypoints.web.errors import SignInNeeded, message_for
from canasta.entrypoints.web.params import Id, Mark
from canasta.entrypoints.web.templating import language_of, render
from canasta.service import access, appeals, portal, sessions
from canasta.service.transparency import LogView

PATH = "/portal"
APPEALS_PAGE = 10


@dataclass(frozen=True, slots=True)
class Visitor:
    """A signed-in card holder."""

    card_id: str
    csrf: str
    token: str


def portal_router(engine: sa.Engine, view: LogView) -> APIRouter:
    router = APIRouter(prefix=PATH, include_in_schema=False)

    def visitor(request: Request) -> Visitor:
        token = request.cookies.get(security.PORTAL_COOKIE)
        found = sessions.find(engine, "portal", token)
        if found is None or token is None:
            raise SignInNeeded(f"{PATH}/login")
        return Visitor(found.subject, found.csrf_token, token)

    Signed = Annotated[Visitor, Depends(visitor)]

    def check(request: Request, who: Visitor, sent: str | None) -> None:
        security.check_token(request, who.csrf, sent)

    def page(
        request: Request, template: str, who: Visitor, status_code: int = 200, **context: object
    ) -> HTMLResponse:
        holder = portal.holder(engine, who.card_id)
        return render(request, template, {"holder": holder, "csrf": who.csrf, **context}, status_code)

    def login_page(request: Request, error: str | None = None, status_code: int = 200) -> Response:
        return security.sign_in_page(request, "portal/login.html", PATH, error, status_code)

    @router.get("/login")
    def login_form(request: Request) -> Response:
        return login_page(request)

    @router.post("/login")
    def login(
        request: Request,
        card: Annotated[str, Form(max_length=40)] = "",
        pin: Annotated[str, Form(max_length=16)] = "",
        pre: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        security.check_pre_token(request, pre)
        try:
            card_id = portal.sign_in(engine, card, pin)
        except SignInLocked as locked:
            return login_page(request, message_for(request, locked), 429)
        except CanastaError as refused:
            return login_page(request, message_for(request, refused), 401)
        # Whatever session cookie came with the request is ended, and a new one is made:
        # a token planted before sign-in never becomes a signed-in session.
        sessions.end(engine, request.cookies.get(security.PORTAL_COOKIE))
        token, _ = sessions.start(engine, "portal", card_id)
        response = RedirectResponse(f"{PATH}/", status_code=303)
        security.set_session_cookie(response, request, security.PORTAL_COOKIE, token, PATH)
        security.clear_cookie(response, request, security.PRE_COOKIE, PATH)
        return response

    @router.post("/logout")
    def logout(request: Request, who: Signed, csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
        check(request, who, csrf)
        sessions.end(engine, who.token)
        response = RedirectResponse(f"{PATH}/login", status_code=303)
        security.clear_cookie(response, request, security.PORTAL_COOKIE, PATH)
        return response

    @router.get("/")
    def home(request: Request, who: Signed) -> Response:
        lang = language_of(request)
        found = portal.entitlements(engine, who.card_id, lang)
        return page(request, "portal/home.html", who, entitled=found)

    @router.get("/history")
    def history(request: Request, who: Signed, before: Mark = None) -> Response:
        taken = portal.history(engine, who.card_id, limit=50, before=before)
        more = taken[-1].ledger_seq if len(taken) == 50 else None
        return page(request, "portal/history.html", who, taken=taken, more=more)

    @router.get("/receipts/{ledger_seq}.json")
    async def receipt(ledger_seq: Id, who: Signed) -> Response:
        found = await run_in_threadpool(portal.receipt, view, who.card_id, ledger_seq)
        body = json.dumps(found.as_dict(), indent=2, sort_keys=True) + "\n"
        return Response(
            body,
            media_type="application/json",
            headers={"content-disposition": f'attachment; filename="canasta-receipt-{ledger_seq}.json"'},
        )

    @router.get("/access")
    def access_log(request: Request, who: Signed, before: Mark = None) -> Response:
        accesses = portal.access_log(engine, who.card_id, before)
        more = accesses[-1].id if len(accesses) == access.PAGE else None
        return page(request, "portal/access.html", who, accesses=accesses, more=more)

    def appeals_page(
        request: Request,
        who: Visitor,
        error: str | None = None,
        status_code: int = 200,
        before: int | None = None,
        filed: bool = False,
        **form: object,
    ) -> HTMLResponse:
        lang = language_of(request)
        shown = appeals.appeals_of_holder(engine, who.card_id, APPEALS_PAGE, before)
        return page(
            request,
            "portal/appeals.html",
            who,
            status_code,
            appeals=shown,
            more=shown[-1].id if len(shown) == APPEALS_PAGE else None,
            entitled=portal.entitlements(engine, who.card_id, lang),
            taken=portal.history(engine, who.card_id, limit=20),
            error=error,
            form=form,
            filed=filed,
        )

    @router.get("/appeals")
    def appeal_list(
        request: Request,
        who: Signed,
        entitlement: Mark = None,
        redemption: Mark = None,
        before: Mark = None,
        filed: Mark = None,
    ) -> Response:
        subject = "entitlement" if entitlement else "redemption" if redemption else ""
        return appeals_page(
            request,
            who,
            before=before,
            filed=bool(filed),
            subject=subject,
            entitlement=entitlement,
            redemption=redemption,
        )

    @router.post("/appeals")
    def file_appeal(
        request: Request,
        who: Signed,
        csrf: Annotated[str, Form(max_length=64)] = "",
        subject: Annotated[str, Form(max_length=16)] = "",
        statement: Annotated[str, Form(max_length=4000)] = "",
        entitlement: Annotated[str, Form(max_length=20)] = "",
        redemption: Annotated[str, Form(max_length=20)] = "",
    ) -> Response:
        check(request, who, csrf)
        try:
            appeals.file_appeal(
                engine,
                who.card_id,
                subject,
                statement,
                _number(entitlement, "entitlement"),
                _number(redemption, "redemption"),
            )
        except (InvalidInput, NotFound) as refused:
            return appeals_page(
                request,
                who,
                message_for(request, refused),
                422,
                subject=subject,
                statement=statement,
                entitlement=entitlement,
                redemption=redemption,
            )
        return RedirectResponse(f"{PATH}/appeals?filed=1", status_code=303)

    return router


def _number(text: str, what: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput(f"choose the {what} from the list")
    return int(text)
