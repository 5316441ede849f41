"""The DCI registry API over HTTP: signed envelopes both ways, the standard's refusals, the
firewall on query attributes, asynchronous answers by callback, txn/status, and a partner's
search showing up in the household's access log."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from canasta.adapters.tables import access_log, partner_requests
from canasta.domain import dci_signature
from canasta.entrypoints.api.app import create_server
from canasta.entrypoints.api.dci import Notifier
from canasta.service import partners, portal
from canasta.service.bootstrap import bootstrap
from canasta.service.settings import Settings
from tests.helpers import World, build_world

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KID = "ministry|k1|ed25519"
PURPOSE = "Checking eligibility for the school meals programme"


class Site:
    def __init__(
        self, engine: sa.Engine, world: World, client: TestClient, token: str, notifier: Notifier
    ) -> None:
        self.engine, self.world, self.client, self.token = engine, world, client, token
        self.notifier = notifier

    def post(
        self,
        path: str,
        action: str,
        message: dict[str, Any] | None,
        *,
        sign: bool = True,
        key: Ed25519PrivateKey = KEY,
        token: str | None = None,
        **header: Any,
    ) -> Any:
        head = {
            "version": "1.0.0",
            "message_id": str(uuid.uuid4()),
            "message_ts": "2026-11-29T12:00:00Z",
            "action": action,
            "sender_id": "ministry",
            "total_count": 1,
        } | header
        body: dict[str, Any] = {"header": head, "message": message}
        if sign:
            body["signature"] = dci_signature.sign(
                head, message, key, KID, int(datetime.now(UTC).timestamp())
            )
        return self.client.post(path, json=body, headers={"Authorization": f"Bearer {token or self.token}"})


def _site(engine: sa.Engine, database_url: str, **settings: Any) -> Iterator[Site]:
    world = build_world(engine)
    _, token = partners.register(
        engine,
        None,
        "Ministry",
        "ministry",
        dci_signature.jwk(KEY.public_key(), "")["x"],
        "k1",
        PURPOSE,
        ["registration_id", "given_names", "household", "group_size"],
    )
    canasta = bootstrap(replace(Settings.load(database_url), **settings))
    server = create_server(canasta)
    notifier = server.app.state.notifier  # type: ignore[attr-defined]
    with TestClient(server, raise_server_exceptions=False) as client:
        yield Site(engine, world, client, token, notifier)
    canasta.close()


@pytest.fixture
def site(engine: sa.Engine, database_url: str) -> Iterator[Site]:
    yield from _site(engine, database_url)


def _uin(value: str = "H3-1", **criteria: Any) -> dict[str, Any]:
    return {
        "transaction_id": "t-1",
        "search_request": [
            {
                "reference_id": "r-1",
                "timestamp": "2026-11-29T12:00:00Z",
                "search_criteria": {
                    "query_type": "idtype-value",
                    "query": {"type": "UIN", "value": value},
                    **criteria,
                },
            }
        ],
    }


def _our_key(site: Site) -> Any:
    (key,) = site.client.get("/.well-known/jwks.json").json()["keys"]
    assert (key["kty"], key["crv"], key["kid"]) == ("OKP", "Ed25519", "canasta|dci|ed25519")
    return dci_signature.public_key_from(key["x"]), key["kid"]


def test_a_signed_sync_search_is_answered_signed_and_the_read_is_in_the_portal(site: Site) -> None:
    answer = site.post("/registry/sync/search", "search", _uin())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["header"]["action"] == "on-search" and body["header"]["status"] == "succ"
    assert body["header"]["receiver_id"] == "ministry" and body["header"]["sender_id"] == "canasta"
    public, kid = _our_key(site)
    now = int(datetime.now(UTC).timestamp())
    dci_signature.verify(
        body["signature"], body["header"], body["message"], lambda k: public if k == kid else None, now
    )
    (item,) = body["message"]["search_response"]
    assert (item["reference_id"], item["status"], item["locale"]) == ("r-1", "succ", "eng")
    assert item["pagination"] == {"page_size": 100, "page_number": 1, "total_count": 1}
    (record,) = item["data"]["reg_records"]
    assert record["demographic_info"]["name"] == {"@type": "Name", "given_name": "Ana"}
    assert "birth_date" not in record["demographic_info"]  # not among the partner's fields
    (seen,) = portal.access_log(site.engine, site.world.household_cards["H3"])
    assert (seen.actor_kind, seen.actor_name, seen.actor_role, seen.purpose) == (
        "partner",
        "Ministry",
        "partner system",
        PURPOSE,
    )


def test_refusals_carry_the_standards_codes_and_store_nothing(site: Site) -> None:
    cases = [
        (site.post("/registry/sync/search", "search", _uin(), sign=False), 401, "err.signature.missing"),
        (
            site.post("/registry/sync/search", "search", _uin(), key=Ed25519PrivateKey.generate()),
            401,
            "err.signature.invalid",
        ),
        (
            site.post("/registry/sync/search", "search", _uin(), token="dci_nope"),
            401,
            "err.request.unauthorized",
        ),
        (
            site.post("/registry/sync/search", "search", _uin(), sender_id="someone"),
            401,
            "err.sender_id.invalid",
        ),
        (site.post("/registry/sync/search", "search", None), 400, "err.request.bad"),
        (site.post("/registry/sync/search", "subscribe", _uin()), 400, "err.request.bad"),
        (
            site.post("/registry/sync/search", "search", _uin(), message_ts="yesterday"),
            400,
            "err.request.bad",
        ),
        (site.post("/registry/sync/search", "search", {"transaction_id": "t"}), 400, "err.request.bad"),
    ]
    for answer, status, code in cases:
        assert answer.status_code == status, answer.text
        assert answer.json()["message"]["ack_status"] == "ERR"
        assert answer.json()["message"]["error"]["code"] == code
    not_json = site.client.post(
        "/registry/sync/search", content=b"{nope", headers={"Authorization": f"Bearer {site.token}"}
    )
    assert not_json.status_code == 400 and not_json.json()["message"]["error"]["code"] == "err.request.bad"
    with site.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(access_log)) == 0


def test_a_query_on_a_protected_category_is_refused_and_the_refusal_kept(site: Site) -> None:
    message = _uin()
    message["search_request"][0]["search_criteria"] = {
        "query_type": "predicate",
        "query": [{"expression1": {"attribute_name": "religion", "operator": "eq", "attribute_value": "x"}}],
    }
    message["search_request"].append(_uin("H1-0")["search_request"][0] | {"reference_id": "r-2"})
    answer = site.post("/registry/sync/search", "search", message)
    assert answer.status_code == 200
    refused, found = answer.json()["message"]["search_response"]
    assert (refused["status"], refused["status_reason_code"]) == ("rjct", "rjct.search_criteria.invalid")
    assert "protected category" in refused["status_reason_message"] and "data" not in refused
    assert found["status"] == "succ"
    with site.engine.connect() as conn:
        kept = conn.execute(
            sa.select(partner_requests.c.status, partner_requests.c.reason_code, partner_requests.c.reason)
        ).one()
    assert (
        kept.status == "succ"
        and kept.reason_code == "rjct.search_criteria.invalid"
        and "religion" in kept.reason
    )


def test_bad_criteria_are_answered_item_by_item(site: Site) -> None:
    for criteria, code in [
        ({"pagination": {"page_size": 5000}}, "rjct.pagination.invalid"),
        ({"query_type": "graphql"}, "rjct.search_criteria.invalid"),
        ({"sort": [{"attribute_name": "shoe_size"}]}, "rjct.sort.invalid"),
    ]:
        message = _uin()
        message["search_request"][0]["search_criteria"] |= criteria
        (item,) = site.post("/registry/sync/search", "search", message).json()["message"]["search_response"]
        assert (item["status"], item["status_reason_code"]) == ("rjct", code)


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        _Receiver.received.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_an_async_search_is_acknowledged_then_called_back_and_kept_for_txn_status(
    engine: sa.Engine, database_url: str, receiver: str
) -> None:
    for site in _site(engine, database_url, dci_private_callbacks=True):
        ack = site.post("/registry/search", "search", _uin(), sender_uri=f"{receiver}/registry/on-search")
        assert ack.status_code == 202
        correlation = ack.json()["message"]["correlation_id"]
        assert ack.json()["message"]["ack_status"] == "ACK"
        # The test client runs background work before it returns the response.
        (called,) = _Receiver.received
        assert called["path"] == "/registry/on-search"
        callback = called["body"]
        assert callback["header"]["action"] == "on-search"
        assert (callback["message"]["transaction_id"], callback["message"]["correlation_id"]) == (
            "t-1",
            correlation,
        )
        status = site.post(
            "/registry/sync/txn/status",
            "txn-status",
            {
                "transaction_id": "t-2",
                "txnstatus_request": {
                    "reference_id": "r-9",
                    "txn_type": "search",
                    "attribute_type": "transaction_id",
                    "attribute_value": "t-1",
                },
            },
        )
        assert status.status_code == 200 and status.json()["header"]["action"] == "txn-on-status"
        txn = status.json()["message"]["txnstatus_response"]["txn_status"]
        assert txn["correlation_id"] == correlation and txn["search_response"][0]["status"] == "succ"


def test_callbacks_to_private_addresses_are_not_made_by_default(site: Site, receiver: str) -> None:
    ack = site.post("/registry/search", "search", _uin(), sender_uri=f"{receiver}/registry/on-search")
    assert ack.status_code == 202 and _Receiver.received == []


def test_unsigned_messages_only_where_the_operator_allows_them(engine: sa.Engine, database_url: str) -> None:
    for site in _site(engine, database_url, dci_allow_unsigned=True):
        message = _uin()
        head = {
            "message_id": "m",
            "message_ts": "2026-11-29T12:00:00Z",
            "action": "search",
            "sender_id": "ministry",
            "total_count": 1,
        }
        for placeholder in ("unsigned-stub", "unsigned", ""):
            answer = site.client.post(
                "/registry/sync/search",
                json={"signature": placeholder, "header": head, "message": message},
                headers={"Authorization": f"Bearer {site.token}"},
            )
            assert answer.status_code == 200, answer.text
        forged = site.client.post(
            "/registry/sync/search",
            json={"signature": "invalid-signature", "header": head, "message": message},
            headers={"Authorization": f"Bearer {site.token}"},
        )
        assert (
            forged.status_code == 401 and forged.json()["message"]["error"]["code"] == "err.signature.invalid"
        )


def test_callbacks_from_other_registries_are_acknowledged(site: Site) -> None:
    answer = site.post(
        "/registry/on-search",
        "on-search",
        {"transaction_id": "t", "correlation_id": "c-1", "search_response": []},
        status="succ",
    )
    assert answer.status_code == 200 and answer.json()["message"] == answer.json()["message"] | {
        "ack_status": "ACK",
        "correlation_id": "c-1",
    }


def test_a_subscriber_is_answered_then_notified_of_new_registrations_matching_its_filter(
    engine: sa.Engine, database_url: str, receiver: str
) -> None:
    from canasta.service import registry
    from tests.helpers import household

    for site in _site(engine, database_url, dci_private_callbacks=True):
        message = {
            "transaction_id": "t-s",
            "subscribe_request": [
                {
                    "reference_id": "r-1",
                    "timestamp": "2026-11-29T12:00:00Z",
                    "subscribe_criteria": {
                        "reg_event_type": "REGISTER",
                        "filter_type": "expression",
                        "filter": {"group_size": {"$ge": 2}},
                        "notify_record_type": "Member",
                    },
                },
                {
                    "reference_id": "r-2",
                    "timestamp": "2026-11-29T12:00:00Z",
                    "subscribe_criteria": {
                        "reg_event_type": "REGISTER",
                        "filter": [
                            {
                                "expression1": {
                                    "attribute_name": "religion",
                                    "operator": "eq",
                                    "attribute_value": "x",
                                }
                            }
                        ],
                        "notify_record_type": "Member",
                    },
                },
            ],
        }
        ack = site.post(
            "/registry/subscribe", "subscribe", message, sender_uri=f"{receiver}/registry/on-subscribe"
        )
        assert ack.status_code == 202
        (answered,) = _Receiver.received
        assert answered["path"] == "/registry/on-subscribe"
        made, refused = answered["body"]["message"]["subscribe_response"]
        assert made["status"] == "succ" and refused["status"] == "rjct"
        code = made["subscriptions"][0]["code"]
        assert site.notifier.tick() == 0  # nothing registered since
        registry.import_households(site.engine, [household("S1", 2, "Sur"), household("N9", 1, "Norte")])
        assert site.notifier.tick() == 1
        notified = _Receiver.received[-1]
        assert notified["path"] == "/registry/notify" and notified["body"]["header"]["action"] == "notify"
        events = notified["body"]["message"]["notify_event"]
        assert [e["data"]["reg_records"]["member_identifier"][0]["identifier_value"] for e in events] == [
            "S1-0",
            "S1-1",
        ]
        assert site.notifier.tick() == 0  # each person once
        seen = [a.actor_name for a in portal.access_log(site.engine, site.world.household_cards["H1"])]
        assert seen == []  # only the households announced were read
        ended = site.post(
            "/registry/unsubscribe",
            "unsubscribe",
            {
                "transaction_id": "t-u",
                "timestamp": "2026-11-29T12:00:00Z",
                "subscription_codes": [code, "sub-unknown"],
            },
            sender_uri=f"{receiver}/registry/on-unsubscribe",
        )
        assert ended.status_code == 202
        answer = _Receiver.received[-1]["body"]["message"]
        assert answer["subscription_status"] == [{"code": code, "status": "unsubscribe"}]
        assert answer["status_reason_code"] == "rjct.subscription_code.invalid"
        registry.import_households(site.engine, [household("S2", 1, "Sur")])
        assert site.notifier.tick() == 0


def test_a_page_of_nothing_is_a_malformed_request(site: Site) -> None:
    for pagination in (
        {"page_size": 0},
        {"page_size": 10, "page_number": 0},
        {"page_size": -3},
        {"page_size": "ten"},
    ):
        message = _uin(pagination=pagination)
        for path in ("/registry/sync/search", "/registry/search"):
            answer = site.post(path, "search", message)
            assert answer.status_code == 400, (path, pagination, answer.text)
            assert answer.json()["message"]["error"]["code"] == "err.request.bad"
        on_item = _uin()
        on_item["search_request"][0]["pagination"] = pagination
        assert site.post("/registry/sync/search", "search", on_item).status_code == 400


def test_an_expired_or_disabled_partner_and_an_oversized_body_are_refused(site: Site) -> None:
    with site.engine.begin() as conn:
        conn.execute(sa.text("UPDATE partners SET expires_at = '2020-01-31T00:00:00+00:00'"))
    expired = site.post("/registry/sync/search", "search", _uin())
    assert (
        expired.status_code == 401
        and expired.json()["message"]["error"]["code"] == "err.request.unauthorized"
    )
    assert "ended on 2020-01-31" in expired.json()["message"]["error"]["message"]
    with site.engine.begin() as conn:
        conn.execute(sa.text("UPDATE partners SET expires_at = NULL"))
    partners.set_active(site.engine, None, "ministry", False)
    assert site.post("/registry/sync/search", "search", _uin()).status_code == 401
    partners.set_active(site.engine, None, "ministry", True)
    huge = site.client.post(
        "/registry/sync/search",
        content=b"{" + b" " * 1_100_000 + b"}",
        headers={"Authorization": f"Bearer {site.token}", "Content-Type": "application/json"},
    )
    assert huge.status_code == 413 and huge.json()["message"]["error"]["code"] == "err.request.bad"
    assert site.post("/registry/sync/search", "search", _uin()).status_code == 200


def test_txn_status_gives_statuses_not_records_again(site: Site) -> None:
    assert site.post("/registry/sync/search", "search", _uin()).status_code == 200
    status = site.post(
        "/registry/sync/txn/status",
        "txn-status",
        {
            "transaction_id": "t-2",
            "txnstatus_request": {
                "reference_id": "r-9",
                "txn_type": "search",
                "attribute_type": "transaction_id",
                "attribute_value": "t-1",
            },
        },
    )
    (item,) = status.json()["message"]["txnstatus_response"]["txn_status"]["search_response"]
    assert item["status"] == "succ" and item["pagination"]["total_count"] == 1
    assert "data" not in item  # the records are not handed out again, unlogged
    with site.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(access_log)) == 1


def test_notifications_survive_a_bad_subscription_an_expiry_and_a_failed_delivery(
    engine: sa.Engine, database_url: str, receiver: str
) -> None:
    from canasta.adapters.tables import partner_subscriptions
    from canasta.service import registry
    from tests.helpers import household

    for site in _site(engine, database_url, dci_private_callbacks=True):

        def subscribe(filter_: Any, site: Site = site) -> None:
            message = {
                "transaction_id": "t-s",
                "subscribe_request": [
                    {
                        "reference_id": "r-1",
                        "timestamp": "2026-11-29T12:00:00Z",
                        "subscribe_criteria": {
                            "reg_event_type": "REGISTER",
                            "filter": filter_,
                            "notify_record_type": "Member",
                        },
                    }
                ],
            }
            site.post(
                "/registry/subscribe", "subscribe", message, sender_uri=f"{receiver}/registry/on-subscribe"
            )

        subscribe({"group_size": {"$ge": 1}})
        # A filter that stops running later (forced here: the registry checks filters when
        # they are made) must not stop the others.
        subscribe({"group_size": {"$ge": 1}})
        with site.engine.begin() as conn:
            code = conn.scalar(sa.select(sa.func.max(partner_subscriptions.c.code)))
            conn.execute(
                sa.update(partner_subscriptions)
                .where(partner_subscriptions.c.code == code)
                .values(filter='{"criteria": {"filter": {"shoe_size": 1}}, "watermark": 0}')
            )
        registry.import_households(site.engine, [household("S1", 1, "Sur")])
        _Receiver.received.clear()
        assert site.notifier.tick() == 1 and len(_Receiver.received) == 1
        # Undelivered (the receiver is gone): tried again, not lost.
        registry.import_households(site.engine, [household("S2", 1, "Sur")])
        real = site.notifier.gate.post
        site.notifier.gate.post = lambda uri, envelope: False  # type: ignore[method-assign]
        assert site.notifier.tick() == 0
        site.notifier.gate.post = real  # type: ignore[method-assign]
        assert site.notifier.tick() == 1
        # An expired partner is notified of nothing.
        registry.import_households(site.engine, [household("S3", 1, "Sur")])
        with site.engine.begin() as conn:
            conn.execute(sa.text("UPDATE partners SET expires_at = '2020-01-31T00:00:00+00:00'"))
        assert site.notifier.tick() == 0


def test_a_subscription_on_an_attribute_not_granted_or_not_held_is_refused(site: Site, receiver: str) -> None:
    for filter_ in ({"sex": "F"}, {"shoe_size": 1}):
        message = {
            "transaction_id": "t-s",
            "subscribe_request": [
                {
                    "reference_id": "r-1",
                    "timestamp": "2026-11-29T12:00:00Z",
                    "subscribe_criteria": {
                        "reg_event_type": "REGISTER",
                        "filter": filter_,
                        "notify_record_type": "Member",
                    },
                }
            ],
        }
        assert site.post("/registry/subscribe", "subscribe", message).status_code == 202
    from canasta.adapters.tables import partner_subscriptions

    with site.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(partner_subscriptions)) == 0


def test_a_signed_message_is_taken_once(site: Site) -> None:
    first = site.post("/registry/sync/search", "search", _uin(), message_id="m-replayed")
    again = site.post("/registry/sync/search", "search", _uin(), message_id="m-replayed")
    assert first.status_code == 200
    assert again.status_code == 409 and "already received" in again.json()["message"]["error"]["message"]
    assert site.post("/registry/sync/search", "search", _uin(), message_id="m-next").status_code == 200
