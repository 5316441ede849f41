"""The HTTP API end to end: receipts, retries, every refusal as RFC 9457 problem details,
and no input that makes it fail with a 500."""

import json
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from canasta.domain.model import CardStatus, format_card_id
from canasta.domain.receipt import LogReceipt, verify_receipt
from canasta.domain.signed_note import Verifier
from canasta.entrypoints.api.app import create_app, create_server
from canasta.entrypoints.api.schemas import ReceiptOut
from canasta.service import cards as card_service
from canasta.service import programmes as programme_service
from canasta.service.bootstrap import bootstrap
from canasta.service.settings import Settings
from tests.helpers import World


def auth(world: World, outlet: str = "fs-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[outlet]}"}


def body(world: World, **changes: Any) -> dict[str, Any]:
    return {
        "card": format_card_id(world.vehicle_cards["AB0001"]),
        "programme": "fuel",
        "quantity": "12.5",
        "outlet": "fs-1",
        "idempotency_key": "key-1",
    } | changes


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["type"] == f"/problems/{slug}"
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    return problem


def test_a_redemption_answers_201_with_a_receipt_and_a_retry_gets_the_same(
    client: TestClient, world: World
) -> None:
    first = client.post("/api/v1/redemptions", json=body(world), headers=auth(world))
    assert first.status_code == 201, first.text
    receipt = first.json()
    ReceiptOut.model_validate(receipt)  # what is sent is what /openapi.json promises
    assert receipt["quantity"] == "12.5" and receipt["remaining"] == "27.5" and receipt["unit"] == "litre"
    assert receipt["ledger_position"] == 5 and len(receipt["entry_hash"]) == 64
    assert set(receipt) == {
        "redemption_id",
        "card",
        "programme",
        "unit",
        "quantity",
        "remaining",
        "outlet",
        "time",
        "ledger_position",
        "entry_hash",
        "log_receipt",
    }
    # The receipt verifies against the log's public key alone.
    key = Verifier.parse(client.get("/log/v1/key").text)
    proved = verify_receipt(LogReceipt.from_dict(receipt["log_receipt"]), [key])
    assert proved.entry.seq == 5 and proved.entry.body["quantity"] == 12500
    again = client.post("/api/v1/redemptions", json=body(world), headers=auth(world))
    assert again.status_code == 201
    assert again.json() == receipt  # the same receipt, proof and checkpoint included
    assert again.headers["idempotent-replayed"] == "true"
    balance = client.get(f"/api/v1/cards/{world.vehicle_cards['AB0001']}/balance", headers=auth(world))
    assert balance.status_code == 200
    (line,) = balance.json()["balances"]
    assert (line["entitled"], line["redeemed"], line["remaining"]) == ("40", "12.5", "27.5")


def test_the_key_may_come_as_a_header(client: TestClient, world: World) -> None:
    payload = body(world)
    del payload["idempotency_key"]
    response = client.post(
        "/api/v1/redemptions", json=payload, headers=auth(world) | {"Idempotency-Key": "h1"}
    )
    assert response.status_code == 201
    missing = client.post("/api/v1/redemptions", json=payload, headers=auth(world))
    assert_problem(missing, 422, "invalid-input")


def test_the_same_key_with_another_body_is_refused(client: TestClient, world: World) -> None:
    assert client.post("/api/v1/redemptions", json=body(world), headers=auth(world)).status_code == 201
    response = client.post("/api/v1/redemptions", json=body(world, quantity="1"), headers=auth(world))
    assert_problem(response, 422, "idempotency-key-reused")


def test_over_balance_is_409_and_takes_nothing(client: TestClient, world: World) -> None:
    response = client.post("/api/v1/redemptions", json=body(world, quantity="40.001"), headers=auth(world))
    problem = assert_problem(response, 409, "insufficient-balance")
    assert "only 40 litre remain" in problem["detail"]


