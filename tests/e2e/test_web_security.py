"""The staff pages and the portal under attack: session fixation, cross-site request
forgery, stored and reflected script, open redirects, missing headers, PIN and password
guessing, one card holder reaching another's data, and sessions that outlive their end.

Each test makes the attack, checks it fails, and (where the attack is a request that would
otherwise work) also makes the honest request, so the test can tell a refusal from a form
that never worked."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from markupsafe import escape
from starlette.types import ASGIApp

from canasta.adapters.tables import access_log, appeals, card_pins, staff_users, web_sessions
from canasta.domain.model import CardStatus, format_card_id
from canasta.entrypoints.api.app import create_server
from canasta.service import appeals as appeal_service
from canasta.service import records
from canasta.service.authz import Role, Staff
from canasta.service.bootstrap import bootstrap
from canasta.service.cards import card_balance, withdraw_card
from canasta.service.settings import Settings
from canasta.service.staff import create_account
from tests.web import PASSWORD, PIN, People, build_people, hidden, portal_sign_in, staff_sign_in

PORTAL = "canasta_portal"
STAFF = "canasta_staff"
PRE = "canasta_pre"
OTHER_PIN = "7391"  # the PIN tests.web sets on household H3's card
EVIL = "https://evil.example"
STATEMENT = "My household has four members, not two; please check."
PURPOSE = "checking the household record for an appeal"
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"
_ERROR = re.compile(r'<p class="error" role="alert"[^>]*>(.*?)</p>', re.S)
_TAG = re.compile(r"<[a-zA-Z][^>]*>")
_HANDLER = re.compile(r"\s(on[a-z]+|style)\s*=", re.I)
_HREF = re.compile(r'\shref="([^"]*)"')


@dataclass
class Site:
    people: People
    server: ASGIApp
    engine: sa.Engine
    #: The outlets' client (its lifespan runs the redemption desk).
    api: TestClient
    _browsers: list[TestClient] = field(default_factory=list)

    def browser(self) -> TestClient:
        """A browser of its own (its own cookies), reading English."""
        client = TestClient(self.server, raise_server_exceptions=False, headers={"accept-language": "en"})
        self._browsers.append(client)
        return client

    def close(self) -> None:
        for client in self._browsers:
            client.close()

    # ------------------------------------------------------------------ people

    def holder(self, card: str | None = None, pin: str = PIN) -> TestClient:
        """A browser signed in to the portal (household H2's card unless told)."""
        client = self.browser()
        portal_sign_in(client, card or self.people.household_card, pin)
        return client

    def staff(self, role: Role) -> TestClient:
        client = self.browser()
        staff_sign_in(client, self.people.accounts[role])
        return client

    def token_opens(self, path: str, cookie: str, token: str) -> httpx.Response:
        """GET ``path`` from a fresh browser holding only this session cookie."""
        answer: httpx.Response = self.browser().get(
            path, headers={"cookie": f"{cookie}={token}"}, follow_redirects=False
        )
        return answer

    # ------------------------------------------------------------------ data

    def card(self, ref: str) -> str:
        return self.people.world.household_cards[ref]

    def redeem(self, ref: str, key: str) -> int:
        """A redemption of 1 kg of food with household ``ref``'s card; its ledger position."""
        answer = self.api.post(
            "/api/v1/redemptions",
            json={
                "card": format_card_id(self.card(ref)),
                "programme": "food",
                "quantity": "1",
                "outlet": "shop-1",
                "idempotency_key": key,
            },
            headers={"Authorization": f"Bearer {self.people.world.tokens['shop-1']}"},
        )
        assert answer.status_code == 201, answer.text
        return int(answer.json()["ledger_position"])

    def entitlement(self, ref: str) -> int:
        _, balances = card_balance(self.engine, self.card(ref))
        return balances[0].entitlement_id

    def count(self, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(table).where(*where)) or 0)

    def update(self, statement: sa.Update) -> None:
        with self.engine.begin() as conn:
            conn.execute(statement)


@pytest.fixture
def site(engine: sa.Engine, database_url: str) -> Iterator[Site]:
    people = build_people(engine)
    canasta = bootstrap(Settings.load(database_url))
    server = create_server(canasta)
    with TestClient(server, raise_server_exceptions=False) as api:
        found = Site(people, server, engine, api)
        try:
            yield found
        finally:
            found.close()
    canasta.close()


def cookie(client: TestClient, name: str) -> str:
    value = client.cookies.get(name, path="/portal" if name == PORTAL else "/staff")
    assert isinstance(value, str) and value, f"no {name} cookie"
    return value


def error_of(page: str) -> str:
    found = _ERROR.search(page)
    assert found is not None, "the page shows no error"
    return html.unescape(found.group(1)).strip()


