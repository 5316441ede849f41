"""The cashier's page: a small local web page over the outlet client (``canasta outlet
serve``). Server-rendered, no JavaScript; it listens on 127.0.0.1 only, and every form
carries a token drawn when the page starts, so another web page the cashier has open cannot
post to it.

It shows whether the server answers (ONLINE or OFFLINE), what waits to sync, and for each
redemption in large letters whether to hand the goods out.
"""

from __future__ import annotations

import hmac
import secrets
from html import escape
from pathlib import Path

import httpx
from fastapi import FastAPI, Form
from fastapi.responses import HTMLResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

from canasta.domain.errors import CanastaError
from canasta.domain.model import format_card_id
from canasta.domain.quantity import format_milli
from canasta.outlet.client import OutletClient, OutletError

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:40rem;margin:1rem auto;padding:0 1rem;color:#111}
h1{font-size:1.3rem}.state{padding:.4rem .8rem;border-radius:.3rem;font-weight:bold;display:inline-block}
.online{background:#d7f5dd;color:#0b4d1c}.offline{background:#fff0c2;color:#5c4300}
.go{background:#0b6b2a;color:#fff}.stop{background:#a30d0d;color:#fff}
.result{font-size:1.6rem;padding:1rem;border-radius:.4rem;margin:1rem 0}
label{display:block;margin:.6rem 0 .2rem;font-weight:600}input{font-size:1.1rem;padding:.4rem;width:100%}
button{font-size:1.1rem;padding:.5rem 1.2rem;margin-top:.8rem}
"""


_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"


def create_page(
    directory: Path, http: httpx.Client | None = None, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> FastAPI:
    client = OutletClient(directory, http)
    token = secrets.token_urlsafe(24)
    app = FastAPI(title="canasta outlet", docs_url=None, redoc_url=None, openapi_url=None)
    # Only this machine's names: a hostile site whose name resolves to 127.0.0.1 (DNS
    # rebinding) is refused before it can read the form token.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))
    # Each redemption form may be sent once: a double click or a reload's "send again" must
    # not record a second redemption.
    unsent: set[str] = set()

    def page(result: str = "") -> HTMLResponse:
        online = client.reachable()
        waiting = client.journal.counts().get("waiting", 0)
        programmes = [a["programme"] for a in client.status()["allowances"]]
        options = "".join(f'<option value="{escape(p)}">' for p in programmes)
        state = (
            '<span class="state online">ONLINE</span>'
            if online
            else '<span class="state offline">OFFLINE: serving from the allowance</span>'
        )
        body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>canasta · {escape(client.code)}</title>
<style>{_STYLE}</style></head><body>
<header><h1>Outlet {escape(client.code)}</h1>
<p>{state} · {waiting} journal entries waiting to sync</p></header>
<main>{result}
<form method="post" action="/redeem">
<input type="hidden" name="csrf" value="{token}"><input type="hidden" name="once" value="{fresh()}">
<label for="card">Card (scan the code, or type the id)</label>
<input id="card" name="card" required autofocus autocomplete="off">
<label for="programme">Programme</label>
<input id="programme" name="programme" list="programmes" required>
<datalist id="programmes">{options}</datalist>
<label for="quantity">Quantity</label>
<input id="quantity" name="quantity" inputmode="decimal" required>
<button type="submit">Redeem</button></form>
<form method="post" action="/sync"><input type="hidden" name="csrf" value="{token}">
<button type="submit">Sync now</button></form></main></body></html>"""
        return HTMLResponse(
            body,
            headers={
                "Content-Security-Policy": _POLICY,
                "X-Frame-Options": "DENY",
                "Cache-Control": "no-store",
            },
        )

    def fresh() -> str:
        once = secrets.token_urlsafe(12)
        if len(unsent) > 10_000:
            unsent.clear()
        unsent.add(once)
        return once

    def checked(csrf: str) -> bool:
        return hmac.compare_digest(csrf.encode(), token.encode())

    def banner(css: str, text: str) -> str:
        return f'<div class="result {css}" role="status">{text}</div>'

    @app.get("/", response_class=HTMLResponse)
    def home() -> HTMLResponse:
        return page()

    @app.post("/redeem", response_class=HTMLResponse)
    def redeem(
        card: str = Form(...),
        programme: str = Form(...),
        quantity: str = Form(...),
        csrf: str = Form(""),
        once: str = Form(""),
    ) -> HTMLResponse:
        if not checked(csrf):
            return HTMLResponse("This form is out of date; reload the page.", status_code=403)
        if once not in unsent:
            return page(
                banner("stop", "This form was already sent: see the journal, nothing was redeemed again.")
            )
        unsent.discard(once)
        try:
            result = client.redeem(card.strip(), programme.strip(), quantity.strip())
        except CanastaError as bad:
            return page(banner("stop", f"DO NOT HAND OUT: {escape(bad.message)}"))
        what = f"{escape(format_milli(result.quantity))} {escape(programme)}"
        if result.mode == "refused":
            return page(banner("stop", f"DO NOT HAND OUT {what}: {escape(result.message)}"))
        if result.remaining is None:
            left = ""
        elif result.mode == "offline":
            left = f" · {escape(result.remaining)} more may be taken offline here this cycle"
        else:
            left = f" · {escape(result.remaining)} left this cycle"
        note = " · OFFLINE: recorded here, synced later" if result.mode == "offline" else ""
        return page(
            banner("go", f"HAND OUT {what} to card {escape(format_card_id(result.card))}{left}{note}")
        )

    @app.post("/sync", response_class=HTMLResponse)
    def sync(csrf: str = Form("")) -> HTMLResponse:
        if not checked(csrf):
            return HTMLResponse("This form is out of date; reload the page.", status_code=403)
        try:
            summary = client.sync()
            client.refresh()
        except OutletError as down:
            return page(banner("stop", f"Not synced: {escape(down.message)}"))
        parts = ", ".join(f"{n} {escape(k)}" for k, n in sorted(summary.outcomes.items())) or "nothing new"
        return page(banner("go", f"Synced {summary.sent}: {parts}"))

    return app
