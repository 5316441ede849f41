"""``POST /api/v1/redemptions``: the hot path, answerable without the web framework.

Every redemption passes here, so the work per request is kept to what the request needs:
check the token, parse and check the body with the same pydantic model the OpenAPI
describes, hand the command to the redemption desk, and write the receipt or the problem.
``RedemptionEndpoint.answer`` does that from raw headers and body; the FastAPI route and
``FastPath`` (an ASGI wrapper that answers this one route before FastAPI's routing,
dependency and middleware machinery, which cost as much as the redemption) both use it, so
the two cannot disagree.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from canasta.domain.card_token import card_from_scan
from canasta.domain.errors import CanastaError, InvalidInput, TooLarge, Unauthenticated
from canasta.domain.quantity import to_milli
from canasta.domain.redemption import Receipt, RedeemQuota
from canasta.domain.signed_note import Verifier
from canasta.entrypoints.api import problems
from canasta.entrypoints.api.schemas import KEY_PATTERN, RedemptionRequest
from canasta.service.redemption import RedemptionDesk
from canasta.service.transparency import LogView

log = logging.getLogger(__name__)

PATH = "/api/v1/redemptions"
#: A redemption request is a few hundred bytes; anything much larger is refused unread.
MAX_BODY = 16 * 1024
MAX_KEY = 128
_KEY = re.compile(KEY_PATTERN)

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]
_JSON = (b"content-type", b"application/json")
_PROBLEM = (b"content-type", problems.PROBLEM_JSON.encode())
_REPLAYED = (b"idempotent-replayed", b"true")


class RedemptionEndpoint:
    def __init__(
        self,
        desk: RedemptionDesk,
        authenticate: Callable[[str], Awaitable[str]],
        log_view: LogView | None = None,
        issuer_keys: Callable[[], Sequence[Verifier]] = tuple,
    ) -> None:
        self._desk = desk
        self._authenticate = authenticate
        self._log_view = log_view
        self._issuer_keys = issuer_keys

    async def answer(self, authorization: str | None, header_key: str | None, body: bytes | None) -> Answer:
        """Status, body and headers for one request (``body`` is None when it was too large
        to read); never raises."""
        try:
            receipt = await self._redeem(authorization, header_key, body)
        except ValidationError as invalid:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in invalid.errors(include_url=False)]
            return _problem(problems.validation_document(errors, PATH))
        except CanastaError as refused:
            return _problem(problems.error_document(refused, PATH))
        except Exception:  # never a traceback to the outlet; the log has it
            log.exception("unexpected error on %s", PATH)
            return _problem(problems.problem_document(500, *problems.INTERNAL_ERROR, PATH))
        if receipt.replayed and receipt.log is None and self._log_view is not None:
            receipt = await self._with_log_receipt(receipt)
        headers = [_JSON, _REPLAYED] if receipt.replayed else [_JSON]
        return 201, receipt.to_json().encode(), headers

    async def _with_log_receipt(self, receipt: Receipt) -> Receipt:
        """A retry's receipt with the same log receipt the first answer carried: proved
        against the first checkpoint that holds the entry."""
        assert self._log_view is not None
        try:
            found = await run_in_threadpool(self._log_view.receipt, receipt.ledger_seq, True)
        except CanastaError:  # the answer stands without it; GET .../log-receipt retries
            log.warning("no log receipt for ledger entry %d", receipt.ledger_seq, exc_info=True)
            return receipt
        return replace(receipt, log=found)

    async def _redeem(self, authorization: str | None, header_key: str | None, body: bytes | None) -> Any:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send the outlet's API token as 'Authorization: Bearer <token>'")
        acting_outlet = await self._authenticate(token.strip())
        if body is None or len(body) > MAX_BODY:
            raise TooLarge(f"the request body is larger than {MAX_BODY} bytes")
        request = RedemptionRequest.model_validate_json(body)
        if header_key is not None and not _KEY.match(header_key):
            raise InvalidInput(
                f"the Idempotency-Key header must be 1 to {MAX_KEY} printable ASCII characters without spaces"
            )
        key = request.idempotency_key or header_key
        if key is None:
            raise InvalidInput("an idempotency key is required (body field or Idempotency-Key header)")
        if request.idempotency_key and header_key and request.idempotency_key != header_key:
            raise InvalidInput("the Idempotency-Key header and the body's idempotency_key differ")
        command = RedeemQuota(
            card_id=card_from_scan(request.card, self._issuer_keys(), datetime.now(UTC).date()),
            programme=request.programme,
            quantity=to_milli(request.quantity),
            outlet=request.outlet,
            idempotency_key=key,
        )
        return await self._desk.redeem_async(command, acting_outlet=acting_outlet)


def _problem(document: dict[str, Any]) -> Answer:
    status = int(document["status"])
    extra = [(k.lower().encode(), v.encode()) for k, v in problems.HEADERS.get(status, {}).items()]
    return status, json.dumps(document).encode(), [_PROBLEM, *extra]


class FastPath:
    """Answers ``POST /api/v1/redemptions`` itself and passes everything else to ``app``."""

    def __init__(self, app: ASGIApp, endpoint: RedemptionEndpoint) -> None:
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        authorization = header_key = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"idempotency-key":
                header_key = value.decode("latin-1")
        body = await _read_body(receive)
        status, content, headers = await self.endpoint.answer(authorization, header_key, body)
        headers = [*headers, (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None once it proves larger than ``MAX_BODY`` (the rest is
    drained, not kept)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks) if size <= MAX_BODY else None