def sign_in_form(client: TestClient, side: str) -> str:
    """Load the sign-in page (which sets the double-submit cookie); its ``pre`` value."""
    return hidden(client.get(f"/{side}/login").text, "pre")


def try_pin(client: TestClient, card: str, pin: str) -> httpx.Response:
    pre = sign_in_form(client, "portal")
    answer: httpx.Response = client.post(
        "/portal/login", data={"card": card, "pin": pin, "pre": pre}, follow_redirects=False
    )
    return answer


def try_password(client: TestClient, username: str, password: str) -> httpx.Response:
    pre = sign_in_form(client, "staff")
    answer: httpx.Response = client.post(
        "/staff/login",
        data={"username": username, "password": password, "pre": pre},
        follow_redirects=False,
    )
    return answer


# ------------------------------------------------------------------------------ sessions


@pytest.mark.parametrize(("side", "name"), [("portal", PORTAL), ("staff", STAFF)], ids=["portal", "staff"])
def test_a_session_token_planted_before_sign_in_is_never_promoted(site: Site, side: str, name: str) -> None:
    planted = "attacker-chosen-token-0123456789abcdefghijkl"
    # The attacker's value, and (stronger) a live session of the attacker's own, planted in
    # the victim's browser before they sign in.
    if side == "portal":
        attacker = site.holder(site.people.other_household_card, OTHER_PIN)
        credentials = {"card": site.people.household_card, "pin": PIN}
    else:
        attacker = site.staff(Role.REGISTRAR)
        credentials = {"username": site.people.accounts[Role.PROGRAMME_OFFICER], "password": PASSWORD}
    attackers_own = cookie(attacker, name)
    for value in (planted, attackers_own):
        victim = site.browser()
        pre = sign_in_form(victim, side)
        answer = victim.post(
            f"/{side}/login",
            data={**credentials, "pre": pre},
            headers={"cookie": f"{PRE}={pre}; {name}={value}"},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        issued = answer.cookies.get(name)
        assert issued and issued != value
        # The planted value opens nothing; the issued one opens the victim's pages.
        assert site.token_opens(f"/{side}/", name, value).status_code == 303
        assert site.token_opens(f"/{side}/", name, value).headers["location"] == f"/{side}/login"
        assert site.token_opens(f"/{side}/", name, issued).status_code == 200
    # The database holds only the tokens' SHA-256, never a token.
    token = cookie(site.holder() if side == "portal" else site.staff(Role.AUDITOR), name)
    with site.engine.connect() as conn:
        rows = conn.execute(sa.select(web_sessions)).all()
    assert rows
    assert all(token not in (str(v) for v in row) for row in rows)
    assert hashlib.sha256(token.encode()).hexdigest() in {row.token_hash for row in rows}


def test_session_cookies_are_http_only_strict_and_scoped(site: Site) -> None:
    for side, name, client in (
        ("portal", PORTAL, site.browser()),
        ("staff", STAFF, site.browser()),
    ):
        if side == "portal":
            answer = try_pin(client, site.people.household_card, PIN)
        else:
            answer = try_password(client, site.people.accounts[Role.AUDITOR], PASSWORD)
        assert answer.status_code == 303
        (set_cookie,) = [h for h in answer.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
        attributes = {part.strip().lower() for part in set_cookie.split(";")[1:]}
        assert "httponly" in attributes
        assert "samesite=strict" in attributes
        assert f"path=/{side}" in attributes


def test_signing_out_ends_the_session(site: Site) -> None:
    holder = site.holder()
    token = cookie(holder, PORTAL)
    csrf = hidden(holder.get("/portal/").text)
    answer = holder.post("/portal/logout", data={"csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/login"
    assert site.token_opens("/portal/", PORTAL, token).status_code == 303
    assert holder.get("/portal/history", follow_redirects=False).status_code == 303

    officer = site.staff(Role.PROGRAMME_OFFICER)
    token = cookie(officer, STAFF)
    csrf = hidden(officer.get("/staff/").text)
    answer = officer.post("/staff/logout", data={"csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/staff/login"
    assert site.token_opens("/staff/", STAFF, token).status_code == 303
    assert site.token_opens("/staff/registry", STAFF, token).status_code == 303
    assert site.count(web_sessions) == 0


def test_an_idle_session_ends(site: Site) -> None:
    holder = site.holder()
    officer = site.staff(Role.PROGRAMME_OFFICER)
    assert holder.get("/portal/").status_code == 200
    assert officer.get("/staff/").status_code == 200
    site.update(sa.update(web_sessions).values(last_seen_at="2000-01-01T00:00:00+00:00"))
    assert holder.get("/portal/", follow_redirects=False).status_code == 303
    assert officer.get("/staff/", follow_redirects=False).status_code == 303


def test_withdrawing_a_card_or_disabling_an_account_ends_its_sessions(site: Site) -> None:
    holder = site.holder()
    other = site.holder(site.people.other_household_card, OTHER_PIN)
    withdraw_card(site.engine, site.card("H2"), CardStatus.LOST)
    answer = holder.get("/portal/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/login"
    assert try_pin(site.browser(), site.people.household_card, PIN).status_code == 401
    assert other.get("/portal/").status_code == 200  # only that card's session ended

    registrar = site.staff(Role.REGISTRAR)
    admin = site.staff(Role.ADMIN)
    assert registrar.get("/staff/registry").status_code == 200
    csrf = hidden(admin.get("/staff/users").text)
    username = site.people.accounts[Role.REGISTRAR]
    answer = admin.post(f"/staff/users/{username}/active", data={"csrf": csrf, "active": "no"})
    assert answer.status_code == 200
    answer = registrar.get("/staff/registry", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/staff/login"
    assert try_password(site.browser(), username, PASSWORD).status_code == 401


# ------------------------------------------------------------------------------ CSRF


def test_portal_forms_refuse_a_missing_or_wrong_csrf_token(site: Site) -> None:
    holder = site.holder()
    other = site.holder(site.people.other_household_card, OTHER_PIN)
    good = hidden(holder.get("/portal/appeals").text)
    someone_elses = hidden(other.get("/portal/").text)
    appeal = {"subject": "data", "statement": STATEMENT}
    for bad in ({}, {"csrf": ""}, {"csrf": "x" * 43}, {"csrf": someone_elses}):
        answer = holder.post("/portal/appeals", data={**appeal, **bad}, follow_redirects=False)
        assert answer.status_code == 403, answer.text
        assert site.count(appeals) == 0
        answer = holder.post("/portal/logout", data=bad, follow_redirects=False)
        assert answer.status_code == 403
        assert holder.get("/portal/").status_code == 200  # still signed in
    # The honest forms work.
    answer = holder.post("/portal/appeals", data={**appeal, "csrf": good}, follow_redirects=False)
    assert answer.status_code == 303
    assert site.count(appeals) == 1
    assert holder.post("/portal/logout", data={"csrf": good}, follow_redirects=False).status_code == 303
    assert holder.get("/portal/", follow_redirects=False).status_code == 303


def test_staff_forms_refuse_a_missing_or_wrong_csrf_token(site: Site) -> None:
    appeal = appeal_service.file_appeal(site.engine, site.card("H2"), "data", STATEMENT)
    officer = site.staff(Role.PROGRAMME_OFFICER)
    admin = site.staff(Role.ADMIN)
    officers = hidden(officer.get("/staff/").text)
    admins = hidden(admin.get("/staff/").text)
    search = {"query": "H2", "purpose": PURPOSE}
    decision = {"outcome": "upheld", "reason": "The registry is wrong; corrected.", "purpose": PURPOSE}
    account = {"username": "mallory", "name": "Mallory", "role": "admin", "password": "a long password here"}
    reads, accounts = site.count(access_log), site.count(staff_users)
    for client, own in ((officer, officers), (admin, admins)):
        someone_elses = admins if own == officers else officers
        for bad in ({}, {"csrf": ""}, {"csrf": "x" * 43}, {"csrf": someone_elses}):
            if client is officer:
                assert client.post("/staff/registry", data={**search, **bad}).status_code == 403
                answer = client.post(f"/staff/appeals/{appeal.id}/decision", data={**decision, **bad})
                assert answer.status_code == 403
            else:
                assert client.post("/staff/users", data={**account, **bad}).status_code == 403
            assert client.post("/staff/logout", data=bad, follow_redirects=False).status_code == 403
    assert site.count(access_log) == reads
    assert site.count(appeals, appeals.c.status == "open") == 1
    assert site.count(staff_users) == accounts
    assert officer.get("/staff/").status_code == 200 and admin.get("/staff/").status_code == 200
    # The honest forms work.
    assert officer.post("/staff/registry", data={**search, "csrf": officers}).status_code == 200
    assert site.count(access_log) == reads + 1
    answer = officer.post(
        f"/staff/appeals/{appeal.id}/decision", data={**decision, "csrf": officers}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert site.count(appeals, appeals.c.status == "upheld") == 1
    answer = admin.post("/staff/users", data={**account, "csrf": admins}, follow_redirects=False)
    assert answer.status_code == 303
    assert site.count(staff_users) == accounts + 1


def test_a_form_from_another_site_is_refused_even_with_a_good_token(site: Site) -> None:
    holder = site.holder()
    officer = site.staff(Role.PROGRAMME_OFFICER)
    admin = site.staff(Role.ADMIN)
    holders, officers = hidden(holder.get("/portal/").text), hidden(officer.get("/staff/").text)
    admins = hidden(admin.get("/staff/").text)
    account = {"username": "mallory", "name": "Mallory", "role": "admin", "password": "a long password here"}
    reads, accounts = site.count(access_log), site.count(staff_users)
    for origin in (EVIL, "http://testserver.evil.example", "http://testserver:8080"):
        foreign = {"origin": origin}
        appeal = {"subject": "data", "statement": STATEMENT, "csrf": holders}
        assert holder.post("/portal/appeals", data=appeal, headers=foreign).status_code == 403
        assert holder.post("/portal/logout", data={"csrf": holders}, headers=foreign).status_code == 403
        search = {"query": "H2", "purpose": PURPOSE, "csrf": officers}
        assert officer.post("/staff/registry", data=search, headers=foreign).status_code == 403
        assert (
            admin.post("/staff/users", data={**account, "csrf": admins}, headers=foreign).status_code == 403
        )
        # Signing in from another site is refused too (login CSRF).
        for side, form in (
            ("portal", {"card": site.people.household_card, "pin": PIN}),
            ("staff", {"username": site.people.accounts[Role.AUDITOR], "password": PASSWORD}),
        ):
            browser = site.browser()
            pre = sign_in_form(browser, side)
            answer = browser.post(
                f"/{side}/login", data={**form, "pre": pre}, headers=foreign, follow_redirects=False
            )
            assert answer.status_code == 403
    assert site.count(appeals) == 0
    assert site.count(access_log) == reads
    assert site.count(staff_users) == accounts
    assert holder.get("/portal/").status_code == 200
    # The same forms from this site's own origin work.
    own = {"origin": "http://testserver"}
    appeal = {"subject": "data", "statement": STATEMENT, "csrf": holders}
    assert holder.post("/portal/appeals", data=appeal, headers=own, follow_redirects=False).status_code == 303
    search = {"query": "H2", "purpose": PURPOSE, "csrf": officers}
    assert officer.post("/staff/registry", data=search, headers=own).status_code == 200
    assert site.count(appeals) == 1 and site.count(access_log) == reads + 1


@pytest.mark.parametrize("side", ["portal", "staff"])
def test_sign_in_needs_the_double_submit_token(site: Site, side: str) -> None:
    if side == "portal":
        credentials = {"card": site.people.household_card, "pin": PIN}
    else:
        credentials = {"username": site.people.accounts[Role.AUDITOR], "password": PASSWORD}
    url = f"/{side}/login"
    sessions = site.count(web_sessions)
    # No pre field; a pre field but no cookie; a cookie that does not match.
    browser = site.browser()
    sign_in_form(browser, side)
    assert browser.post(url, data=credentials, follow_redirects=False).status_code == 403
    pre = sign_in_form(site.browser(), side)
    fresh = site.browser()
    assert fresh.post(url, data={**credentials, "pre": pre}, follow_redirects=False).status_code == 403
    mismatched = {"cookie": f"{PRE}={'m' * 32}"}
    answer = fresh.post(url, data={**credentials, "pre": pre}, headers=mismatched, follow_redirects=False)
    assert answer.status_code == 403
    assert site.count(web_sessions) == sessions
    # With the page's own token it works.
    pre = sign_in_form(fresh, side)
    assert fresh.post(url, data={**credentials, "pre": pre}, follow_redirects=False).status_code == 303


# ------------------------------------------------------------------------------ script


def assert_shown_as_text(page: str, markup: str) -> None:
    assert markup not in page
    assert str(escape(markup)) in page


def test_an_appeal_statement_with_markup_is_shown_as_text(site: Site) -> None:
    holder = site.holder()
    csrf = hidden(holder.get("/portal/appeals").text)
    answer = holder.post(
        "/portal/appeals", data={"csrf": csrf, "subject": "data", "statement": XSS}, follow_redirects=False
    )
    assert answer.status_code == 303
    (appeal,) = appeal_service.appeals_of_holder(site.engine, site.card("H2"))
    assert appeal.statement == XSS  # stored as typed
    assert_shown_as_text(holder.get("/portal/appeals").text, XSS)
    officer = site.staff(Role.PROGRAMME_OFFICER)
    csrf = hidden(officer.get(f"/staff/appeals/{appeal.id}").text)
    page = officer.post(f"/staff/appeals/{appeal.id}", data={"csrf": csrf, "purpose": PURPOSE})
    assert page.status_code == 200
    assert_shown_as_text(page.text, XSS)
    # The decision's reason, typed by staff, is shown to the card holder as text too.
    reason = "<iframe src=//evil.example></iframe> the record is right."
    decision = {"csrf": csrf, "outcome": "rejected", "reason": reason, "purpose": PURPOSE}
    answer = officer.post(f"/staff/appeals/{appeal.id}/decision", data=decision, follow_redirects=False)
    assert answer.status_code == 303
    assert_shown_as_text(holder.get("/portal/appeals").text, reason)
    page = officer.post(f"/staff/appeals/{appeal.id}", data={"csrf": csrf, "purpose": PURPOSE})
    assert_shown_as_text(page.text, reason)


def test_a_staff_name_and_purpose_with_markup_are_shown_as_text(site: Site) -> None:
    name = "<b onmouseover=x>Eve</b>"
    purpose = 'checking <i onclick="x">this</i> household'
    account = create_account(site.engine, "eve", name, Role.REGISTRAR.value, PASSWORD)
    eve = Staff(account.id, account.username, account.name, account.role)
    records.open_household(site.engine, eve, "H2", purpose)
    page = site.holder().get("/portal/access").text
    assert_shown_as_text(page, name)
    assert_shown_as_text(page, purpose)
    auditor = site.staff(Role.AUDITOR)
    page = auditor.get("/staff/access-log").text
    assert_shown_as_text(page, name)
    assert_shown_as_text(page, purpose)
    csrf = hidden(page)
    page = auditor.post("/staff/households/H2", data={"csrf": csrf, "purpose": PURPOSE}).text
    assert_shown_as_text(page, name)
    assert_shown_as_text(site.staff(Role.ADMIN).get("/staff/users").text, name)
    # Signed in, Eve's own name in the page footer is text as well.
    eve_browser = site.browser()
    staff_sign_in(eve_browser, "eve")
    assert_shown_as_text(eve_browser.get("/staff/").text, name)


def test_what_a_reader_typed_is_echoed_as_text(site: Site) -> None:
    officer = site.staff(Role.PROGRAMME_OFFICER)
    csrf = hidden(officer.get("/staff/registry").text)
    query = '"><script>x</script>'
    page = officer.post("/staff/registry", data={"csrf": csrf, "query": query, "purpose": PURPOSE})
    assert page.status_code == 200
    assert_shown_as_text(page.text, query)
    # Refused for a missing purpose, the form is shown again with what was typed.
    page = officer.post("/staff/registry", data={"csrf": csrf, "query": query, "purpose": ""})
    assert page.status_code == 422
    assert_shown_as_text(page.text, query)
    # A household reference in the address is echoed into the purpose form.
    ref = '"><img src=x onerror=alert(1)>'
    page = officer.get(f"/staff/households/{ref}")
    assert page.status_code == 200
    assert_shown_as_text(page.text, ref)
    page = officer.post(f"/staff/households/{ref}", data={"csrf": csrf, "purpose": ""})
    assert page.status_code == 422
    assert_shown_as_text(page.text, ref)
    # The portal's appeal form, refused, shows the statement again.
    holder = site.holder()
    csrf = hidden(holder.get("/portal/appeals").text)
    statement = "</textarea><script>alert(3)</script>"
    page = holder.post("/portal/appeals", data={"csrf": csrf, "subject": "nonsense", "statement": statement})
    assert page.status_code == 422
    assert_shown_as_text(page.text, statement)
    # The address is echoed in the language links.
    page = holder.get('/portal/history?x="><script>y</script>')
    assert page.status_code == 200
    assert "<script>y" not in page.text
    page = holder.get('/portal/"><script>y</script>')
    assert page.status_code == 404
    assert "<script>y" not in page.text


def test_the_language_switch_redirects_only_to_this_site(site: Site) -> None:
    client = site.browser()
    for target in (
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/%09/evil.example",
        "/\n/evil.example",
        "http:evil.example",
        "///evil.example",
        "/.//evil.example",
        " //evil.example",
    ):
        answer = client.get("/lang/en", params={"next": target}, follow_redirects=False)
        assert answer.status_code == 303, target
        location = answer.headers["location"]
        # What a browser makes of it: tabs and newlines dropped, backslashes read as slashes.
        seen = re.sub(r"[\t\n\r]", "", location).replace("\\", "/")
        assert seen.startswith("/") and not seen.startswith("//"), (target, location)
        assert not urlsplit(seen).netloc and not urlsplit(seen).scheme, (target, location)
    answer = client.get("/lang/en", params={"next": "/portal/history"}, follow_redirects=False)
    assert answer.headers["location"] == "/portal/history"


# ------------------------------------------------------------------------------ headers


def assert_safe_page(url: str, answer: httpx.Response) -> None:
    headers = answer.headers
    csp = headers.get("content-security-policy", "")
    directives = {part.strip().split(" ")[0]: part.strip() for part in csp.split(";") if part.strip()}
    assert directives.get("default-src") == "default-src 'none'", (url, csp)
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, (url, csp)
    assert "script-src" not in directives or directives["script-src"] == "script-src 'none'", (url, csp)
    assert directives.get("frame-ancestors") == "frame-ancestors 'none'", (url, csp)
    assert headers.get("x-frame-options") == "DENY", url
    assert headers.get("x-content-type-options") == "nosniff", url
    assert headers.get("cache-control") == "no-store", url
    if "text/html" not in headers.get("content-type", ""):
        return
    body = answer.text
    assert "<script" not in body.lower(), url
    assert "<style" not in body.lower(), url
    for tag in _TAG.findall(body):
        assert not _HANDLER.search(tag), (url, tag)
        assert "javascript:" not in tag.lower(), (url, tag)


def crawl(client: TestClient, start: str, prefix: str, limit: int = 80) -> dict[str, httpx.Response]:
    """Every page under ``prefix`` reachable by links from ``start``."""
    seen: dict[str, httpx.Response] = {}
    queue = [start]
    while queue and len(seen) < limit:
        url = queue.pop(0)
        if url in seen:
            continue
        answer = client.get(url, follow_redirects=False)
        seen[url] = answer
        if "text/html" in answer.headers.get("content-type", ""):
            for href in _HREF.findall(answer.text):
                target = html.unescape(href)
                if target.startswith(prefix) and target not in seen:
                    queue.append(target)
    return seen


def test_every_page_has_the_security_headers_and_no_script(site: Site) -> None:
    # A world with something on every page: a redemption, an appeal with markup, reads.
    site.redeem("H2", "key-h2")
    appeal = appeal_service.file_appeal(site.engine, site.card("H2"), "data", XSS)
    pages: dict[str, httpx.Response] = {}
    anonymous = site.browser()
    for url in ("/portal/login", "/staff/login", "/portal/", "/staff/users", "/nowhere", "/portal/nowhere"):
        pages[f"anonymous {url}"] = anonymous.get(url, follow_redirects=False)
    pages["wrong PIN"] = try_pin(anonymous, site.people.household_card, "1357")
    pages["wrong password"] = try_password(anonymous, "nobody", "wrong password!")
    for _ in range(5):
        try_pin(anonymous, site.people.other_household_card, "1357")
    pages["locked"] = try_pin(anonymous, site.people.other_household_card, OTHER_PIN)
    pages["method not allowed"] = anonymous.post("/portal/", data={})
    pages["lang"] = anonymous.get("/lang/en", params={"next": "/portal/"}, follow_redirects=False)

    holder = site.holder()
    for url, answer in crawl(holder, "/portal/", "/portal").items():
        pages[f"holder {url}"] = answer
    csrf = hidden(holder.get("/portal/").text)
    pages["holder appeal refused"] = holder.post("/portal/appeals", data={"csrf": csrf, "subject": "x"})
    pages["holder 404"] = holder.get("/portal/receipts/999999.json")
    pages["holder 422"] = holder.get("/portal/history?before=abc")
    assert any("/portal/receipts/" in url for url in pages), "the crawl found no receipt"

    for role in Role:
        client = site.staff(role)
        for url, answer in crawl(client, "/staff/", "/staff").items():
            pages[f"{role} {url}"] = answer
        csrf = hidden(client.get("/staff/").text)
        pages[f"{role} 404"] = client.get("/staff/nowhere")
        pages[f"{role} 403"] = client.get("/staff/users" if role is not Role.ADMIN else "/staff/registry")
        if role is Role.PROGRAMME_OFFICER:
            form = {"csrf": csrf, "purpose": PURPOSE}
            pages["officer household"] = client.post("/staff/households/H2", data=form)
            pages["officer appeal"] = client.post(f"/staff/appeals/{appeal.id}", data=form)
            pages["officer search"] = client.post("/staff/registry", data={**form, "query": "Pérez"})
            pages["officer 422"] = client.get("/staff/review/abc")
    statuses = {answer.status_code for answer in pages.values()}
    assert {200, 303, 401, 403, 404, 405, 422, 429} <= statuses, statuses
    assert len(pages) > 40, sorted(pages)
    for url, answer in pages.items():
        if url.startswith("anonymous /nowhere"):
            continue  # not one of canasta's pages
        assert_safe_page(url, answer)


# ------------------------------------------------------------------------------ hostile input

BEYOND_64_BITS = "9" * 20


def test_an_id_beyond_64_bits_is_not_a_server_error(site: Site) -> None:
    big = BEYOND_64_BITS
    holder = site.holder()
    officer = site.staff(Role.PROGRAMME_OFFICER)
    csrf = hidden(officer.get("/staff/").text)
    form = {"csrf": csrf, "purpose": PURPOSE, "outcome": "upheld", "reason": "x" * 20, "decision": "distinct"}
    answers = {
        "GET /portal/history?before=": holder.get(f"/portal/history?before={big}"),
        "GET /portal/receipts/{n}.json": holder.get(f"/portal/receipts/{big}.json"),
        "GET /staff/review?after=": officer.get(f"/staff/review?after={big}"),
        "GET /staff/review/{n}": officer.get(f"/staff/review/{big}"),
        "POST /staff/appeals/{n}": officer.post(f"/staff/appeals/{big}", data=form),
        "POST /staff/appeals/{n}/decision": officer.post(f"/staff/appeals/{big}/decision", data=form),
        "POST /staff/review/{n}": officer.post(f"/staff/review/{big}", data=form),
        "GET /api/v1/entitlements/{n}/explanation": holder.get(
            f"/api/v1/entitlements/{big}/explanation", headers={"Canasta-Card": site.people.household_card}
        ),
        "GET /log/v1/checkpoints?after=": holder.get(f"/log/v1/checkpoints?after={big}"),
        "GET /api/v1/receipts/{n}": holder.get(
            f"/api/v1/receipts/{big}", headers={"Canasta-Card": site.people.household_card}
        ),
    }
    failed = {what: answer.status_code for what, answer in answers.items() if answer.status_code >= 500}
    assert not failed, failed


def test_a_nul_character_in_a_form_is_not_a_server_error(
    site: Site, database_url: str, request: pytest.FixtureRequest
) -> None:
    nul = "with a \x00 NUL character"
    holder = site.holder()
    officer = site.staff(Role.PROGRAMME_OFFICER)
    admin = site.staff(Role.ADMIN)
    holders = hidden(holder.get("/portal/").text)
    officers = hidden(officer.get("/staff/").text)
    admins = hidden(admin.get("/staff/").text)
    account = {"csrf": admins, "username": "eve", "name": nul, "role": "auditor", "password": PASSWORD}
    answers = {
        "appeal statement": holder.post(
            "/portal/appeals", data={"csrf": holders, "subject": "data", "statement": nul}
        ),
        "registry query": officer.post(
            "/staff/registry", data={"csrf": officers, "query": nul, "purpose": PURPOSE}
        ),
        "purpose of a read": officer.post("/staff/households/H2", data={"csrf": officers, "purpose": nul}),
        "staff name": admin.post("/staff/users", data=account),
    }
    failed = {what: answer.status_code for what, answer in answers.items() if answer.status_code != 422}
    assert not failed, failed
    assert all("control character" in answer.text for answer in answers.values())


# ------------------------------------------------------------------------------ guessing


def test_five_wrong_pins_lock_the_card(site: Site) -> None:
    card, browser = site.people.household_card, site.browser()
    where = card_pins.c.card_id == site.card("H2")
    wrong = try_pin(browser, card, "1357")
    assert wrong.status_code == 401
    refused = error_of(wrong.text)
    for _ in range(4):
        assert try_pin(browser, card, "1357").status_code == 401
    locked = try_pin(browser, card, PIN)  # the right PIN, too late
    assert locked.status_code == 429
    assert "locked" in error_of(locked.text).lower()
    assert error_of(locked.text) != refused
    assert PORTAL not in locked.cookies
    # Other cards are not locked.
    assert try_pin(site.browser(), site.people.other_household_card, OTHER_PIN).status_code == 303
    # Once the lock's time has passed, the right PIN works, and resets the count.
    site.update(sa.update(card_pins).where(where).values(locked_until="2000-01-01T00:00:00+00:00"))
    assert try_pin(browser, card, PIN).status_code == 303
    with site.engine.connect() as conn:
        row = conn.execute(sa.select(card_pins).where(where)).one()
    assert row.failed_attempts == 0 and row.locked_until is None
    # Four wrong, one right, four wrong: never five in a row, so never locked.
    fresh = site.browser()
    for _ in range(2):
        for _ in range(4):
            assert try_pin(fresh, card, "1357").status_code == 401
        assert try_pin(fresh, card, PIN).status_code == 303


def test_five_wrong_passwords_lock_the_account(site: Site) -> None:
    username, browser = site.people.accounts[Role.AUDITOR], site.browser()
    where = staff_users.c.username == username
    for _ in range(5):
        assert try_password(browser, username, "not the password").status_code == 401
    locked = try_password(browser, username, PASSWORD)
    assert locked.status_code == 429
    assert "locked" in error_of(locked.text).lower()
    assert STAFF not in locked.cookies
    assert try_password(site.browser(), site.people.accounts[Role.ADMIN], PASSWORD).status_code == 303
    site.update(sa.update(staff_users).where(where).values(locked_until="2000-01-01T00:00:00+00:00"))
    assert try_password(browser, username, PASSWORD).status_code == 303
    with site.engine.connect() as conn:
        row = conn.execute(sa.select(staff_users).where(where)).one()
    assert row.failed_logins == 0 and row.locked_until is None
    fresh = site.browser()
    for _ in range(2):
        for _ in range(4):
            assert try_password(fresh, username, "not the password").status_code == 401
        assert try_password(fresh, username, PASSWORD).status_code == 303


def test_a_wrong_card_and_a_wrong_pin_get_the_same_answer(site: Site) -> None:
    withdrawn = format_card_id(site.card("H4"))
    withdraw_card(site.engine, site.card("H4"), CardStatus.LOST)
    browser = site.browser()
    answers = {
        "wrong PIN": try_pin(browser, site.people.household_card, "1357"),
        "no such card": try_pin(browser, "ZZZZ-ZZZZ-ZZ", PIN),
        "not a card number": try_pin(browser, "hello", PIN),
        "card without a PIN": try_pin(browser, format_card_id(site.card("H1")), PIN),
        "withdrawn card": try_pin(browser, withdrawn, PIN),
    }
    assert {a.status_code for a in answers.values()} == {401}
    assert len({error_of(a.text) for a in answers.values()}) == 1, {
        k: error_of(a.text) for k, a in answers.items()
    }
    site.update(sa.update(staff_users).where(staff_users.c.username == "reviewer").values(active=False))
    answers = {
        "wrong password": try_password(browser, site.people.accounts[Role.AUDITOR], "not the password"),
        "no such user": try_password(browser, "nobody", PASSWORD),
        "disabled account": try_password(browser, site.people.accounts[Role.REVIEWER], PASSWORD),
    }
    assert {a.status_code for a in answers.values()} == {401}
    assert len({error_of(a.text) for a in answers.values()}) == 1, {
        k: error_of(a.text) for k, a in answers.items()
    }


# ------------------------------------------------------------------------------ other people's data


def test_a_card_holder_cannot_reach_another_households_receipt_or_appeal_it(site: Site) -> None:
    mine, theirs = site.redeem("H2", "key-h2"), site.redeem("H3", "key-h3")
    holder = site.holder()
    other = site.holder(site.people.other_household_card, OTHER_PIN)
    assert holder.get(f"/portal/receipts/{mine}.json").status_code == 200
    assert other.get(f"/portal/receipts/{theirs}.json").status_code == 200
    assert holder.get(f"/portal/receipts/{theirs}.json").status_code == 404
    assert holder.get("/portal/receipts/1.json").status_code == 404  # an entry that is no redemption
    csrf = hidden(holder.get("/portal/appeals").text)
    for form in (
        {"subject": "entitlement", "entitlement": str(site.entitlement("H3"))},
        {"subject": "redemption", "redemption": str(theirs)},
        {"subject": "entitlement", "entitlement": "999999"},
        {"subject": "redemption", "redemption": "999999"},
        {"subject": "entitlement", "entitlement": "-1"},
    ):
        answer = holder.post("/portal/appeals", data={"csrf": csrf, "statement": STATEMENT, **form})
        assert answer.status_code in {404, 422}, (form, answer.status_code)
        assert site.count(appeals) == 0, form
    # Naming their own entitlement and redemption works.
    for form in (
        {"subject": "entitlement", "entitlement": str(site.entitlement("H2"))},
        {"subject": "redemption", "redemption": str(mine)},
    ):
        data = {"csrf": csrf, "statement": STATEMENT, **form}
        assert holder.post("/portal/appeals", data=data, follow_redirects=False).status_code == 303
    assert site.count(appeals) == 2


def test_a_card_holder_sees_nothing_of_another_household(site: Site) -> None:
    theirs = site.redeem("H3", "key-h3")
    site.redeem("H2", "key-h2")
    secret = "Household H3 statement that only H3 may read."
    appeal_service.file_appeal(site.engine, site.card("H3"), "data", secret)
    staff = site.staff(Role.PROGRAMME_OFFICER)
    csrf = hidden(staff.get("/staff/").text)
    their_purpose = "checking the other household's record only"
    assert (
        staff.post("/staff/households/H3", data={"csrf": csrf, "purpose": their_purpose}).status_code == 200
    )
    holder = site.holder()
    other_card = site.people.other_household_card
    pages = {
        url: holder.get(url)
        for url in (
            "/portal/",
            "/portal/history",
            f"/portal/history?before={theirs + 1}",
            "/portal/access",
            "/portal/appeals",
            f"/portal/appeals?redemption={theirs}",
            f"/portal/appeals?entitlement={site.entitlement('H3')}",
        )
    }
    for url, page in pages.items():
        assert page.status_code == 200, url
        text = page.text
        assert other_card not in text, url
        assert secret not in text, url
        assert their_purpose not in text, url
        assert f"/portal/receipts/{theirs}.json" not in text, url
        assert ">H3<" not in text, url
    # The page shows the holder's own household, so the checks above looked at real pages.
    assert ">H2<" in pages["/portal/"].text
