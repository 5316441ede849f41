"""The journeys of the issue, in a real browser against a real ``canasta serve``, with
JavaScript off and a 390-pixel phone screen.

A household's card is used at a shop (through the API, as an outlet's till does); the card
holder signs in, reads why they get what they get, downloads a receipt and checks it with
``canasta verify receipt``, and appeals; a programme officer, in a browser of their own,
opens the appeal with a purpose and upholds it; the holder reads the decision and sees the
officer's read in "Who read my record". Along the way every main page is photographed
(test-artifacts/screenshots/journey-*.png) and weighed: a page must stay under 50 KB for a
cheap phone on a slow network. Run with ``-s`` to see the table of sizes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, Response, expect

from canasta.domain.model import format_card_id
from canasta.service import portal
from canasta.service.authz import ROLE_TITLES, Role
from canasta.service.keys import load_keyring
from tests.browser.conftest import PAGE_TIMEOUT_MS, LiveServer, Screenshot
from tests.helpers import build_world
from tests.web import PASSWORD, PIN, People, build_people

#: The most a page's HTML may weigh (the stylesheet, cached, is not counted).
PAGE_BUDGET = 50 * 1024
STATEMENT = "My household has two members and a newborn since October; 5 kg is not enough."
REASON = "The birth certificate arrived: the household is three people from this cycle."
APPEAL_PURPOSE = "Answering the holder's appeal about the food entitlement"
SEARCH_PURPOSE = "Enrolment: checking the household of an appeal"
RECORD_PURPOSE = "Answering the holder's appeal: checking the members"


@dataclass
class Weighed:
    """The HTML documents a page's browser received, to weigh the page now shown."""

    page: Page
    label: str
    last: Response | None = None
    sizes: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("response", self._seen)

    def _seen(self, response: Response) -> None:
        request = response.request
        if (
            request.resource_type == "document"
            and request.frame == self.page.main_frame
            and response.status < 300
            and response.headers.get("content-type", "").startswith("text/html")
        ):
            self.last = response

    def weigh(self, name: str) -> int:
        """The bytes of the document now shown, recorded under ``name``."""
        self.page.wait_for_load_state()
        assert self.last is not None, f"no HTML document was received for {name}"
        assert self.last.url == self.page.url, (self.last.url, self.page.url)
        size = len(self.last.body())
        self.sizes.append((f"{self.label} {name}", size))
        return size


def _new_page(browser: Browser, locale: str = "en-GB") -> Page:
    """A context like the ``page`` fixture's: a phone, English first, no JavaScript."""
    context = browser.new_context(
        locale=locale, viewport={"width": 390, "height": 844}, java_script_enabled=False
    )
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    return context.new_page()


@pytest.fixture
def officer_page(browser: Browser) -> Iterator[Page]:
    """A second browser, the programme officer's, that shares nothing with the holder's."""
    page = _new_page(browser)
    try:
        yield page
    finally:
        page.context.close()