def test_refusals_have_the_right_status(client: TestClient, world: World, engine: sa.Engine) -> None:
    household_card = world.household_cards["H1"]
    card_service.withdraw_card(engine, world.vehicle_cards["AB0002"], CardStatus.REVOKED)
    cases = [
        (body(world, card="0000-0000-0000-0000"), 404, "card-not-found"),
        (body(world, card="not a card"), 422, "malformed-card-id"),
        (body(world, card=world.vehicle_cards["AB0002"]), 403, "card-revoked"),
        (body(world, programme="bread"), 404, "programme-not-found"),
        (body(world, card=household_card), 422, "wrong-programme"),
        (body(world, outlet="shop-1"), 403, "outlet-mismatch"),
    ]
    for n, (payload, status, slug) in enumerate(cases):
        payload["idempotency_key"] = f"case-{n}"
        assert_problem(client.post("/api/v1/redemptions", json=payload, headers=auth(world)), status, slug)
    programme_service.close_cycle(engine, "fuel")
    assert_problem(
        client.post("/api/v1/redemptions", json=body(world, idempotency_key="closed"), headers=auth(world)),
        409,
        "cycle-closed",
    )


def test_every_outlet_needs_its_own_valid_token(client: TestClient, world: World) -> None:
    response = client.post("/api/v1/redemptions", json=body(world))
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/api/v1/redemptions", json=body(world), headers={"Authorization": "Bearer cnt_nope"})
    assert_problem(wrong, 401, "unauthenticated")
    as_other = client.post("/api/v1/redemptions", json=body(world), headers=auth(world, "shop-1"))
    assert_problem(as_other, 403, "outlet-mismatch")


@pytest.mark.parametrize(
    ("raw", "location"),
    [
        (b"{not json", "body"),
        (json.dumps({"programme": None}).encode(), "body.programme"),
        (json.dumps({"quantity": -1}).encode(), "body.quantity"),
        (json.dumps({"quantity": "1e9"}).encode(), "body.quantity"),
        (json.dumps({"quantity": "0.0001"}).encode(), "body.quantity"),
        (json.dumps({"quantity": [1]}).encode(), "body.quantity"),
        (json.dumps({"surprise": 1}).encode(), "body.surprise"),
        (json.dumps([1, 2]).encode(), "body"),
    ],
)
def test_malformed_requests_get_422_naming_the_field(
    client: TestClient, world: World, raw: bytes, location: str
) -> None:
    merged = raw
    if raw.startswith(b"{") and raw.endswith(b"}"):
        merged = json.dumps(body(world) | json.loads(raw)).encode()
    response = client.post(
        "/api/v1/redemptions", content=merged, headers=auth(world) | {"Content-Type": "application/json"}
    )
    problem = assert_problem(response, 422, "validation-error")
    assert any(e["location"].startswith(location) for e in problem["errors"]), problem


def test_openapi_and_unknown_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/v1/redemptions" in spec["paths"]
    assert "/api/v1/cards/{card}/balance" in spec["paths"]
    assert_problem(client.get("/nowhere"), 404, "http-404")
    assert client.get("/problems/insufficient-balance").status_code == 200


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.dictionaries(
        st.sampled_from(["card", "programme", "quantity", "outlet", "idempotency_key", "x"]),
        json_values,
        max_size=6,
    )
)
def test_no_input_produces_a_500(client: TestClient, world: World, payload: dict[str, Any]) -> None:
    response = client.post("/api/v1/redemptions", json=payload, headers=auth(world))
    assert response.status_code < 500, response.text


@pytest.mark.parametrize("fast", [True, False])
def test_the_fast_path_and_the_framework_route_answer_alike(
    world: World, database_url: str, fast: bool
) -> None:
    canasta = bootstrap(Settings.load(database_url))
    app = create_server(canasta) if fast else create_app(canasta)
    with TestClient(app, raise_server_exceptions=False) as client:
        ok = client.post("/api/v1/redemptions", json=body(world), headers=auth(world))
        assert ok.status_code == 201
        assert ok.json()["remaining"] == "27.5"
        again = client.post("/api/v1/redemptions", json=body(world), headers=auth(world))
        assert again.json() == ok.json()
        assert again.headers["idempotent-replayed"] == "true"
        over = client.post(
            "/api/v1/redemptions", json=body(world, quantity="99", idempotency_key="k2"), headers=auth(world)
        )
        assert_problem(over, 409, "insufficient-balance")
        bad = client.post("/api/v1/redemptions", content=b"{", headers=auth(world))
        assert_problem(bad, 422, "validation-error")
        anonymous = client.post("/api/v1/redemptions", json=body(world))
        assert_problem(anonymous, 401, "unauthenticated")
        assert anonymous.headers["www-authenticate"] == "Bearer"
    canasta.close()


