"""Server-side sessions for the staff pages and the portal.

The browser holds a random token; the database holds its SHA-256, the subject (a staff
account or a card), a CSRF token for the forms of that session, and two clocks: an idle
limit and an absolute one. Signing in always starts a new session (a token chosen before
sign-in is never promoted, which defeats session fixation); signing out deletes it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa

from canasta.adapters.db import transaction
from canasta.adapters.tables import web_sessions
from canasta.service.credentials import utc_now

Kind = Literal["staff", "portal"]

#: Idle and absolute limits: a portal session on a shared phone should not outlive its
#: visit; a staff session lasts a working day at most.
IDLE: dict[str, timedelta] = {"staff": timedelta(minutes=30), "portal": timedelta(minutes=15)}
ABSOLUTE: dict[str, timedelta] = {"staff": timedelta(hours=10), "portal": timedelta(hours=2)}
#: last_seen_at is written at most this often (a page view should not always be a write).
_TOUCH = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Session:
    kind: str
    subject: str
    csrf_token: str
    expires_at: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def start(engine: sa.Engine, kind: Kind, subject: str) -> tuple[str, Session]:
    """A new session; returns the token for the cookie (never stored) and the session."""
    token = secrets.token_urlsafe(32)
    now = utc_now()
    session = Session(kind, subject, secrets.token_urlsafe(32), _iso(now + ABSOLUTE[kind]))
    with transaction(engine) as conn:
        # Sessions that ended long ago are swept as new ones begin.
        conn.execute(sa.delete(web_sessions).where(web_sessions.c.expires_at < _iso(now)))
        conn.execute(
            web_sessions.insert().values(
                token_hash=_hash(token),
                kind=kind,
                subject=subject,
                csrf_token=session.csrf_token,
                created_at=_iso(now),
                last_seen_at=_iso(now),
                expires_at=session.expires_at,
            )
        )
    return token, session


def find(engine: sa.Engine, kind: Kind, token: str | None) -> Session | None:
    """The live session of ``kind`` this token opens, or None (unknown, expired, idle too
    long, or of the other kind)."""
    if not token or len(token) > 100:
        return None
    now = utc_now()
    key = _hash(token)
    with transaction(engine, write=False) as conn:
        row = conn.execute(
            sa.select(web_sessions).where(web_sessions.c.token_hash == key, web_sessions.c.kind == kind)
        ).one_or_none()
    if row is None:
        return None
    if row.expires_at <= _iso(now) or datetime.fromisoformat(row.last_seen_at) + IDLE[kind] <= now:
        end(engine, token)
        return None
    if datetime.fromisoformat(row.last_seen_at) + _TOUCH <= now:
        with transaction(engine) as conn:
            conn.execute(
                sa.update(web_sessions).where(web_sessions.c.token_hash == key).values(last_seen_at=_iso(now))
            )
    return Session(row.kind, row.subject, row.csrf_token, row.expires_at)


def end(engine: sa.Engine, token: str | None) -> None:
    if not token:
        return
    with transaction(engine) as conn:
        conn.execute(sa.delete(web_sessions).where(web_sessions.c.token_hash == _hash(token)))


def end_all(conn: sa.Connection, kind: Kind, subject: str) -> None:
    """End every session of a subject (an account disabled, a card withdrawn)."""
    conn.execute(
        sa.delete(web_sessions).where(web_sessions.c.kind == kind, web_sessions.c.subject == subject)
    )


def csrf_matches(expected: str, sent: str | None) -> bool:
    """Whether a form carried its session's CSRF token (compared in constant time)."""
    return sent is not None and secrets.compare_digest(expected.encode(), sent.encode())
