"""A walk of every staff route with every role: each route declares the permission it
needs, a role the matrix refuses gets 403 (and changes nothing), a role it allows never
does, and without a staff session every route sends the reader to the sign-in page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fastapi.routing
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import ASGIApp

from canasta.adapters.tables import access_log, appeals, policies, staff_users, web_sessions
from canasta.entrypoints.api.app import create_server
from canasta.service import appeals as appeal_service
from canasta.service.authz import MATRIX, Permission, Role, allowed, permissions_of
from canasta.service.bootstrap import bootstrap
from canasta.service.settings import Settings
from canasta.service.staff import create_account
from tests.web import PASSWORD, People, build_people, hidden, portal_sign_in, staff_sign_in

Route = tuple[str, str]

#: The only staff routes open without a session.
SIGN_IN: frozenset[Route] = frozenset({("GET", "/staff/login"), ("POST", "/staff/login")})
#: Statuses an allowed role may get: a page, a redirect, a thing that is not there, a form
#: refused. Never 403, never a server error.
ALLOWED_STATUSES = frozenset({200, 303, 404, 422})
#: Ids of things the walk does not create (a duplicate-review item needs a deduplication
#: run; an offline conflict needs two outlets' journals; a job needs a cycle run). The guard
#: answers before the handler looks anything up, so an id that is not there tests it as well.
MISSING_ID = 987_654
#: An account that may be disabled by the walk without harm.
SPARE = "spare-account"


@dataclass
class Site:
    people: People
    server: ASGIApp
    app: FastAPI
    engine: sa.Engine
    client: TestClient
    _others: list[TestClient] = field(default_factory=list)

    def browser(self) -> TestClient:
        """A browser of its own (its own cookies) for one more person."""
        client = TestClient(self.server, raise_server_exceptions=False)
        self._others.append(client)
        return client

    def close(self) -> None:
        for client in self._others:
            client.close()


@pytest.fixture
def site(engine: sa.Engine, database_url: str) -> Iterator[Site]:
    people = build_people(engine)
    canasta = bootstrap(Settings.load(database_url))
    server = create_server(canasta)
    with TestClient(server, raise_server_exceptions=False) as client:
        found = Site(people, server, app_of(server), engine, client)
        try:
            yield found
        finally:
            found.close()
    canasta.close()


@pytest.fixture
def bare_app(database_url: str) -> Iterator[FastAPI]:
    """The app over an empty database: enough to read its routes."""
    canasta = bootstrap(Settings.load(database_url))
    try:
        yield app_of(create_server(canasta))
    finally:
        canasta.close()


def app_of(server: ASGIApp) -> FastAPI:
    """The FastAPI app inside what ``canasta serve`` runs (which answers redemptions itself)."""
    app = getattr(server, "app", server)
    assert isinstance(app, FastAPI)
    return app


def declared_routes(app: FastAPI) -> set[Route]:
    """Every (method, path) the app serves under /staff, GET and POST."""
    # FastAPI ≥ 0.165 keeps included routers as one route each; iter_route_contexts
    # flattens them. Older versions flatten app.routes themselves.
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: Any = walk(app.routes) if walk is not None else app.routes
    found: set[Route] = set()
    for route in routes:
        path = getattr(route, "path", None)
        methods = getattr(route, "methods", None) or set()
        if isinstance(path, str) and path.startswith("/staff"):
            found.update((method, path) for method in methods if method in {"GET", "POST"})
    return found


def staff_permissions(app: FastAPI) -> dict[Route, Permission | None]:
    permissions: dict[Route, Permission | None] = app.state.staff_permissions
    return permissions


def fill(path: str, values: dict[str, str]) -> str:
    return path.format(**values)


def path_values(site: Site) -> dict[str, str]:
    """Real ids from the world for the path parameters, where the walk can make them."""
    appeal = appeal_service.file_appeal(
        site.engine,
        site.people.world.household_cards["H2"],
        "data",
        "The number of members in my household is wrong.",
    )
    create_account(site.engine, SPARE, "Spare Account", Role.REGISTRAR.value, PASSWORD)
    return {
        "ref": "H2",
        "appeal_id": str(appeal.id),
        "item_id": str(MISSING_ID),
        "job_id": str(MISSING_ID),
        "conflict_id": str(MISSING_ID),
        "name": "fuel",
        "username": SPARE,
    }


#: What each form sends besides its CSRF token: enough to reach the handler's own checks.
FORMS: dict[Route, dict[str, str]] = {
    ("POST", "/staff/registry"): {"query": "H2", "purpose": "checking the route walk of the pages"},
    ("POST", "/staff/households/{ref}"): {"purpose": "checking the route walk of the pages"},
    ("POST", "/staff/appeals/{appeal_id}"): {"purpose": "checking the route walk of the pages"},
}


def footprint(engine: sa.Engine) -> tuple[int, ...]:
    """What a refused request must not change: reads logged, appeals decided, accounts
    and their state, policies published, sessions."""
    with engine.connect() as conn:
        return (
            int(conn.scalar(sa.select(sa.func.count()).select_from(access_log)) or 0),
            int(conn.scalar(sa.select(sa.func.count()).where(appeals.c.status != "open")) or 0),
            int(conn.scalar(sa.select(sa.func.count()).select_from(staff_users)) or 0),
            int(conn.scalar(sa.select(sa.func.count()).where(staff_users.c.active.is_(False))) or 0),
            int(conn.scalar(sa.select(sa.func.count()).select_from(policies)) or 0),
            int(conn.scalar(sa.select(sa.func.count()).select_from(web_sessions)) or 0),
        )


def _walk_order(route: Route) -> tuple[bool, Route]:
    # Signing out ends the session the rest of the walk uses: last.
    return (route == ("POST", "/staff/logout"), route)


# ------------------------------------------------------------------------------ the matrix


def test_the_matrix_keeps_duties_apart() -> None:
    assert set(MATRIX) == set(Permission), "every permission is granted to someone, or named as to no one"
    # The administrator manages accounts and reads no one's record.
    assert not allowed(Role.ADMIN, Permission.READ_RECORDS)
    assert allowed(Role.ADMIN, Permission.MANAGE_STAFF)
    # The outlet manager runs outlets and sees no households, appeals or the access log.
    for permission in (Permission.READ_RECORDS, Permission.VIEW_APPEALS, Permission.READ_ACCESS_LOG):
        assert not allowed(Role.OUTLET_MANAGER, permission)
    # The auditor reads what is needed to check the others and changes nothing.
    assert allowed(Role.AUDITOR, Permission.READ_RECORDS)
    assert allowed(Role.AUDITOR, Permission.READ_ACCESS_LOG)
    changes = {
        Permission.PUBLISH_POLICIES,
        Permission.RUN_CYCLES,
        Permission.DECIDE_APPEALS,
        Permission.REVIEW_DUPLICATES,
        Permission.MANAGE_OUTLETS,
        Permission.MANAGE_STAFF,
    }
    assert not permissions_of(Role.AUDITOR) & changes
    # Only a programme officer decides appeals, publishes policies and runs cycles.
    for permission in (Permission.DECIDE_APPEALS, Permission.PUBLISH_POLICIES, Permission.RUN_CYCLES):
        assert MATRIX[permission] == {Role.PROGRAMME_OFFICER}
    # Only the administrator manages accounts, and no one else reads the access log.
    assert MATRIX[Permission.MANAGE_STAFF] == {Role.ADMIN}
    assert MATRIX[Permission.READ_ACCESS_LOG] == {Role.AUDITOR, Role.ADMIN}
    # Everyone signed in has a start page.
    assert MATRIX[Permission.DASHBOARD] == set(Role)


# ------------------------------------------------------------------------------ the routes


def test_every_staff_route_declares_its_permission(bare_app: FastAPI) -> None:
    served = declared_routes(bare_app)
    declared = staff_permissions(bare_app)
    assert served >= SIGN_IN
    assert len(served) > 20, f"the route listing found too few staff routes: {sorted(served)}"
    undeclared = served - SIGN_IN - set(declared)
    assert not undeclared, f"staff routes without a declared permission: {sorted(undeclared)}"
    phantom = set(declared) - served
    assert not phantom, f"permissions declared for routes that are not served: {sorted(phantom)}"
    assert not SIGN_IN & set(declared)
    # Only signing out is open to any signed-in member of staff; every page names a permission.
    assert {route for route, permission in declared.items() if permission is None} == {
        ("POST", "/staff/logout")
    }


@dataclass
class Findings:
    """What the walk found wrong, one line per (who, route); reported all at once."""

    wrong: list[str] = field(default_factory=list)
    checked: int = 0

    def expect(self, ok: bool, who: str, route: Route, what: str) -> None:
        self.checked += 1
        if not ok:
            self.wrong.append(f"{who}: {route[0]} {route[1]}: {what}")

    def report(self) -> str:
        return f"{len(self.wrong)} of {self.checked} checks failed:\n" + "\n".join(self.wrong)


def test_every_route_with_every_role(site: Site) -> None:
    """Signed in as each role in turn (one session per role), every route; then every
    route again without a staff session. One test, so the world is built once."""
    routes = sorted(staff_permissions(site.app).items(), key=lambda item: _walk_order(item[0]))
    values = path_values(site)
    findings = Findings()
    assert set(Role) == set(site.people.accounts)
    for role in Role:
        client = site.browser()
        staff_sign_in(client, site.people.accounts[role])
        start = client.get("/staff/")
        assert start.status_code == 200, (role, start.text)
        csrf = hidden(start.text)
        for route, permission in routes:
            method, path = route
            url = fill(path, values)
            may = permission is None or allowed(role, permission)
            if method == "POST" and may:
                # An allowed form without its CSRF token is refused and changes nothing.
                before = footprint(site.engine)
                bare = client.post(url, data=FORMS.get(route, {}), follow_redirects=False)
                findings.expect(bare.status_code == 403, role, route, f"no CSRF token: {bare.status_code}")
                findings.expect(footprint(site.engine) == before, role, route, "no CSRF token: changed data")
            before = footprint(site.engine)
            if method == "GET":
                answer = client.get(url, follow_redirects=False)
            else:
                answer = client.post(url, data={"csrf": csrf, **FORMS.get(route, {})}, follow_redirects=False)
            status = answer.status_code
            if may:
                findings.expect(status in ALLOWED_STATUSES, role, route, f"allowed, but {status}")
                if status == 303 and path != "/staff/logout":
                    # A redirect, but not to the sign-in page: the session still holds.
                    location = answer.headers["location"]
                    findings.expect(location != "/staff/login", role, route, "allowed, sent to sign in")
            else:
                findings.expect(status == 403, role, route, f"forbidden, but {status}")
                findings.expect(footprint(site.engine) == before, role, route, "forbidden, changed data")
    check_no_session_opens_a_staff_route(site, values, findings)
    assert not findings.wrong, findings.report()
    assert findings.checked > 300, findings.checked


def check_no_session_opens_a_staff_route(site: Site, values: dict[str, str], findings: Findings) -> None:
    """Without a staff session (none, a card holder's portal session, a portal token sent
    as a staff one, a made-up token) every staff route answers with the sign-in page."""
    # A member of staff is signed in elsewhere: their session is not the anonymous reader's.
    officer = site.browser()
    staff_sign_in(officer, site.people.accounts[Role.PROGRAMME_OFFICER])
    holder = site.browser()
    portal_sign_in(holder, site.people.household_card)
    portal_token = holder.cookies.get("canasta_portal", path="/portal")
    assert portal_token
    assert holder.get("/portal/").status_code == 200
    readers: dict[str, dict[str, str]] = {
        "anonymous": {},
        "portal session": {"cookie": f"canasta_portal={portal_token}"},
        "portal token as staff": {"cookie": f"canasta_staff={portal_token}"},
        "made-up token": {"cookie": "canasta_staff=" + "x" * 43},
    }
    anonymous = site.browser()
    before = footprint(site.engine)
    for route in sorted(staff_permissions(site.app)):
        method, path = route
        url = fill(path, values)
        for reader, headers in readers.items():
            if method == "GET":
                answer = anonymous.get(url, headers=headers, follow_redirects=False)
            else:
                answer = anonymous.post(url, data={"csrf": "x"}, headers=headers, follow_redirects=False)
            where = (answer.status_code, answer.headers.get("location"))
            findings.expect(where == (303, "/staff/login"), reader, route, f"not sent to sign in: {where}")
    findings.expect(footprint(site.engine) == before, "no session", ("*", "*"), "changed data")
    # Both real sessions still work.
    assert holder.get("/portal/").status_code == 200
    assert officer.get("/staff/").status_code == 200
