"""Partners' subscriptions to new registrations (DCI ``subscribe``, ``unsubscribe`` and
``notify``).

A subscription names an event (``REGISTER``: a person newly registered) and a filter, in the
same three query types as a search, read and firewalled the same way. Notifications are sent
by the server (``pending`` then ``sent``): each person registered since the subscription's
watermark that its filter matches is sent as a record with the partner's fields, and, like a
search result, logged in the household's access log.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from canasta.adapters.db import transaction
from canasta.adapters.tables import partner_subscriptions, persons
from canasta.domain.dci_query import QueryRejected, Search, parse_search
from canasta.service import dci_search
from canasta.service.partners import Partner

EVENTS = ("REGISTER",)
log = logging.getLogger("canasta.dci")


@dataclass(frozen=True, slots=True)
class Subscribed:
    code: str
    reg_event_type: str
    notify_record_type: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _filter_search(criteria: Mapping[str, Any]) -> Search:
    query_type = criteria.get("filter_type") or _guess(criteria.get("filter"))
    entity = criteria.get("notify_record_type") or "Member"
    return parse_search(
        {
            "search_criteria": {
                "query_type": query_type,
                "query": criteria.get("filter"),
                "response_entity": "Member" if entity not in ("Group",) else "Group",
            }
        }
    )


def _guess(filter_: Any) -> str:
    if isinstance(filter_, list):
        return "predicate"
    if (
        isinstance(filter_, Mapping)
        and isinstance(filter_.get("type"), str)
        and not str(filter_["type"]).startswith("ns:")
    ):
        return "idtype-value"
    return "expression"


def subscribe(
    engine: sa.Engine, partner: Partner, criteria: Mapping[str, Any], notify_uri: str | None
) -> Subscribed:
    """A new subscription; raises ``QueryRejected`` (with its reason code) for an event this
    registry does not announce or a filter it does not run (a protected attribute's too)."""
    event = criteria.get("reg_event_type")
    if event not in EVENTS:
        raise QueryRejected(
            f"this registry announces {', '.join(EVENTS)}, not {event!r}", "rjct.notify_types.invalid"
        )
    search = _filter_search(criteria)
    dci_search.check(engine, partner, search, date.today())
    with transaction(engine) as conn:
        # Only people registered from now on are announced.
        watermark = int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(persons.c.id), 0))) or 0)
        code = f"sub-{uuid.uuid4()}"
        conn.execute(
            partner_subscriptions.insert().values(
                code=code,
                partner_id=partner.id,
                reg_event_type=str(event),
                filter=json.dumps({"criteria": dict(criteria), "watermark": watermark}),
                notify_uri=notify_uri or "",
                status="subscribe",
                created_at=_now(),
            )
        )
    return Subscribed(code, str(event), search.entity)


def unsubscribe(engine: sa.Engine, partner: Partner, codes: list[str]) -> dict[str, bool]:
    """End the partner's subscriptions; for each code, whether it was one of its active ones."""
    ended: dict[str, bool] = {}
    with transaction(engine) as conn:
        for code in codes:
            changed = conn.execute(
                sa.update(partner_subscriptions)
                .where(
                    partner_subscriptions.c.code == code,
                    partner_subscriptions.c.partner_id == partner.id,
                    partner_subscriptions.c.status == "subscribe",
                )
                .values(status="unsubscribe", ended_at=_now())
            ).rowcount
            ended[code] = bool(changed)
    return ended


@dataclass(frozen=True, slots=True)
class Notification:
    code: str
    #: The partner's sender id (the notification's receiver).
    receiver: str
    notify_uri: str
    records: list[dict[str, Any]]
    entity: str
    #: The subscription's state before and after these records: the watermark moves
    #: (``advance``) only once they are delivered, so a failed delivery is tried again.
    before: str
    after: str


def advance(engine: sa.Engine, notification: Notification) -> bool:
    """Mark a notification's records as announced (compare and set: of two server
    processes, one moves the watermark)."""
    with transaction(engine) as conn:
        return bool(
            conn.execute(
                sa.update(partner_subscriptions)
                .where(
                    partner_subscriptions.c.code == notification.code,
                    partner_subscriptions.c.filter == notification.before,
                )
                .values(filter=notification.after)
            ).rowcount
        )


def due(engine: sa.Engine, partner_of: Any, today: date, batch: int = 500) -> list[Notification]:
    """For each active subscription, the people registered since its watermark that its
    filter matches (at most ``batch``), read as the partner's records and logged.
    ``partner_of(partner_id)`` gives the partner (None when it may no longer ask). A
    subscription whose filter no longer runs (an attribute undeclared since) is skipped and
    logged; the others go on."""
    with transaction(engine, write=False) as conn:
        active = conn.execute(
            sa.select(partner_subscriptions).where(partner_subscriptions.c.status == "subscribe")
        ).all()
        newest = int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(persons.c.id), 0))) or 0)
    found = []
    for row in active:
        kept = json.loads(row.filter)
        watermark = int(kept["watermark"])
        if watermark >= newest:
            continue
        partner = partner_of(int(row.partner_id))
        if partner is None:
            continue
        upto = min(newest, watermark + batch)
        after = json.dumps({"criteria": kept["criteria"], "watermark": upto})
        try:
            search = _filter_search(kept["criteria"])
            page = dci_search.run(
                engine, partner, search, None, today, new_between=(watermark, upto), page_size=batch
            )
        except QueryRejected as refused:
            log.warning("subscription %s no longer runs: %s", row.code, refused.message)
            continue
        notification = Notification(
            row.code, partner.sender_id, row.notify_uri, page.records, page.entity, row.filter, after
        )
        if page.records and row.notify_uri:
            found.append(notification)
        else:  # nothing to announce in this range
            advance(engine, notification)
    return found
