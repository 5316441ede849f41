"""The DCI Social Registry API v1.0.0 under ``/registry``, and canasta's keys at
``/.well-known/jwks.json``.

Every request is checked in this order, and refused with the standard's error codes:
1. the partner's bearer token (401 ``err.request.unauthorized``);
2. the JSON envelope: ``header`` and ``message`` objects, the header's required fields
   (400 ``err.request.bad``), and the sender it names (401 ``err.sender_id.invalid``);
3. the body signature (401 ``err.signature.missing`` / ``err.signature.invalid``): unsigned
   messages are accepted only when the operator allows them (``CANASTA_DCI_ALLOW_UNSIGNED``,
   for test suites);
4. what is asked, item by item (``rjct.*`` reason codes in the answer).
Answers and callbacks are signed with canasta's ``dci`` key.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from canasta.domain import dci_signature
from canasta.domain.dci_query import QueryRejected
from canasta.domain.errors import CanastaError
from canasta.service import dci_exchange, dci_subscriptions, partners
from canasta.service.bootstrap import Canasta
from canasta.service.dci_exchange import VERSION, new_id, now_ts
from canasta.service.partners import Partner
from canasta.service.transparency import keyring_of

log = logging.getLogger("canasta.dci")
MAX_BODY = 1_000_000
#: Consent and authorisation are kept with every access-log entry they cover.
MAX_CONSENT = 4096
KEY_NAME = "dci"


class Refused(Exception):
    """A request refused before it is read: HTTP status, DCI error code, sentence."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _ack(correlation_id: str) -> dict[str, Any]:
    return {"message": {"ack_status": "ACK", "timestamp": now_ts(), "correlation_id": correlation_id}}


def _refusal(refused: Refused) -> JSONResponse:
    body = {
        "message": {
            "ack_status": "ERR",
            "timestamp": now_ts(),
            "correlation_id": new_id(),
            "error": {"code": refused.code, "message": refused.message[:999]},
        }
    }
    return JSONResponse(body, status_code=refused.status)


