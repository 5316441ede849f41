"""The browser harness itself: Debian's chromium, through Playwright, reads what a real
``canasta serve`` answers, and the server signs with the keys the test set up."""

from __future__ import annotations

import sqlalchemy as sa
from playwright.sync_api import Page

from canasta.domain.signed_note import Checkpoint, open_note
from canasta.service.transparency import keyring_of
from tests.browser.conftest import LiveServer, Screenshot
from tests.helpers import build_world


def test_the_browser_reads_the_signed_checkpoint_of_a_live_server(
    engine: sa.Engine, database_url: str, live_server: LiveServer, page: Page, screenshot: Screenshot
) -> None:
    build_world(engine)  # opening cycles records entitlements: the log is not empty
    base = live_server(database_url)

    response = page.goto(f"{base}/log/v1/checkpoint")

    assert response is not None and response.ok
    assert response.headers["content-type"].startswith("text/plain")
    checkpoint = Checkpoint.parse(open_note(response.text(), [keyring_of(engine).log.verifier]))
    assert checkpoint.size > 0
    shown = page.locator("body").inner_text()  # as chromium renders the plain text
    assert shown.splitlines()[:2] == [checkpoint.origin, str(checkpoint.size)]
    path = screenshot(page, f"smoke-checkpoint-{engine.dialect.name}")
    assert path.stat().st_size > 0 and path.read_bytes().startswith(b"\x89PNG")