def test_an_oversized_body_is_refused_unread(client: TestClient, world: World) -> None:
    huge = json.dumps(body(world) | {"padding": "x" * 20_000}).encode()
    response = client.post("/api/v1/redemptions", content=huge, headers=auth(world))
    problem = assert_problem(response, 413, "too-large")
    assert "larger than" in problem["detail"]


@pytest.mark.parametrize("key", ["a\u0000b", "with space", "ñandú", "x" * 129])
def test_idempotency_keys_must_be_plain_printable_ascii(client: TestClient, world: World, key: str) -> None:
    response = client.post("/api/v1/redemptions", json=body(world, idempotency_key=key), headers=auth(world))
    assert_problem(response, 422, "validation-error")
    payload = body(world)
    del payload["idempotency_key"]
    as_header = client.post(
        "/api/v1/redemptions", json=payload, headers=auth(world) | {"Idempotency-Key": "x" * 129}
    )
    assert_problem(as_header, 422, "invalid-input")


def _food_entitlement(client: TestClient, world: World, ref: str = "H2") -> tuple[int, str]:
    card = format_card_id(world.household_cards[ref])
    balance = client.get(f"/api/v1/cards/{card}/balance", headers=auth(world, "shop-1"))
    assert balance.status_code == 200, balance.text
    line = next(b for b in balance.json()["balances"] if b["programme"] == "food")
    return int(line["entitlement"]), card


def test_a_card_holder_reads_why_in_english_and_spanish(client: TestClient, world: World) -> None:
    entitlement, card = _food_entitlement(client, world)
    answer = client.get(f"/api/v1/entitlements/{entitlement}/explanation", headers={"Canasta-Card": card})
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["policy"]["programme"] == "food" and found["policy"]["version"] == 1
    assert len(found["policy"]["sha256"]) == 64
    assert found["eligible"] is True and found["combine"] == "and"
    assert found["quota"]["text"] == "2 + 1.5 × number of household members"
    assert found["quota"]["used"] == [{"what": "number of household members", "value": "2"}]
    assert found["quota"]["quantity"] == "5" and found["quota"]["unit"] == "kg"
    assert found["summary"] == "Entitled to 5 kg of food this cycle."
    assert "appeal" in found["appeal"]
    spanish = client.get(
        f"/api/v1/entitlements/{entitlement}/explanation",
        headers={"Canasta-Card": card, "Accept-Language": "es-PE,es;q=0.9"},
    ).json()
    assert spanish["language"] == "es" and spanish["summary"] == "Le corresponden 5 kg de food en este ciclo."
    assert spanish["quota"]["text"] == "2 + 1.5 × número de miembros del hogar"
    english = client.get(
        f"/api/v1/entitlements/{entitlement}/explanation?lang=en",
        headers={"Canasta-Card": card, "Accept-Language": "es"},
    ).json()
    assert english["language"] == "en"


def test_an_explanation_is_not_found_for_another_card_or_none(client: TestClient, world: World) -> None:
    entitlement, _ = _food_entitlement(client, world, "H2")
    other = format_card_id(world.household_cards["H3"])
    wrong = client.get(f"/api/v1/entitlements/{entitlement}/explanation", headers={"Canasta-Card": other})
    assert_problem(wrong, 404, "not-found")
    missing = client.get(
        f"/api/v1/entitlements/{entitlement + 1000}/explanation", headers={"Canasta-Card": other}
    )
    assert wrong.json()["detail"] == missing.json()["detail"].replace(
        str(entitlement + 1000), str(entitlement)
    )
    assert client.get(f"/api/v1/entitlements/{entitlement}/explanation").status_code == 422
    assert_problem(
        client.get(f"/api/v1/entitlements/{entitlement}/explanation", headers={"Canasta-Card": "nonsense"}),
        422,
        "malformed-card-id",
    )
    assert (
        client.get(
            f"/api/v1/entitlements/{entitlement}/explanation?lang=fr", headers={"Canasta-Card": other}
        ).status_code
        == 422
    )


def test_a_withdrawn_card_reads_no_explanation(client: TestClient, world: World, engine: sa.Engine) -> None:
    entitlement, card = _food_entitlement(client, world)
    card_service.withdraw_card(engine, world.household_cards["H2"], CardStatus.LOST)
    answer = client.get(f"/api/v1/entitlements/{entitlement}/explanation", headers={"Canasta-Card": card})
    assert_problem(answer, 404, "not-found")
