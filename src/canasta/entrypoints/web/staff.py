"""The staff pages under /staff.

Every page names the permission it needs (``authz.Permission``), and the guard asks the
service layer's matrix before the handler runs; the services a handler calls check again
where they read a person's record. ``app.state.staff_permissions`` lists each route with
its permission, so a test can walk every route with every role.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from canasta.domain.errors import CanastaError, Conflict, FormExpired, InvalidInput, NotFound, SignInLocked
from canasta.entrypoints.web import security
from canasta.entrypoints.web.charts import PairedBar, paired_bar_chart
from canasta.entrypoints.web.errors import SignInNeeded, message_for
from canasta.entrypoints.web.jobs import Job, Jobs
from canasta.entrypoints.web.params import Id, Mark, Offset
from canasta.entrypoints.web.templating import gettext, language_of, render
from canasta.policy.language import PolicyRejected
from canasta.service import access, appeals, dedup, offline, programmes, records, rules, sessions, staff
from canasta.service.authz import ROLE_TITLES, Permission, Role, Staff, permissions_of, require
from canasta.service.outlets import count_outlets, list_outlets

PATH = "/staff"
OUTLETS_PAGE = 100
APPEALS_PAGE = 100
P = Permission


@dataclass(frozen=True, slots=True)
class Signed:
    """A signed-in member of staff and their session's CSRF token."""

    actor: Staff
    csrf: str
    token: str


Route = tuple[str, str]