def _redeem_food(base: str, people: People, quantity: str) -> dict[str, object]:
    answer = httpx.post(
        f"{base}/api/v1/redemptions",
        json={
            "card": people.household_card,
            "programme": "food",
            "quantity": quantity,
            "outlet": "shop-1",
            "idempotency_key": "journey-food-1",
        },
        headers={"Authorization": f"Bearer {people.world.tokens['shop-1']}"},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    receipt: dict[str, object] = answer.json()
    return receipt


def _verify(receipt: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "canasta", "verify", "receipt", str(receipt), "--key", str(key)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _print_sizes(title: str, sizes: list[tuple[str, int]]) -> None:
    width = max(len(name) for name, _ in sizes)
    print(f"\n{title}")
    print(f"{'page':<{width}}  {'bytes':>7}")
    for name, size in sizes:
        print(f"{name:<{width}}  {size:>7}")


def test_a_holder_appeals_an_officer_upholds_and_the_holder_reads_the_answer(
    engine: sa.Engine,
    database_url: str,
    key_directory: Path,
    live_server: LiveServer,
    page: Page,
    officer_page: Page,
    screenshot: Screenshot,
    tmp_path: Path,
) -> None:
    people = build_people(engine)
    base = live_server(database_url)
    db = engine.dialect.name
    holder = Weighed(page, "portal")
    officer = Weighed(officer_page, "staff")

    # 1. The household's card is used at the shop.
    receipt = _redeem_food(base, people, "1.5")
    assert receipt["remaining"] == "3.5" and receipt["unit"] == "kg"
    seq = int(str(receipt["ledger_position"]))

    # 2. The holder signs in and reads the entitlement and why.
    page.goto(f"{base}/portal/login")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    holder.weigh("login")
    screenshot(page, f"journey-portal-login-{db}")
    page.get_by_label("Card number").fill(people.household_card)
    page.get_by_label("PIN").fill(PIN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/portal/")
    food = page.locator("section.card", has=page.get_by_role("heading", name="food"))
    expect(food).to_contain_text("5 kg")  # entitled
    expect(food.locator("dd.big")).to_have_text("3.5 kg")  # still to collect
    why = food.locator("details")
    explanation = why.get_by_text("Published rules of food, version 1")
    expect(explanation).to_be_hidden()
    why.locator("summary", has_text="Why this amount?").click()
    expect(why).to_have_attribute("open", "")
    expect(explanation).to_be_visible()
    expect(why).to_contain_text("Entitled to 5 kg of food this cycle.")
    expect(why).to_contain_text("2 + 1.5 × number of household members")
    expect(why).to_contain_text("number of household members = 2")
    holder.weigh("home")
    screenshot(page, f"journey-portal-home-why-{db}")

    # ... downloads the receipt of what the shop handed out, and checks it.
    page.get_by_role("link", name="History and receipts").click()
    expect(page).to_have_url(f"{base}/portal/history")
    row = page.locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("1.5 kg")
    expect(row).to_contain_text("Almacén Uno")  # the outlet, by its name
    holder.weigh("history")
    screenshot(page, f"journey-portal-history-{db}")
    with page.expect_download() as started:
        row.get_by_role("link", name=f"Download receipt {seq}").click()
    download = started.value
    assert download.suggested_filename == f"canasta-receipt-{seq}.json"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    checked = _verify(saved, key_directory / "log.pub")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The check fails with another log's key: the command does check the signature.
    other_keys = tmp_path / "other-keys"
    load_keyring(other_keys)  # a log key of another installation
    forged = _verify(saved, other_keys / "log.pub")
    assert forged.returncode != 0, forged.stdout + forged.stderr

    # ... and appeals the entitlement.
    page.get_by_role("link", name="Appeals").click()
    expect(page).to_have_url(f"{base}/portal/appeals")
    expect(page.get_by_text("You have not filed an appeal.")).to_be_visible()
    page.get_by_label("What I am entitled to").check()
    choice = page.get_by_label("Entitlement (if about an entitlement)")
    food_option = choice.locator("option", has_text="food")
    choice.select_option(value=food_option.get_attribute("value"))
    page.get_by_label("What is wrong, in your words").fill(STATEMENT)
    page.get_by_role("button", name="Send the appeal").click()
    expect(page).to_have_url(f"{base}/portal/appeals?filed=1")
    mine = page.locator("section.card")
    expect(mine).to_have_count(1)
    expect(mine).to_contain_text("waiting for a decision")
    expect(mine).to_contain_text(STATEMENT)
    appeal_heading = mine.get_by_role("heading").inner_text()
    appeal_id = int(appeal_heading.split("·")[0].split()[-1])

    # 3. The programme officer, in a browser of their own, decides it.
    officer_page.goto(f"{base}/staff/login")
    officer.weigh("login")
    screenshot(officer_page, f"journey-staff-login-{db}")
    officer_page.get_by_label("User name").fill(people.accounts[Role.PROGRAMME_OFFICER])
    officer_page.get_by_label("Password").fill(PASSWORD)
    officer_page.get_by_role("button", name="Sign in").click()
    expect(officer_page).to_have_url(f"{base}/staff/")
    expect(officer_page.get_by_role("heading", level=1)).to_have_text("Coverage and uptake")
    officer.weigh("dashboard")
    screenshot(officer_page, f"journey-staff-dashboard-{db}")

    officer_page.get_by_role("link", name="Appeals", exact=True).click()
    expect(officer_page).to_have_url(f"{base}/staff/appeals")
    listed = officer_page.locator("tbody tr")
    expect(listed).to_have_count(1)
    expect(listed).to_contain_text("an entitlement")
    expect(listed).not_to_contain_text("H2")  # whose it is shows only once opened with a purpose
    officer.weigh("appeals inbox")
    screenshot(officer_page, f"journey-staff-appeals-{db}")
    listed.get_by_role("link", name=f"Appeal {appeal_id}").click()
    purpose = officer_page.get_by_label("Purpose")
    expect(purpose).to_have_value("")  # the officer states it; nothing is written for them
    purpose.fill(APPEAL_PURPOSE)
    officer_page.get_by_role("button", name="Open the record").click()
    expect(officer_page.get_by_role("heading", level=1)).to_have_text(f"Appeal {appeal_id}")
    expect(officer_page.locator(".notice")).to_contain_text(APPEAL_PURPOSE)
    expect(officer_page.locator("blockquote.statement")).to_have_text(STATEMENT)
    expect(officer_page.get_by_role("heading", name="The decision appealed")).to_be_visible()
    expect(officer_page.locator("main")).to_contain_text("Entitled to 5 kg of food this cycle.")
    expect(officer_page.locator("main")).to_contain_text("2 + 1.5 × number of household members")
    officer.weigh("appeal")
    screenshot(officer_page, f"journey-staff-appeal-{db}")
    officer_page.get_by_label("Uphold: the appeal is right").check()
    officer_page.get_by_label("Reason (the card holder reads this)").fill(REASON)
    officer_page.get_by_role("button", name="Record the decision").click()
    expect(officer_page).to_have_url(f"{base}/staff/appeals?decided={appeal_id}")
    expect(officer_page.get_by_role("heading", level=1)).to_have_text("Appeals")
    expect(officer_page.get_by_text("No appeals here.")).to_be_visible()

    # ... and, for the photographs, the rest of what an officer sees.
    officer_page.get_by_role("link", name="Registry").click()
    officer_page.get_by_label("Search for").fill("H2")
    officer_page.get_by_label("Purpose of this search").fill(SEARCH_PURPOSE)
    officer_page.get_by_role("button", name="Search").click()
    hits = officer_page.locator("tbody tr")
    expect(hits).to_have_count(1)
    expect(hits).to_contain_text("H2")
    officer.weigh("registry search")
    screenshot(officer_page, f"journey-staff-registry-{db}")
    hits.get_by_role("link", name="H2").click()
    officer_page.get_by_label("Purpose").fill(RECORD_PURPOSE)
    officer_page.get_by_role("button", name="Open the record").click()
    expect(officer_page.get_by_role("heading", level=1)).to_have_text("Household H2")
    expect(officer_page.locator("main")).to_contain_text("upheld")
    officer.weigh("household")
    screenshot(officer_page, f"journey-staff-household-{db}")
    for link, heading, name in [
        ("Duplicates", "Possible duplicates", "review"),
        ("Policies", None, "policies"),
        ("Cycles", None, "cycles"),
        ("Outlets", None, "outlets"),
    ]:
        officer_page.get_by_role("link", name=link, exact=True).click()
        expect(officer_page.get_by_role("link", name=link, exact=True)).to_have_attribute(
            "aria-current", "page"
        )
        if heading is not None:
            expect(officer_page.get_by_role("heading", level=1)).to_have_text(heading)
        officer.weigh(name)
        screenshot(officer_page, f"journey-staff-{name}-{db}")

    # 4. The holder reads the decision, and who read the record and why.
    page.reload()
    decided = page.locator("section.card")
    expect(decided.locator(".status-upheld")).to_have_text("upheld")
    expect(decided).to_contain_text("Decision by Demo programme_officer")
    expect(decided.locator(".decision")).to_have_text(REASON)
    holder.weigh("appeals")
    screenshot(page, f"journey-portal-appeals-{db}")
    page.get_by_role("link", name="Who read my record").click()
    reads = page.locator("tbody tr")
    appeal_read = reads.filter(has_text=APPEAL_PURPOSE)
    expect(appeal_read).to_have_count(1)
    expect(appeal_read.locator("td").nth(1)).to_have_text("Demo programme_officer")
    expect(appeal_read.locator("td").nth(2)).to_have_text(ROLE_TITLES[Role.PROGRAMME_OFFICER])
    expect(reads.filter(has_text=SEARCH_PURPOSE)).to_have_count(1)
    expect(reads.filter(has_text=RECORD_PURPOSE)).to_have_count(1)
    holder.weigh("access log")
    screenshot(page, f"journey-portal-access-{db}")

    # 5. The language switch: to Spanish and back, on the same page.
    page.get_by_role("link", name="Español").click()
    expect(page).to_have_url(f"{base}/portal/access")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.get_by_role("link", name="English")).to_be_visible()
    expect(page.locator("strong[lang=es]")).to_have_text("Español")
    screenshot(page, f"journey-portal-access-es-{db}")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Who read my record")

    # 8. Every page fits the budget.
    sizes = holder.sizes + officer.sizes
    _print_sizes(f"HTML per page ({db})", sizes)
    heavy = [(name, size) for name, size in sizes if size > PAGE_BUDGET]
    assert not heavy, f"pages over {PAGE_BUDGET} bytes: {heavy}"


def test_the_portal_sign_in_works_from_the_keyboard_alone(
    engine: sa.Engine, database_url: str, live_server: LiveServer, page: Page
) -> None:
    world = build_world(engine)  # no staff accounts: their passwords are slow to hash
    card = format_card_id(portal.set_pin(engine, world.household_cards["H2"], PIN))
    base = live_server(database_url)
    page.goto(f"{base}/portal/login")
    focused = page.locator(":focus")

    page.keyboard.press("Tab")
    expect(focused).to_have_text("Skip to content")  # the first stop skips the header
    for _ in range(5):  # the header's links: the brand and the other language
        page.keyboard.press("Tab")
        if focused.get_attribute("id") == "card":
            break
    expect(focused).to_have_id("card")
    page.keyboard.type(card)
    page.keyboard.press("Tab")
    expect(focused).to_have_id("pin")
    page.keyboard.type(PIN)
    page.keyboard.press("Tab")
    expect(focused).to_have_attribute("type", "submit")
    expect(focused).to_have_text("Sign in")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/portal/")

    # The explanation opens from the keyboard too: a <summary> takes focus and Enter.
    summary = page.locator("summary").first
    summary.focus()
    page.keyboard.press("Enter")
    expect(page.locator("details").first).to_have_attribute("open", "")