def _timestamp(value: object, where: str) -> None:
    if not isinstance(value, str):
        raise Refused(400, "err.request.bad", f"{where} must be a date-time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(400, "err.request.bad", f"{where} is not an ISO 8601 date-time: {value!r}") from None
    if parsed.tzinfo is None:
        raise Refused(400, "err.request.bad", f"{where} needs a time zone: {value!r}")


def _string(value: object, where: str, longest: int = 99) -> str:
    if not isinstance(value, str) or not value or len(value) > longest:
        raise Refused(400, "err.request.bad", f"{where} must be a string of 1 to {longest} characters")
    return value


def _items(message: Mapping[str, Any], key: str, criteria: str) -> list[tuple[str, dict[str, Any]]]:
    """The request items of a search or subscription (1 to 100 objects, each with a
    reference id, a timestamp and a criteria object), with where each is in the message."""
    items = message.get(key)
    if not isinstance(items, list) or not items or len(items) > 100:
        raise Refused(400, "err.request.bad", f"message.{key} must be a list of 1 to 100 items")
    checked = []
    for n, item in enumerate(items):
        where = f"message.{key}[{n}]"
        if not isinstance(item, dict):
            raise Refused(400, "err.request.bad", f"{where} must be an object")
        _string(item.get("reference_id"), f"{where}.reference_id", 200)
        _timestamp(item.get("timestamp"), f"{where}.timestamp")
        if not isinstance(item.get(criteria), dict):
            raise Refused(400, "err.request.bad", f"{where}.{criteria} must be an object")
        checked.append((where, item))
    return checked


class Gate:
    """What every registry endpoint checks before it reads the message."""

    def __init__(self, canasta: Canasta) -> None:
        self.canasta = canasta
        self.engine = canasta.engine
        self.settings = canasta.settings

    async def open(
        self, request: Request, action: str, callback: bool = False, message_required: bool = True
    ) -> tuple[Partner, dict[str, Any], dict[str, Any]]:
        header_value = request.headers.get("authorization", "")
        token = header_value[7:].strip() if header_value.lower().startswith("bearer ") else None
        try:
            partner = await run_in_threadpool(partners.authenticate, self.engine, token)
        except CanastaError as refused:
            raise Refused(401, "err.request.unauthorized", refused.message) from None
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise Refused(413, "err.request.bad", f"a message is at most {MAX_BODY:,} bytes")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise Refused(400, "err.request.bad", "the body is not JSON, or nests too deeply") from None
        if not isinstance(body, dict):
            raise Refused(400, "err.request.bad", "the body must be an object {signature, header, message}")
        header, message = body.get("header"), body.get("message")
        if not isinstance(header, dict):
            raise Refused(400, "err.request.bad", "the envelope has no header object")
        if message is None and not message_required:
            message = {}
        if not isinstance(message, dict):
            raise Refused(400, "err.request.bad", "the envelope has no message object")
        # A callback's header (MsgCallbackHeader) need not name its sender or a count.
        for name in ("message_id", "action") if callback else ("message_id", "action", "sender_id"):
            _string(header.get(name), f"header.{name}", 200)
        _timestamp(header.get("message_ts"), "header.message_ts")
        total = header.get("total_count")
        if (total is not None or not callback) and (
            isinstance(total, bool) or not isinstance(total, int) or total < 0
        ):
            raise Refused(400, "err.request.bad", "header.total_count must be a whole number")
        if header["action"] != action:
            raise Refused(
                400, "err.request.bad", f"header.action must be {action!r} here, not {header['action']!r}"
            )
        if header.get("sender_id", partner.sender_id) != partner.sender_id:
            raise Refused(
                401, "err.sender_id.invalid", "header.sender_id is not the sender this token belongs to"
            )
        signature = body.get("signature")
        if not (self.settings.dci_allow_unsigned and dci_signature.is_placeholder(signature)):

            def key_of(kid: str) -> Any:
                return partner.public_key if kid == partner.kid else None

            try:
                dci_signature.verify(signature, header, message, key_of, int(datetime.now(UTC).timestamp()))
            except (dci_signature.SignatureMissing, dci_signature.SignatureInvalid) as bad:
                raise Refused(401, bad.code, bad.message) from None
            # A signed message is taken once: replayed while its signature is still good, it
            # is refused (its message id is remembered for as long as that can be).
            keep = dci_signature.LONGEST + 2 * dci_signature.SKEW
            new = await run_in_threadpool(
                dci_exchange.first_time, self.engine, partner.sender_id, str(header["message_id"]), keep
            )
            if not new:
                raise Refused(
                    409, "err.request.bad", "this message was already received (rjct.message_id.duplicate)"
                )
        return partner, header, message

    def kid(self) -> str:
        return dci_signature.key_id(self.settings.dci_sender_id, KEY_NAME)

    def envelope(
        self, action: str, receiver: str, message: Mapping[str, Any], status: str = "succ"
    ) -> dict[str, Any]:
        """A signed envelope from canasta: a sync answer or a callback."""
        header = {
            "version": VERSION,
            "message_id": new_id(),
            "message_ts": now_ts(),
            "action": action,
            "status": status,
            "total_count": 1,
            "completed_count": 1,
            "sender_id": self.settings.dci_sender_id,
            "receiver_id": receiver,
            "is_msg_encrypted": False,
        }
        key = keyring_of(self.engine).dci.private
        signature = dci_signature.sign(header, message, key, self.kid(), int(datetime.now(UTC).timestamp()))
        return {"signature": signature, "header": header, "message": dict(message)}

    def callback_target(self, uri: object) -> str | None:
        """Where to post a callback: the request's ``sender_uri`` when it is an http(s) URL,
        and, unless the operator allows it, not on a private or loopback address."""
        if not isinstance(uri, str) or len(uri) > 500:
            return None
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        if not self.settings.dci_private_callbacks:
            # Records travel in callbacks: only over TLS, and only to public addresses.
            if parts.scheme != "https":
                return None
            try:
                addresses = {str(info[4][0]) for info in socket.getaddrinfo(parts.hostname, None)}
            except OSError:
                return None
            for address in addresses:
                ip = ipaddress.ip_address(address.split("%")[0])
                if not ip.is_global:
                    return None
        return uri

    def post(self, uri: str, envelope: Mapping[str, Any]) -> bool:
        """Deliver a callback (three tries); whether the receiver took it."""
        for attempt in range(3):
            try:
                answer = httpx.post(uri, json=envelope, timeout=10.0)
                if answer.status_code < 500:
                    return answer.status_code < 400
            except httpx.HTTPError as failed:
                log.warning("callback to %s failed (attempt %d): %s", uri, attempt + 1, failed)
        return False


def dci_router(canasta: Canasta) -> APIRouter:
    router = APIRouter(tags=["registry (DCI)"])
    gate = Gate(canasta)
    engine = canasta.engine

    @router.get("/.well-known/jwks.json")
    def jwks() -> dict[str, Any]:
        """canasta's key for the registry API's answers and callbacks (RFC 7517, OKP)."""
        public = keyring_of(engine).dci.private.public_key()
        return {"keys": [dci_signature.jwk(public, gate.kid())]}

    def _search_request(message: Mapping[str, Any]) -> str:
        transaction_id = _string(message.get("transaction_id"), "message.transaction_id")
        for where, item in _items(message, "search_request", "search_criteria"):
            criteria = item["search_criteria"]
            # A page of no records, or before the first, is a malformed request (a page too
            # large for this registry is answered in the item: rjct.pagination.invalid).
            for holder, name in ((criteria, "search_criteria.pagination"), (item, "pagination")):
                pagination = holder.get("pagination")
                if pagination is None:
                    continue
                if not isinstance(pagination, dict):
                    raise Refused(400, "err.request.bad", f"{where}.{name} must be an object")
                for field in ("page_size", "page_number"):
                    value = pagination.get(field)
                    if value is not None and (
                        isinstance(value, bool) or not isinstance(value, int) or value < 1
                    ):
                        raise Refused(
                            400,
                            "err.request.bad",
                            f"{where}.{name}.{field} must be a whole number of at least 1",
                        )
            for name in ("consent", "authorize"):
                if len(json.dumps(criteria.get(name))) > MAX_CONSENT:
                    raise Refused(
                        400, "err.request.bad", f"{where}.search_criteria.{name} is over {MAX_CONSENT} bytes"
                    )
            locale = item.get("locale")
            if locale is not None and not (isinstance(locale, str) and len(locale) == 3 and locale.islower()):
                raise Refused(400, "err.request.bad", f"{where}.locale must be three lower-case letters")
        return transaction_id

    def _answer_search(partner: Partner, message: Mapping[str, Any], correlation_id: str) -> dict[str, Any]:
        try:
            answer, refused = dci_exchange.search_message(
                engine, partner, message, correlation_id, date.today()
            )
        except Exception:
            # Nothing of the search was kept (each item is one transaction); the request is
            # recorded as failed rather than left pending.
            failed = {
                "transaction_id": str(message["transaction_id"]),
                "correlation_id": correlation_id,
                "search_response": [],
            }
            dci_exchange.complete(
                engine, correlation_id, "rjct", failed, None, "the registry failed to answer"
            )
            raise
        status = "succ" if any(a["status"] == "succ" for a in answer["search_response"]) else "rjct"
        dci_exchange.complete(
            engine,
            correlation_id,
            status,
            answer,
            refused.reason_code if refused else None,
            refused.message if refused else None,
        )
        return answer

    @router.post("/registry/sync/search")
    async def sync_search(request: Request) -> JSONResponse:
        """Search the registry and get the answer in the response (SearchResponse)."""
        try:
            partner, _, message = await gate.open(request, "search")
            transaction_id = _search_request(message)
        except Refused as refused:
            return _refusal(refused)
        cid = await run_in_threadpool(dci_exchange.record, engine, partner, "search", transaction_id, "pdng")
        answer = await run_in_threadpool(_answer_search, partner, message, cid)
        return JSONResponse(gate.envelope("on-search", partner.sender_id, answer, _status(answer)))

    @router.post("/registry/search", status_code=202)
    async def search(request: Request, background: BackgroundTasks) -> JSONResponse:
        """Search asynchronously: acknowledged at once; the answer goes to the request's
        ``sender_uri`` (``on-search``) and can be asked for with ``txn/status``."""
        try:
            partner, header, message = await gate.open(request, "search")
            transaction_id = _search_request(message)
        except Refused as refused:
            return _refusal(refused)
        cid = await run_in_threadpool(dci_exchange.record, engine, partner, "search", transaction_id, "pdng")
        target = await run_in_threadpool(gate.callback_target, header.get("sender_uri"))

        def work() -> None:
            try:
                answer = _answer_search(partner, message, cid)
            except Exception:  # recorded as failed by _answer_search; txn/status says so
                log.exception("an asynchronous search failed")
                return
            if target is not None:
                gate.post(target, gate.envelope("on-search", partner.sender_id, answer, _status(answer)))

        background.add_task(work)
        return JSONResponse(_ack(cid), status_code=202)

    def _txn_request(message: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
        transaction_id = _string(message.get("transaction_id"), "message.transaction_id")
        asked = message.get("txnstatus_request")
        if not isinstance(asked, dict):
            raise Refused(400, "err.request.bad", "message.txnstatus_request must be an object")
        for name in ("reference_id", "txn_type", "attribute_type"):
            _string(asked.get(name), f"message.txnstatus_request.{name}", 200)
        if asked["attribute_type"] not in ("transaction_id", "reference_id_list", "correlation_id"):
            raise Refused(
                400,
                "err.request.bad",
                "attribute_type is transaction_id, reference_id_list or correlation_id",
            )
        if "attribute_value" not in asked:
            raise Refused(400, "err.request.bad", "message.txnstatus_request.attribute_value is missing")
        return transaction_id, asked

    def _txn_answer(
        partner: Partner, transaction_id: str, asked: Mapping[str, Any], cid: str
    ) -> dict[str, Any]:
        found = dci_exchange.find_transaction(
            engine, partner, str(asked["attribute_type"]), asked["attribute_value"]
        )
        items = [item for answer in found for item in answer.get("search_response", [])]
        kept = found[0] if found else {}
        return {
            "transaction_id": transaction_id,
            "correlation_id": cid,
            "txnstatus_response": {
                "txn_type": str(asked["txn_type"]),
                "txn_status": {
                    "transaction_id": str(
                        kept.get(
                            "transaction_id",
                            asked["attribute_value"]
                            if isinstance(asked["attribute_value"], str)
                            else transaction_id,
                        )
                    ),
                    "correlation_id": str(kept.get("correlation_id", cid)),
                    "search_response": items,
                },
            },
        }

    @router.post("/registry/sync/txn/status")
    async def sync_txn_status(request: Request) -> JSONResponse:
        """The status and answer of earlier requests, in the response."""
        try:
            partner, _, message = await gate.open(request, "txn-status")
            transaction_id, asked = _txn_request(message)
        except Refused as refused:
            return _refusal(refused)
        cid = new_id()
        answer = await run_in_threadpool(_txn_answer, partner, transaction_id, asked, cid)
        return JSONResponse(gate.envelope("txn-on-status", partner.sender_id, answer))

    @router.post("/registry/txn/status", status_code=202)
    async def txn_status(request: Request, background: BackgroundTasks) -> JSONResponse:
        """The status of earlier requests, sent to ``sender_uri`` (``txn-on-status``)."""
        try:
            partner, header, message = await gate.open(request, "txn-status")
            transaction_id, asked = _txn_request(message)
        except Refused as refused:
            return _refusal(refused)
        cid = new_id()
        target = await run_in_threadpool(gate.callback_target, header.get("sender_uri"))

        def work() -> None:
            answer = _txn_answer(partner, transaction_id, asked, cid)
            if target is not None:
                gate.post(target, gate.envelope("txn-on-status", partner.sender_id, answer))

        background.add_task(work)
        return JSONResponse(_ack(cid), status_code=202)

    def _subscribe_request(message: Mapping[str, Any]) -> str:
        transaction_id = _string(message.get("transaction_id"), "message.transaction_id")
        for where, item in _items(message, "subscribe_request", "subscribe_criteria"):
            criteria = item["subscribe_criteria"]
            for name in ("reg_event_type", "notify_record_type"):
                _string(criteria.get(name), f"{where}.subscribe_criteria.{name}", 64)
            if "filter" not in criteria:
                raise Refused(400, "err.request.bad", f"{where}.subscribe_criteria.filter is missing")
        return transaction_id

    def _subscribe_answer(
        partner: Partner, header: Mapping[str, Any], message: Mapping[str, Any], cid: str
    ) -> dict[str, Any]:
        notify = _notify_uri(header.get("sender_uri"))
        answers: list[dict[str, Any]] = []
        for item in message["subscribe_request"]:
            try:
                made = dci_subscriptions.subscribe(engine, partner, item["subscribe_criteria"], notify)
            except QueryRejected as refused:
                reason = (
                    refused.reason_code
                    if refused.reason_code.startswith("rjct.notify")
                    else "rjct.notify_details.invalid"
                )
                answers.append(
                    {
                        "reference_id": str(item["reference_id"]),
                        "timestamp": now_ts(),
                        "status": "rjct",
                        "status_reason_code": reason,
                        "status_reason_message": refused.message[:999],
                    }
                )
                continue
            answers.append(
                {
                    "reference_id": str(item["reference_id"]),
                    "timestamp": now_ts(),
                    "status": "succ",
                    "subscriptions": [
                        {
                            "code": made.code,
                            "status": "subscribe",
                            "timestamp": now_ts(),
                            "reg_event_type": made.reg_event_type,
                            "notify_record_type": made.notify_record_type,
                        }
                    ],
                }
            )
        answer = {
            "transaction_id": str(message["transaction_id"]),
            "correlation_id": cid,
            "subscribe_response": answers,
        }
        dci_exchange.complete(engine, cid, "succ", answer)
        return answer

    @router.post("/registry/subscribe", status_code=202)
    async def subscribe(request: Request, background: BackgroundTasks) -> JSONResponse:
        """Subscribe to new registrations matching a filter: acknowledged at once, answered
        at ``sender_uri`` (``on-subscribe``); notifications go to its ``notify`` sibling."""
        try:
            partner, header, message = await gate.open(request, "subscribe")
            transaction_id = _subscribe_request(message)
        except Refused as refused:
            return _refusal(refused)
        cid = await run_in_threadpool(
            dci_exchange.record, engine, partner, "subscribe", transaction_id, "pdng"
        )
        target = await run_in_threadpool(gate.callback_target, header.get("sender_uri"))

        def work() -> None:
            answer = _subscribe_answer(partner, header, message, cid)
            if target is not None:
                gate.post(target, gate.envelope("on-subscribe", partner.sender_id, answer))

        background.add_task(work)
        return JSONResponse(_ack(cid), status_code=202)

    @router.post("/registry/unsubscribe", status_code=202)
    async def unsubscribe(request: Request, background: BackgroundTasks) -> JSONResponse:
        """End subscriptions: acknowledged at once, answered at ``sender_uri`` (``on-unsubscribe``)."""
        try:
            partner, header, message = await gate.open(request, "unsubscribe")
            transaction_id = _string(message.get("transaction_id"), "message.transaction_id")
            _timestamp(message.get("timestamp"), "message.timestamp")
            codes = message.get("subscription_codes")
            if not isinstance(codes, list) or not codes or len(codes) > 100:
                raise Refused(
                    400, "err.request.bad", "message.subscription_codes must be a list of 1 to 100 codes"
                )
            for n, code in enumerate(codes):
                _string(code, f"message.subscription_codes[{n}]")
        except Refused as refused:
            return _refusal(refused)
        cid = await run_in_threadpool(
            dci_exchange.record, engine, partner, "unsubscribe", transaction_id, "pdng"
        )
        target = await run_in_threadpool(gate.callback_target, header.get("sender_uri"))

        def work() -> None:
            ended = dci_subscriptions.unsubscribe(engine, partner, [str(c) for c in codes])
            answer: dict[str, Any] = {
                "transaction_id": transaction_id,
                "correlation_id": cid,
                "timestamp": now_ts(),
                "status": "succ" if all(ended.values()) else "rjct",
                "subscription_status": [
                    {"code": code, "status": "unsubscribe"} for code, done in ended.items() if done
                ],
            }
            if not all(ended.values()):
                unknown = ", ".join(code for code, done in ended.items() if not done)
                answer["status_reason_code"] = "rjct.subscription_code.invalid"
                answer["status_reason_message"] = f"no active subscription of this partner: {unknown}"[:999]
            dci_exchange.complete(engine, cid, str(answer["status"]), answer)
            if target is not None:
                gate.post(target, gate.envelope("on-unsubscribe", partner.sender_id, answer))

        background.add_task(work)
        return JSONResponse(_ack(cid), status_code=202)

    # (path, action, header of a callback, message required), as the corrected OpenAPI has them
    for path, action, callback, required in (
        ("/registry/on-search", "on-search", True, False),
        ("/registry/on-subscribe", "on-subscribe", False, True),
        ("/registry/on-unsubscribe", "on-unsubscribe", False, True),
        ("/registry/txn/on-status", "txn-on-status", True, False),
        ("/registry/notify", "notify", True, False),
    ):
        router.add_api_route(
            path, _receiver(gate, action, callback, required), methods=["POST"], status_code=200
        )

    return router


def _status(answer: Mapping[str, Any]) -> str:
    """A search answer's header status: ``rjct`` when every item was refused."""
    items = answer.get("search_response") or []
    return "rjct" if items and all(i.get("status") == "rjct" for i in items) else "succ"


def _notify_uri(sender_uri: object) -> str | None:
    """Where a subscriber is notified: the ``notify`` path beside the URI it asked from
    (``…/registry/on-subscribe`` → ``…/registry/notify``)."""
    if not isinstance(sender_uri, str) or not sender_uri:
        return None
    base, _, last = sender_uri.rstrip("/").rpartition("/")
    return f"{base}/notify" if last.startswith("on-") else f"{sender_uri.rstrip('/')}/notify"


class Notifier:
    """Sends subscribers what is due, every few seconds, from the server process."""

    def __init__(self, canasta: Canasta, every: float = 5.0) -> None:
        self.gate = Gate(canasta)
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="canasta-dci-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _partner(self, partner_id: int) -> Partner | None:
        found = partners.partner_by_id(self.gate.engine, partner_id)
        return found if found is not None and partners.may_ask(found) else None

    def tick(self) -> int:
        """Send what is due now; returns how many notifications went out."""
        sent = 0
        for due in dci_subscriptions.due(self.gate.engine, self._partner, date.today()):
            target = self.gate.callback_target(due.notify_uri)
            if target is None:  # an address canasta does not call: dropped, not read again
                log.warning("subscription %s: %s is not an address canasta calls", due.code, due.notify_uri)
                dci_subscriptions.advance(self.gate.engine, due)
                continue
            message = {
                "transaction_id": new_id(),
                "notify_event": [
                    {
                        "reference_id": f"{due.code}-{n}",
                        "timestamp": now_ts(),
                        "data": {
                            "version": VERSION,
                            "reg_type": "ns:org:RegistryType:Social",
                            "reg_event_type": "REGISTER",
                            "reg_record_type": due.entity,
                            "reg_records": record,
                        },
                        "locale": "eng",
                    }
                    for n, record in enumerate(due.records)
                ],
            }
            # Announced only once delivered: a failed delivery is tried again next time.
            if self.gate.post(target, self.gate.envelope("notify", due.receiver, message)):
                dci_subscriptions.advance(self.gate.engine, due)
                sent += 1
        return sent

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.tick()
            except Exception:  # the next tick tries again; nothing was marked sent
                log.exception("sending notifications failed")


def _receiver(gate: Gate, action: str, callback: bool, required: bool) -> Any:
    async def receive(request: Request) -> JSONResponse:
        """A callback from another registry, acknowledged (canasta asks other registries
        with ``registry import --from-dci``, which reads their synchronous answers)."""
        try:
            _, _, message = await gate.open(request, action, callback, required)
        except Refused as refused:
            return _refusal(refused)
        cid = message.get("correlation_id")
        return JSONResponse(_ack(cid if isinstance(cid, str) and 0 < len(cid) <= 99 else new_id()))

    receive.__name__ = f"receive_{action.replace('-', '_')}"
    return receive