def staff_router(
    engine: sa.Engine, jobs: Jobs, dashboard: Callable[[sa.Engine], Any]
) -> tuple[APIRouter, dict[Route, Permission | None]]:
    router = APIRouter(prefix=PATH, include_in_schema=False)
    permissions: dict[Route, Permission | None] = {}

    def signed_in(request: Request) -> Signed:
        token = request.cookies.get(security.STAFF_COOKIE)
        found = sessions.find(engine, "staff", token)
        actor = staff.staff_by_id(engine, int(found.subject)) if found is not None else None
        if found is None or actor is None or token is None:
            raise SignInNeeded(f"{PATH}/login")
        return Signed(actor, found.csrf_token, token)

    def guard(permission: Permission | None) -> Callable[..., Signed]:
        def check(request: Request, who: Annotated[Signed, Depends(signed_in)]) -> Signed:
            # The same ``signed_in`` as the handler's: FastAPI runs it once per request.
            if permission is not None:
                require(who.actor, permission)
            if request.method == "POST":
                # The CSRF field is read from the form by the handler; here only the origin.
                security.check_origin(request)
            return who

        return check

    def route(method: str, path: str, permission: Permission | None) -> Callable[[Callable[..., Any]], Any]:
        permissions[(method, PATH + path)] = permission
        dependency = Depends(guard(permission))
        register = router.get if method == "GET" else router.post
        return register(path, dependencies=[dependency])

    Who = Annotated[Signed, Depends(signed_in)]
    Csrf = Annotated[str, Form(max_length=64)]

    def check_csrf(who: Signed, sent: str) -> None:
        if not sessions.csrf_matches(who.csrf, sent):
            raise FormExpired("the form has expired; load the page again and resend it")

    def page(
        request: Request, template: str, who: Signed, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        can = permissions_of(who.actor.role)
        return render(
            request,
            template,
            {
                "me": who.actor,
                "role_title": ROLE_TITLES[who.actor.role],
                "csrf": who.csrf,
                "can": {p.value for p in can},
                **context,
            },
            status_code,
        )

    # ---------------------------------------------------------------- sign in and out

    def login_page(request: Request, error: str | None = None, status_code: int = 200) -> Response:
        return security.sign_in_page(request, "staff/login.html", PATH, error, status_code)

    @router.get("/login")
    def login_form(request: Request) -> Response:
        return login_page(request)

    @router.post("/login")
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=64)] = "",
        password: Annotated[str, Form(max_length=200)] = "",
        pre: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        security.check_pre_token(request, pre)
        try:
            actor = staff.authenticate(engine, username, password)
        except SignInLocked as locked:
            return login_page(request, message_for(request, locked), 429)
        except CanastaError as refused:
            return login_page(request, message_for(request, refused), 401)
        sessions.end(engine, request.cookies.get(security.STAFF_COOKIE))
        token, _ = sessions.start(engine, "staff", str(actor.id))
        response = RedirectResponse(f"{PATH}/", status_code=303)
        security.set_session_cookie(response, request, security.STAFF_COOKIE, token, PATH)
        security.clear_cookie(response, request, security.PRE_COOKIE, PATH)
        return response

    @route("POST", "/logout", None)
    def logout(request: Request, who: Who, csrf: Csrf = "") -> Response:
        check_csrf(who, csrf)
        sessions.end(engine, who.token)
        response = RedirectResponse(f"{PATH}/login", status_code=303)
        security.clear_cookie(response, request, security.STAFF_COOKIE, PATH)
        return response

    # ---------------------------------------------------------------- dashboard

    @route("GET", "/", P.DASHBOARD)
    def home(request: Request, who: Who) -> Response:
        board = dashboard(engine)
        lang = language_of(request)
        series = (gettext(lang, "coverage"), gettext(lang, "uptake"))
        pooled = gettext(lang, "smaller regions together")
        charts = [
            paired_bar_chart(
                gettext(lang, "Coverage and uptake by region: %(p)s") % {"p": p.programme},
                [
                    PairedBar(
                        f"{pooled} {r.region}" if r.region.startswith("(") else r.region,
                        None if r.coverage is None else r.coverage * 100,
                        None if r.uptake is None else r.uptake * 100,
                    )
                    for r in p.regions
                ],
                series=series,
            )
            for p in board.programmes
        ]
        return page(
            request,
            "staff/dashboard.html",
            who,
            board=board,
            charts=charts,
            open_appeals=appeals.count_open(engine),
            open_reviews=dedup.count_open(engine),
        )

    # ---------------------------------------------------------------- registry

    @route("GET", "/registry", P.READ_RECORDS)
    def registry(request: Request, who: Who) -> Response:
        return page(request, "staff/registry.html", who, hits=None, query="", purpose="")

    @route("POST", "/registry", P.READ_RECORDS)
    def search(
        request: Request,
        who: Who,
        csrf: Csrf = "",
        query: Annotated[str, Form(max_length=100)] = "",
        purpose: Annotated[str, Form(max_length=300)] = "",
    ) -> Response:
        check_csrf(who, csrf)
        try:
            hits = records.search(engine, who.actor, query, purpose)
        except InvalidInput as bad:
            return page(
                request,
                "staff/registry.html",
                who,
                422,
                hits=None,
                query=query,
                purpose=purpose,
                error=bad.message,
            )
        return page(request, "staff/registry.html", who, hits=hits, query=query, purpose=purpose)

    @route("GET", "/households/{ref}", P.READ_RECORDS)
    def household_form(request: Request, who: Who, ref: str) -> Response:
        return page(
            request, "staff/purpose.html", who, ref=ref, action=f"{PATH}/households/{ref}", purpose=""
        )

    @route("POST", "/households/{ref}", P.READ_RECORDS)
    def household(
        request: Request,
        who: Who,
        ref: str,
        csrf: Csrf = "",
        purpose: Annotated[str, Form(max_length=300)] = "",
    ) -> Response:
        check_csrf(who, csrf)
        try:
            record = records.open_household(engine, who.actor, ref, purpose)
        except InvalidInput as bad:
            return page(
                request,
                "staff/purpose.html",
                who,
                422,
                ref=ref,
                action=f"{PATH}/households/{ref}",
                purpose=purpose,
                error=bad.message,
            )
        return page(request, "staff/household.html", who, record=record, purpose=purpose)

    # ---------------------------------------------------------------- duplicate review

    @route("GET", "/review", P.REVIEW_DUPLICATES)
    def review_queue(request: Request, who: Who, after: Offset = 0) -> Response:
        items = dedup.open_items(engine, limit=50, after=after)
        return page(
            request, "staff/review.html", who, items=items, total=dedup.count_open(engine), after=after
        )

    @route("GET", "/review/{item_id}", P.REVIEW_DUPLICATES)
    def review_item(request: Request, who: Who, item_id: Id) -> Response:
        item = records.review_item(engine, who.actor, item_id)
        return page(request, "staff/review_item.html", who, item=item)

    @route("POST", "/review/{item_id}", P.REVIEW_DUPLICATES)
    def review_decide(
        request: Request,
        who: Who,
        item_id: Id,
        csrf: Csrf = "",
        decision: Annotated[str, Form(max_length=16)] = "",
        note: Annotated[str, Form(max_length=500)] = "",
    ) -> Response:
        check_csrf(who, csrf)
        records.decide_review(engine, who.actor, item_id, decision, note or None)
        following = dedup.open_items(engine, limit=1, after=item_id)
        target = f"{PATH}/review/{following[0].id}" if following else f"{PATH}/review"
        return RedirectResponse(target, status_code=303)

    # ---------------------------------------------------------------- policies

    @route("GET", "/policies", P.VIEW_POLICIES)
    def policy_list(request: Request, who: Who) -> Response:
        shown = []
        for programme in programmes.list_programmes(engine):
            try:
                version, sha, text = rules.published_text(engine, programme.name)
            except NotFound:
                version, sha, text = 0, "", ""
            shown.append((programme, version, sha, text))
        return page(request, "staff/policies.html", who, programmes=shown)

    def _policy_form(
        request: Request, who: Signed, name: str, text: str, status_code: int = 200, **extra: Any
    ) -> HTMLResponse:
        version, sha, current = rules.published_text(engine, name)
        return page(
            request,
            "staff/policy.html",
            who,
            status_code,
            programme=name,
            version=version,
            sha=sha,
            current=current,
            text=text or current,
            **extra,
        )

    @route("GET", "/policies/{name}", P.VIEW_POLICIES)
    def policy(request: Request, who: Who, name: str) -> Response:
        return _policy_form(request, who, name, "")

    @route("POST", "/policies/{name}/diff", P.VIEW_POLICIES)
    def policy_diff(
        request: Request,
        who: Who,
        name: str,
        csrf: Csrf = "",
        text: Annotated[str, Form(max_length=100_000)] = "",
    ) -> Response:
        check_csrf(who, csrf)
        try:
            impact, rows = rules.impact_for(engine, who.actor, name, text, language_of(request))
        except PolicyRejected as rejected:
            return _policy_form(request, who, name, text, 422, problems=[str(p) for p in rejected.problems])
        return _policy_form(request, who, name, text, impact=impact, rows=rows)

    @route("POST", "/policies/{name}/publish", P.PUBLISH_POLICIES)
    def policy_publish(
        request: Request,
        who: Who,
        name: str,
        csrf: Csrf = "",
        text: Annotated[str, Form(max_length=100_000)] = "",
    ) -> Response:
        check_csrf(who, csrf)
        try:
            published = rules.publish_for(engine, who.actor, name, text)
        except PolicyRejected as rejected:
            return _policy_form(request, who, name, text, 422, problems=[str(p) for p in rejected.problems])
        except Conflict as refused:  # the same text again, or a version already taken
            return _policy_form(request, who, name, text, 409, problems=[refused.message])
        except InvalidInput as refused:  # written on another programme's page
            return _policy_form(request, who, name, text, 422, problems=[refused.message])
        return _policy_form(request, who, name, "", published=published)

    # ---------------------------------------------------------------- cycles

    @route("GET", "/cycles", P.RUN_CYCLES)
    def cycle_list(request: Request, who: Who) -> Response:
        return page(
            request,
            "staff/cycles.html",
            who,
            cycles=programmes.list_cycles(engine, latest=30),
            programmes=programmes.list_programmes(engine),
            jobs=jobs.recent(),
            today=date.today().isoformat(),
        )

    @route("POST", "/cycles", P.RUN_CYCLES)
    def cycle_run(
        request: Request,
        who: Who,
        csrf: Csrf = "",
        programme: Annotated[str, Form(max_length=64)] = "",
        starts_on: Annotated[str, Form(max_length=10)] = "",
    ) -> Response:
        check_csrf(who, csrf)
        known = {p.name for p in programmes.list_programmes(engine)}
        if programme not in known:
            raise NotFound(f"there is no programme {programme!r}")
        starts = programmes.parse_period(starts_on)

        def work(job: Job) -> object:
            job.stage = "computing entitlements"
            return programmes.run_cycle_for(engine, who.actor, programme, starts)

        job = jobs.start(
            f"cycle:{programme}", f"{programme} from {starts.isoformat()}", who.actor.username, work
        )
        return RedirectResponse(f"{PATH}/cycles/jobs/{job.id}", status_code=303)

    @route("GET", "/cycles/jobs/{job_id}", P.RUN_CYCLES)
    def cycle_job(request: Request, who: Who, job_id: Id) -> Response:
        job = jobs.get(job_id)
        if job is None:
            raise NotFound(f"there is no job {job_id}")
        refresh = {"refresh": "2"} if job.finished is None else {}
        return page(request, "staff/job.html", who, job=job, refresh=bool(refresh))

    # ---------------------------------------------------------------- appeals

    @route("GET", "/appeals", P.VIEW_APPEALS)
    def appeal_inbox(
        request: Request, who: Who, status: str = "open", decided: Mark = None, after: Mark = None
    ) -> Response:
        shown = appeals.inbox(engine, who.actor, status, APPEALS_PAGE, after)
        more = shown[-1].id if len(shown) == APPEALS_PAGE else None
        return page(
            request, "staff/appeals.html", who, appeals=shown, status=status, decided=decided, more=more
        )

    @route("GET", "/appeals/{appeal_id}", P.VIEW_APPEALS)
    def appeal_form(request: Request, who: Who, appeal_id: Id) -> Response:
        return page(
            request,
            "staff/purpose.html",
            who,
            ref=f"#{appeal_id}",
            action=f"{PATH}/appeals/{appeal_id}",
            purpose="",
        )

    def _appeal_page(
        request: Request, who: Signed, appeal_id: int, purpose: str, status_code: int = 200, **extra: Any
    ) -> HTMLResponse:
        found = appeals.open_appeal(engine, who.actor, appeal_id, purpose)
        explained = None
        if found.entitlement_id is not None:
            try:
                explained = rules.explain_entitlement(engine, found.entitlement_id, language_of(request))
            except NotFound:
                explained = None
        return page(
            request,
            "staff/appeal.html",
            who,
            status_code,
            appeal=found,
            purpose=purpose,
            explained=explained,
            **extra,
        )

    @route("POST", "/appeals/{appeal_id}", P.VIEW_APPEALS)
    def appeal(
        request: Request,
        who: Who,
        appeal_id: Id,
        csrf: Csrf = "",
        purpose: Annotated[str, Form(max_length=300)] = "",
    ) -> Response:
        check_csrf(who, csrf)
        return _open_or_ask(request, who, appeal_id, purpose)

    def _open_or_ask(
        request: Request, who: Signed, appeal_id: int, purpose: str, status_code: int = 200, **extra: Any
    ) -> HTMLResponse:
        """The appeal under the stated purpose, or the purpose form again if it is not one."""
        try:
            return _appeal_page(request, who, appeal_id, purpose, status_code, **extra)
        except InvalidInput as bad:
            return page(
                request,
                "staff/purpose.html",
                who,
                422,
                ref=f"#{appeal_id}",
                action=f"{PATH}/appeals/{appeal_id}",
                purpose=purpose,
                error=bad.message,
            )

    @route("POST", "/appeals/{appeal_id}/decision", P.DECIDE_APPEALS)
    def appeal_decide(
        request: Request,
        who: Who,
        appeal_id: Id,
        csrf: Csrf = "",
        outcome: Annotated[str, Form(max_length=16)] = "",
        reason: Annotated[str, Form(max_length=4000)] = "",
        purpose: Annotated[str, Form(max_length=300)] = "",
    ) -> Response:
        check_csrf(who, csrf)
        try:
            appeals.decide(engine, who.actor, appeal_id, outcome, reason)
        except (InvalidInput, Conflict) as bad:
            # Shown again under the purpose the officer stated when opening it (a read again).
            return _open_or_ask(request, who, appeal_id, purpose, 422, error=bad.message, reason=reason)
        return RedirectResponse(f"{PATH}/appeals?decided={appeal_id}", status_code=303)

    # ---------------------------------------------------------------- outlets

    @route("GET", "/outlets", P.VIEW_OUTLETS)
    def outlet_list(request: Request, who: Who, start: Offset = 0) -> Response:
        start = max(0, start)
        return page(
            request,
            "staff/outlets.html",
            who,
            outlets=list_outlets(engine, OUTLETS_PAGE, start),
            count=count_outlets(engine),
            start=start,
            conflicts=offline.open_conflicts(engine, limit=50),
        )

    @route("POST", "/outlets/conflicts/{conflict_id}", P.MANAGE_OUTLETS)
    def settle(
        request: Request,
        who: Who,
        conflict_id: Id,
        csrf: Csrf = "",
        note: Annotated[str, Form(max_length=500)] = "",
    ) -> Response:
        check_csrf(who, csrf)
        offline.settle_conflict_for(engine, who.actor, conflict_id, note)
        return RedirectResponse(f"{PATH}/outlets", status_code=303)

    # ---------------------------------------------------------------- oversight

    @route("GET", "/access-log", P.READ_ACCESS_LOG)
    def access_log(request: Request, who: Who, actor: str = "", before: Mark = None) -> Response:
        accesses = access.recent(engine, who.actor, 100, actor or None, before)
        more = accesses[-1].id if len(accesses) == 100 else None
        return page(request, "staff/access_log.html", who, accesses=accesses, actor=actor, more=more)

    @route("GET", "/users", P.MANAGE_STAFF)
    def users(request: Request, who: Who) -> Response:
        return page(
            request,
            "staff/users.html",
            who,
            accounts=staff.list_accounts(engine, who.actor),
            roles=list(Role),
            titles=ROLE_TITLES,
        )

    @route("POST", "/users", P.MANAGE_STAFF)
    def add_user(
        request: Request,
        who: Who,
        csrf: Csrf = "",
        username: Annotated[str, Form(max_length=64)] = "",
        name: Annotated[str, Form(max_length=100)] = "",
        role: Annotated[str, Form(max_length=24)] = "",
        password: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        check_csrf(who, csrf)
        try:
            staff.add_account(engine, who.actor, username, name, role, password)
        except (InvalidInput, Conflict) as bad:
            return page(
                request,
                "staff/users.html",
                who,
                422,
                accounts=staff.list_accounts(engine, who.actor),
                roles=list(Role),
                titles=ROLE_TITLES,
                error=bad.message,
                form={"username": username, "name": name, "role": role},
            )
        return RedirectResponse(f"{PATH}/users", status_code=303)

    @route("POST", "/users/{username}/active", P.MANAGE_STAFF)
    def set_active(
        request: Request,
        who: Who,
        username: str,
        csrf: Csrf = "",
        active: Annotated[str, Form(max_length=5)] = "",
    ) -> Response:
        check_csrf(who, csrf)
        staff.set_active(engine, who.actor, username, active == "yes")
        return RedirectResponse(f"{PATH}/users", status_code=303)

    return router, permissions
