"""Fixtures for browser tests: Debian's chromium, driven by Playwright, against a real
``canasta serve`` in a subprocess.

- ``chromium_path``: the browser (``CANASTA_CHROMIUM``, else ``chromium`` or ``chromium-browser``
  on the PATH, else /usr/bin/chromium). Without one the tests skip, or fail when
  ``CANASTA_REQUIRE_BROWSER=1`` (set by .ci/run). Playwright's own downloaded browsers
  (``playwright install``) are not used.
- ``browser``: one headless chromium for the session.
- ``page``: a fresh context and page per test, as a cheap phone sees it (390x844, en-GB) and
  with JavaScript off: the pages must work without it. A test that needs other settings makes
  its own context from ``browser``.
- ``live_server(database_url, env=None)``: serves the database on a free loopback port and
  returns its base URL; stopped after the test. The server inherits the environment, so it
  signs with the test's key directory (``CANASTA_KEYS``, set by the ``key_directory`` fixture
  that ``database_url`` uses); ``env`` adds or overrides variables.
- ``screenshot(page, name)``: a full-page PNG in test-artifacts/screenshots/<name>.png.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from canasta.service.keys import ENV_KEYS

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
ENV_CHROMIUM = "CANASTA_CHROMIUM"
REQUIRE_BROWSER = os.environ.get("CANASTA_REQUIRE_BROWSER") == "1"
#: The first request a started server must answer; any HTTP answer means it is up.
READY_PATH = "/log/v1/checkpoint"
START_TIMEOUT = 30.0
#: Playwright's default wait for an action or navigation is 30 s; pages here answer in far less.
PAGE_TIMEOUT_MS = 10_000


class LiveServer(Protocol):
    def __call__(self, database_url: str, env: Mapping[str, str] | None = None) -> str: ...


class Screenshot(Protocol):
    def __call__(self, page: Page, name: str) -> Path: ...


def _find_chromium() -> str | None:
    named = os.environ.get(ENV_CHROMIUM)
    if named:
        return named if os.access(named, os.X_OK) else None
    for candidate in ("chromium", "chromium-browser"):
        found = shutil.which(candidate)
        if found is not None:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@pytest.fixture(scope="session")
def chromium_path() -> str:
    found = _find_chromium()
    if found is not None:
        return found
    if os.environ.get(ENV_CHROMIUM):
        reason = f"{ENV_CHROMIUM}={os.environ[ENV_CHROMIUM]} is not an executable file"
    else:
        reason = "browser tests need Debian's chromium (apt-get install chromium); none was found"
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (CANASTA_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="package")
def browser(chromium_path: str) -> Iterator[Browser]:
    # Package scope: Playwright's sync API keeps an event loop running in this thread while it
    # is started, so it must stop when the browser tests end, before tests that run their own
    # loop (asyncio.run refuses to start inside a running one).
    with sync_playwright() as playwright:
        # --no-sandbox: tests run as root (in CI and here), where chromium refuses its sandbox.
        launched = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        locale="en-GB", viewport={"width": 390, "height": 844}, java_script_enabled=False
    )
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, limit: int = 4000) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return text[-limit:].strip() or "(nothing)"


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()  # uvicorn stops gracefully on SIGTERM
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    servers: list[subprocess.Popen[bytes]] = []

    def start(database_url: str, env: Mapping[str, str] | None = None) -> str:
        environment = {**os.environ, **(env or {})}
        number = len(servers) + 1
        directory = tmp_path / f"server-{number}"
        directory.mkdir()
        stdout, stderr = directory / "stdout.log", directory / "stderr.log"
        port = _free_port()
        with stdout.open("wb") as out, stderr.open("wb") as err:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "canasta",
                    "serve",
                    "--db",
                    database_url,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                stdout=out,
                stderr=err,
                env=environment,
                # Without CANASTA_KEYS a PostgreSQL database's keys are ./canasta-keys: never
                # the repository's.
                cwd=directory,
            )
        servers.append(server)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(
                    f"canasta serve exited with status {server.returncode} before answering "
                    f"({ENV_KEYS}={environment.get(ENV_KEYS, '(unset)')}); its stderr:\n"
                    f"{_tail(stderr)}"
                )
            try:
                httpx.get(base + READY_PATH, timeout=1)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            return base
        _stop(server)
        pytest.fail(
            f"canasta serve did not answer on {base} within {START_TIMEOUT:.0f} s; its stderr:\n"
            f"{_tail(stderr)}"
        )

    yield start
    for server in reversed(servers):
        _stop(server)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@pytest.fixture
def screenshot() -> Screenshot:
    def take(page: Page, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ValueError(f"a screenshot name is letters, digits, '.', '_' and '-': {name!r}")
        path = SCREENSHOTS / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=path, full_page=True)
        return path

    return take
