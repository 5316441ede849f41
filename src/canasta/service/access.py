"""The access log (DESIGN.md invariant 6): every read of a household's record by staff or
by a partner system, with who, in what role, when and why. Written in the same transaction
as the read it records, so there is no read without its entry."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from canasta.adapters.db import transaction
from canasta.adapters.tables import access_log, households
from canasta.domain.errors import InvalidInput
from canasta.domain.text import typed
from canasta.service.authz import Permission, Staff, require
from canasta.service.credentials import utc_now

MIN_PURPOSE = 8
MAX_PURPOSE = 300


@dataclass(frozen=True, slots=True)
class Access:
    id: int
    household_ref: str
    actor_kind: str
    actor_name: str
    actor_role: str
    purpose: str
    what: str
    read_at: str


def check_purpose(purpose: str | None) -> str:
    """A stated purpose: a sentence a beneficiary can read, not a tick box."""
    text = " ".join(typed(purpose or "", "purpose").split())
    if len(text) < MIN_PURPOSE:
        raise InvalidInput(f"state the purpose of this read in at least {MIN_PURPOSE} characters")
    if len(text) > MAX_PURPOSE:
        raise InvalidInput(f"a purpose has at most {MAX_PURPOSE} characters")
    return text


def record_staff_read(
    conn: sa.Connection, actor: Staff, household_ids: Iterable[int], purpose: str, what: str
) -> None:
    now = utc_now().isoformat(timespec="seconds")
    rows = [
        {
            "household_id": hid,
            "actor_kind": "staff",
            "actor_id": actor.id,
            "actor_name": actor.name,
            "actor_role": actor.role.value,
            "purpose": purpose,
            "what": what,
            "read_at": now,
        }
        for hid in dict.fromkeys(household_ids)
    ]
    if rows:
        conn.execute(access_log.insert(), rows)


def record_partner_read(
    conn: sa.Connection,
    partner_id: int,
    partner_name: str,
    household_ids: Iterable[int],
    purpose: str,
    what: str,
    consent: Mapping[str, Any] | None = None,
) -> None:
    now = utc_now().isoformat(timespec="seconds")
    stored = json.dumps(consent, sort_keys=True, separators=(",", ":")) if consent else None
    rows = [
        {
            "household_id": hid,
            "actor_kind": "partner",
            "actor_id": partner_id,
            "actor_name": partner_name[:100],
            "actor_role": "partner system",
            "purpose": purpose[:MAX_PURPOSE],
            "what": what,
            "read_at": now,
            "consent": stored,
        }
        for hid in dict.fromkeys(household_ids)
    ]
    if rows:
        conn.execute(access_log.insert(), rows)


def _accesses(conn: sa.Connection, query: sa.Select[Any]) -> list[Access]:
    return [
        Access(int(r.id), r.ref, r.actor_kind, r.actor_name, r.actor_role, r.purpose, r.what, r.read_at)
        for r in conn.execute(query)
    ]


def _base() -> sa.Select[Any]:
    return sa.select(access_log, households.c.ref).join(
        households, households.c.id == access_log.c.household_id
    )


PAGE = 50


def log_of_household(
    conn: sa.Connection, household_id: int, limit: int = PAGE, before: int | None = None
) -> list[Access]:
    """What the household's members see: every read of their record, newest first, a page
    at a time (``before``: the id of the last entry of the previous page)."""
    query = _base().where(access_log.c.household_id == household_id)
    if before is not None:
        query = query.where(access_log.c.id < before)
    return _accesses(conn, query.order_by(access_log.c.id.desc()).limit(limit))


def recent(
    engine: sa.Engine,
    actor: Staff,
    limit: int = 100,
    actor_name: str | None = None,
    before: int | None = None,
) -> list[Access]:
    """The latest reads across the registry, for an auditor checking who read what and why."""
    require(actor, Permission.READ_ACCESS_LOG)
    query = _base().order_by(access_log.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(access_log.c.id < before)
    if actor_name:
        query = query.where(access_log.c.actor_name == actor_name)
    with transaction(engine, write=False) as conn:
        return _accesses(conn, query)
