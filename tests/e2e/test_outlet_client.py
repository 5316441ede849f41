"""The outlet client against the API: online, offline when the network drops, and sync."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from canasta.outlet.client import OutletClient, OutletError
from canasta.service import offline
from canasta.service.card_tokens import card_payload
from canasta.service.cards import card_balance
from canasta.service.transparency import keyring_of
from tests.helpers import World, fuel_cycle_around_today


class Network(httpx.BaseTransport):
    """The test server's transport with a switch: when down, every request fails to connect."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.down = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("the network is down", request=request)
        return self.inner.handle_request(request)


@pytest.fixture
def network(client: TestClient) -> Network:
    return Network(client._transport)


def outlet_client(path: Path, world: World, network: Network, enrol: bool = True) -> OutletClient:
    http = httpx.Client(base_url="http://testserver", transport=network)
    if enrol:
        return OutletClient.enrol(path, "http://testserver", "fs-1", world.tokens["fs-1"], http)
    return OutletClient(path, http)


def fuel_left(engine: sa.Engine, card: str) -> int:
    return next(line.remaining for line in card_balance(engine, card)[1] if line.programme == "fuel")


def test_an_outlet_serves_online_then_offline_and_syncs_once_back(
    engine: sa.Engine, world: World, network: Network, tmp_path: Path
) -> None:
    fuel_cycle_around_today(engine)
    offline.set_offline_share(engine, "fuel", "0.25")  # 10 L of a 40 L entitlement
    offline.set_daily_cap(engine, "fs-1", "fuel", "100")
    outlet = outlet_client(tmp_path / "outlet", world, network)
    car = next(iter(world.vehicle_cards.values()))
    code = card_payload(engine, keyring_of(engine), car)

    online = outlet.redeem(car, "fuel", "5")
    assert (online.mode, online.counter, online.remaining) == ("online", 1, "35")
    refused = outlet.redeem(car, "fuel", "100")
    assert refused.mode == "refused" and "only 35 litre remain" in refused.message

    network.down = True
    served = outlet.redeem(code, "fuel", "8")
    assert served.mode == "offline" and served.message.startswith("OFFLINE") and served.remaining == "2"
    capped = outlet.redeem(code, "fuel", "3")  # 8 + 3 > the 10 L offline cap
    assert capped.mode == "refused" and "may take 2 litre more" in capped.message
    typed = outlet.redeem(car, "fuel", "1")
    assert typed.mode == "refused" and "scan the card's code" in typed.message
    assert outlet.status()["journal"]["waiting"] == 5
    with pytest.raises(OutletError, match="cannot be reached"):
        outlet.sync()

    network.down = False
    summary = outlet.sync()
    assert summary.sent == 5 and summary.gaps == []
    assert summary.outcomes == {"replayed": 1, "void": 3, "redeemed": 1}
    assert fuel_left(engine, car) == 40_000 - 5_000 - 8_000  # each counted once
    assert outlet.sync().sent == 0 and outlet.status()["journal"]["waiting"] == 0
    outlet.close()


def test_a_redemption_cut_short_by_a_crash_is_void_unless_the_server_had_it(
    engine: sa.Engine, world: World, network: Network, tmp_path: Path
) -> None:
    outlet = outlet_client(tmp_path / "outlet", world, network)
    car = next(iter(world.vehicle_cards.values()))
    # Killed after writing the journal, before the online request left: never handed out.
    outlet.journal.append(car, "fuel", 4_000, "2026-11-29T10:00:00.000000Z", None)
    outlet.close()
    again = outlet_client(tmp_path / "outlet", world, network, enrol=False)
    summary = again.sync()
    assert summary.outcomes == {"void": 1}
    assert fuel_left(engine, car) == 40_000
    again.close()


def test_enrolment_refuses_a_directory_of_another_outlet(
    engine: sa.Engine, world: World, network: Network, tmp_path: Path
) -> None:
    outlet_client(tmp_path / "outlet", world, network).close()
    http = httpx.Client(base_url="http://testserver", transport=network)
    with pytest.raises(OutletError, match="already holds outlet 'fs-1'"):
        OutletClient.enrol(tmp_path / "outlet", "http://testserver", "shop-1", world.tokens["shop-1"], http)
