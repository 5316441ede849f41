"""An outlet enrols, reads its allowance and syncs its journal over the API."""

from __future__ import annotations

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from canasta.domain.offline import JournalEntry, public_key_text, sign_entry
from canasta.service import offline
from tests.helpers import World

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def bearer(world: World, code: str = "fs-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[code]}"}


def test_an_outlet_enrols_reads_its_allowance_and_syncs(
    client: TestClient, world: World, engine: sa.Engine
) -> None:
    offline.set_offline_share(engine, "fuel", "0.25")
    offline.set_daily_cap(engine, "fs-1", "fuel", "200")
    key = public_key_text(KEY.public_key())
    answer = client.post("/api/v1/outlets/fs-1/enrol", json={"public_key": key}, headers=bearer(world))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["allowances"][0] | {"cycle_id": 0, "starts_on": "", "ends_on": ""} == {
        "programme": "fuel",
        "unit": "litre",
        "cycle_id": 0,
        "starts_on": "",
        "ends_on": "",
        "share_permille": 250,
        "reference": 40_000,
        "daily_cap": 200_000,
    }
    assert body["issuer_key"].startswith("canasta")
    assert client.get("/api/v1/outlets/fs-1/allowance", headers=bearer(world)).json() == body
    # Another outlet's token may not act for this one.
    assert client.get("/api/v1/outlets/fs-1/allowance", headers=bearer(world, "shop-1")).status_code == 403

    car = next(iter(world.vehicle_cards.values()))
    entries = [
        sign_entry(JournalEntry("fs-1", n, car, "fuel", q, "2026-11-29T10:00:00Z"), KEY).as_dict()
        for n, q in ((1, 10_000), (2, 35_000))
    ]
    synced = client.post("/api/v1/outlets/fs-1/sync", json={"entries": entries}, headers=bearer(world))
    assert synced.status_code == 200, synced.text
    assert [(o["outcome"], o["applied"], o["shortfall"]) for o in synced.json()["outcomes"]] == [
        ("redeemed", 10_000, 0),
        ("conflict", 30_000, 5_000),
    ]
    again = client.post("/api/v1/outlets/fs-1/sync", json={"entries": entries}, headers=bearer(world))
    assert [o["outcome"] for o in again.json()["outcomes"]] == ["already", "already"]

    broken = [{**entries[0], "counter": "one"}]
    refused = client.post("/api/v1/outlets/fs-1/sync", json={"entries": broken}, headers=bearer(world))
    assert refused.status_code == 422
    assert "entries[0]: 'counter' must be an integer" in refused.json()["detail"]
    forged = [{**entries[0], "quantity": 1}]
    refused = client.post("/api/v1/outlets/fs-1/sync", json={"entries": forged}, headers=bearer(world))
    assert refused.status_code == 422 and "signature does not verify" in refused.json()["detail"]
    other = public_key_text(Ed25519PrivateKey.generate().public_key())
    assert (
        client.post(
            "/api/v1/outlets/fs-1/enrol", json={"public_key": other}, headers=bearer(world)
        ).status_code
        == 409
    )
