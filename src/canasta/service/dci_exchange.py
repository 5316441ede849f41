"""Partners' requests through the registry API: searches answered item by item, each
request kept (with its answer, for ``txn/status``) and each refusal recorded.

A request's record holds what was asked (action, the partner's transaction id), the
correlation id canasta gave it, its DCI status, why it was refused if it was (the protected-
attribute firewall's refusals included), and the message answered.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from canasta.adapters.db import transaction
from canasta.adapters.tables import partner_messages, partner_requests
from canasta.domain.dci_query import QueryRejected, parse_search
from canasta.service import dci_search
from canasta.service.partners import Partner

VERSION = "1.0.0"


def now_ts() -> str:
    """A DCI timestamp: ISO 8601 in UTC with milliseconds and a 'Z'."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return str(uuid.uuid4())


def record(
    engine: sa.Engine,
    partner: Partner | None,
    action: str,
    transaction_id: str,
    status: str,
    reason_code: str | None = None,
    reason: str | None = None,
    response: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
) -> str:
    """Keep a request (or its refusal); returns its correlation id."""
    cid = correlation_id or new_id()
    at = datetime.now(UTC).isoformat(timespec="seconds")
    with transaction(engine) as conn:
        conn.execute(
            partner_requests.insert().values(
                partner_id=partner.id if partner is not None else None,
                action=action[:16],
                transaction_id=transaction_id[:99],
                correlation_id=cid,
                status=status,
                reason_code=reason_code,
                reason=(reason or "")[:500] or None,
                received_at=at,
                completed_at=at if status in ("succ", "rjct") else None,
                response=json.dumps(response) if response is not None else None,
            )
        )
    return cid


def _without_records(answer: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept of an answer for ``txn/status``: each item's status, reason and counts,
    never the records (asked again, they would be a read without its log entry, under a
    grant that may have changed since)."""
    kept = dict(answer)
    if isinstance(kept.get("search_response"), list):
        kept["search_response"] = [
            {key: value for key, value in item.items() if key != "data"} for item in kept["search_response"]
        ]
    return kept


def complete(
    engine: sa.Engine,
    correlation_id: str,
    status: str,
    response: Mapping[str, Any],
    reason_code: str | None = None,
    reason: str | None = None,
) -> None:
    """Record how a request ended, keeping its answer without records."""
    with transaction(engine) as conn:
        conn.execute(
            sa.update(partner_requests)
            .where(partner_requests.c.correlation_id == correlation_id)
            .values(
                status=status,
                response=json.dumps(_without_records(response)),
                reason_code=reason_code,
                reason=(reason or "")[:500] or None,
                completed_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
        )


def search_message(
    engine: sa.Engine, partner: Partner, message: Mapping[str, Any], correlation_id: str, today: date
) -> tuple[dict[str, Any], QueryRejected | None]:
    """The SearchResponse to a SearchRequest: one answer per item, in order, each ``succ``
    with a page of records or ``rjct`` with its reason code. Returns the first refusal too
    (a protected attribute's first), for the request's record."""
    answers: list[dict[str, Any]] = []
    first: QueryRejected | None = None
    for item in message["search_request"]:
        reference = str(item.get("reference_id", ""))
        try:
            search = parse_search(item)
            criteria = item.get("search_criteria") or {}
            page = dci_search.run(engine, partner, search, dci_search.consent_of(criteria), today)
        except QueryRejected as refused:
            if first is None or (refused.protected and not first.protected):
                first = refused
            answers.append(
                {
                    "reference_id": reference,
                    "timestamp": now_ts(),
                    "status": "rjct",
                    "status_reason_code": refused.reason_code,
                    "status_reason_message": refused.message[:999],
                    "locale": "eng",
                }
            )
            continue
        answers.append(
            {
                "reference_id": reference,
                "timestamp": now_ts(),
                "status": "succ",
                "data": {
                    "version": VERSION,
                    "reg_type": dci_search.REG_TYPE,
                    "reg_record_type": page.entity,
                    "reg_records": page.records,
                },
                "pagination": {
                    "page_size": page.page_size,
                    "page_number": page.page_number,
                    "total_count": page.total_count,
                },
                "locale": "eng",
            }
        )
    answer = {
        "transaction_id": str(message["transaction_id"]),
        "correlation_id": correlation_id,
        "search_response": answers,
    }
    return answer, first


def find_transaction(
    engine: sa.Engine, partner: Partner, attribute_type: str, value: Any
) -> list[dict[str, Any]]:
    """The answers kept for the partner's requests named by transaction id, correlation id
    or a list of them (a partner sees only its own): statuses and counts, no records. A
    request still running is answered ``pdng``."""
    values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    column = (
        partner_requests.c.correlation_id
        if attribute_type == "correlation_id"
        else partner_requests.c.transaction_id
    )
    with transaction(engine, write=False) as conn:
        rows = conn.execute(
            sa.select(
                partner_requests.c.response,
                partner_requests.c.status,
                partner_requests.c.transaction_id,
                partner_requests.c.correlation_id,
                partner_requests.c.reason_code,
            )
            .where(partner_requests.c.partner_id == partner.id, column.in_(values[:100]))
            .order_by(partner_requests.c.id)
        ).all()
    found = []
    for r in rows:
        if r.response:
            found.append(json.loads(r.response))
        else:  # still running, or failed before it answered
            item: dict[str, Any] = {
                "reference_id": r.transaction_id,
                "timestamp": now_ts(),
                "status": r.status,
            }
            if r.reason_code:
                item["status_reason_code"] = r.reason_code
            found.append(
                {
                    "transaction_id": r.transaction_id,
                    "correlation_id": r.correlation_id,
                    "search_response": [item],
                }
            )
    return found


def first_time(engine: sa.Engine, sender_id: str, message_id: str, keep_seconds: int) -> bool:
    """Whether this signed message is new (and remember it for ``keep_seconds``, as long as
    its signature could be good): a replay of a message already taken is refused."""
    now = datetime.now(UTC)
    cutoff = datetime.fromtimestamp(now.timestamp() - keep_seconds, UTC).isoformat(timespec="seconds")
    with transaction(engine) as conn:
        conn.execute(sa.delete(partner_messages).where(partner_messages.c.seen_at < cutoff))
        seen = conn.scalar(
            sa.select(sa.func.count()).where(
                partner_messages.c.sender_id == sender_id, partner_messages.c.message_id == message_id
            )
        )
        if seen:
            return False
        conn.execute(
            partner_messages.insert().values(
                sender_id=sender_id, message_id=message_id, seen_at=now.isoformat(timespec="seconds")
            )
        )
    return True
