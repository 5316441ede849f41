"""The cashier's page over the outlet client, online and offline."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import sqlalchemy as sa
from fastapi.testclient import TestClient

from canasta.outlet.client import OutletClient
from canasta.outlet.page import create_page
from canasta.service import offline
from canasta.service.card_tokens import card_payload
from canasta.service.transparency import keyring_of
from tests.e2e.test_outlet_client import Network
from tests.helpers import World, fuel_cycle_around_today


def test_a_cashier_redeems_online_and_offline_from_the_page(
    client: TestClient, engine: sa.Engine, world: World, tmp_path: Path
) -> None:
    fuel_cycle_around_today(engine)
    offline.set_offline_share(engine, "fuel", "0.25")
    offline.set_daily_cap(engine, "fs-1", "fuel", "100")
    network = Network(client._transport)
    http = httpx.Client(base_url="http://testserver", transport=network)
    OutletClient.enrol(tmp_path / "outlet", "http://testserver", "fs-1", world.tokens["fs-1"], http).close()
    page = TestClient(
        create_page(
            tmp_path / "outlet",
            httpx.Client(base_url="http://testserver", transport=network),
            ("testserver",),
        )
    )
    car = next(iter(world.vehicle_cards.values()))
    code = card_payload(engine, keyring_of(engine), car)

    home = page.get("/")
    assert home.status_code == 200 and "ONLINE" in home.text and len(home.content) < 50_000
    assert (
        "script" not in home.text.lower() and "default-src 'none'" in home.headers["content-security-policy"]
    )
    csrf, once = fields(home.text)
    assert page.post("/redeem", data={"card": car, "programme": "fuel", "quantity": "5"}).status_code == 403
    assert page.get("/", headers={"host": "rebound.example"}).status_code == 400  # DNS rebinding

    def redeem(card: str, quantity: str) -> str:
        nonlocal once
        answer = page.post(
            "/redeem",
            data={"card": card, "programme": "fuel", "quantity": quantity, "csrf": csrf, "once": once},
        )
        text: str = answer.text
        sent, once = once, fields(text)[1]
        assert sent != once
        return text

    first_once = once
    done = redeem(car, "5")
    assert "HAND OUT 5 fuel" in done and "35 left this cycle" in done
    again = page.post(
        "/redeem", data={"card": car, "programme": "fuel", "quantity": "5", "csrf": csrf, "once": first_once}
    )
    assert "already sent" in again.text  # a double click records nothing more
    hostile = redeem("<script>x</script>", "1")
    assert "DO NOT HAND OUT" in hostile and "<script>x" not in hostile

    network.down = True
    assert "OFFLINE" in page.get("/").text
    typed = redeem(car, "2")
    assert "DO NOT HAND OUT" in typed and "scan the card" in typed
    served = redeem(code, "2")
    assert "HAND OUT 2 fuel" in served and "OFFLINE: recorded here" in served
    assert "8 more may be taken offline here this cycle" in served
    assert "Not synced" in page.post("/sync", data={"csrf": csrf}).text

    network.down = False
    synced = page.post("/sync", data={"csrf": csrf})
    assert "Synced 3" in synced.text and "0 journal entries waiting" in synced.text


def fields(text: str) -> tuple[str, str]:
    csrf = re.search(r'name="csrf" value="([^"]+)"', text)
    once = re.search(r'name="once" value="([^"]+)"', text)
    assert csrf is not None and once is not None
    return csrf[1], once[1]
