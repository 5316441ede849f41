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
from tests.helpers import World


def test_a_cashier_redeems_online_and_offline_from_the_page(
    client: TestClient, engine: sa.Engine, world: World, tmp_path: Path
) -> None:
    offline.set_offline_share(engine, "fuel", "0.25")
    offline.set_daily_cap(engine, "fs-1", "fuel", "100")
    network = Network(client._transport)
    http = httpx.Client(base_url="http://testserver", transport=network)
    OutletClient.enrol(tmp_path / "outlet", "http://testserver", "fs-1", world.tokens["fs-1"], http).close()
    page = TestClient(
        create_page(tmp_path / "outlet", httpx.Client(base_url="http://testserver", transport=network))
    )
    car = next(iter(world.vehicle_cards.values()))
    code = card_payload(engine, keyring_of(engine), car)

    home = page.get("/")
    assert home.status_code == 200 and "ONLINE" in home.text and len(home.content) < 50_000
    assert (
        "script" not in home.text.lower() and "default-src 'none'" in home.headers["content-security-policy"]
    )
    found = re.search(r'name="csrf" value="([^"]+)"', home.text)
    assert found is not None
    csrf = found[1]
    assert page.post("/redeem", data={"card": car, "programme": "fuel", "quantity": "5"}).status_code == 403

    done = page.post("/redeem", data={"card": car, "programme": "fuel", "quantity": "5", "csrf": csrf})
    assert "HAND OUT 5 fuel" in done.text and "35 left this cycle" in done.text
    hostile = page.post(
        "/redeem", data={"card": "<script>x</script>", "programme": "fuel", "quantity": "1", "csrf": csrf}
    )
    assert "DO NOT HAND OUT" in hostile.text and "<script>x" not in hostile.text

    network.down = True
    assert "OFFLINE" in page.get("/").text
    typed = page.post("/redeem", data={"card": car, "programme": "fuel", "quantity": "2", "csrf": csrf})
    assert "DO NOT HAND OUT" in typed.text and "scan the card" in typed.text
    served = page.post("/redeem", data={"card": code, "programme": "fuel", "quantity": "2", "csrf": csrf})
    assert "HAND OUT 2 fuel" in served.text and "OFFLINE: recorded here" in served.text
    assert "8 more may be taken offline here this cycle" in served.text
    assert "Not synced" in page.post("/sync", data={"csrf": csrf}).text

    network.down = False
    synced = page.post("/sync", data={"csrf": csrf})
    assert "Synced 3" in synced.text and "0 journal entries waiting" in synced.text
