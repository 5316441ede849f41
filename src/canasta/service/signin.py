"""Checking a typed secret (a staff password, a card PIN) against its stored hash, with the
lockout, so that neither the database nor its single writer is held while argon2 runs.

Each attempt is first *reserved*: one UPDATE counts it and, when it is the fifth in a row,
locks sign-in, but only if sign-in is not locked already. The hash is checked after that
transaction has committed, outside any lock; a right secret then clears the count (and the
lock its own reservation may have set). However many attempts arrive at once, at most five
in a row are ever checked before the lock holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from canasta.adapters.db import transaction
from canasta.domain.errors import SignInLocked
from canasta.service import credentials


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def check(
    engine: sa.Engine,
    table: sa.Table,
    key: sa.Column[Any],
    value: str,
    counter: sa.Column[Any],
    hashed: sa.Column[Any],
    secret: str,
) -> Any | None:
    """The row whose ``key`` is ``value`` when ``secret`` matches its hash; None when there is
    no such row or the secret is wrong (each spends the time of one argon2 check). Raises
    ``SignInLocked`` while the row's sign-in is locked."""
    now = credentials.utc_now()
    with transaction(engine, write=False) as conn:
        row = conn.execute(sa.select(table).where(key == value)).one_or_none()
    if row is None:
        credentials.verify_secret(None, secret)
        return None
    locked_until = table.c.locked_until
    if credentials.locked(row.locked_until, now):
        raise SignInLocked("too many wrong attempts; try again later", row.locked_until)
    failures = int(getattr(row, counter.name))
    # The lock the fifth failure in a row would set, whatever count this attempt gets.
    next_lock = -(-(failures + 1) // credentials.MAX_FAILURES) * credentials.MAX_FAILURES
    until = credentials.lock_after(next_lock, now)
    with transaction(engine) as conn:
        reserved = conn.execute(
            sa.update(table)
            .where(key == value, sa.or_(locked_until.is_(None), locked_until <= _iso(now)))
            .values(
                {
                    counter: counter + 1,
                    locked_until: sa.case(
                        ((counter + 1) % credentials.MAX_FAILURES == 0, until), else_=locked_until
                    ),
                }
            )
            .returning(counter)
        ).scalar_one_or_none()
        if reserved is None:  # another attempt locked it meanwhile
            until_now = conn.scalar(sa.select(locked_until).where(key == value))
            raise SignInLocked("too many wrong attempts; try again later", str(until_now))
    if not credentials.verify_secret(getattr(row, hashed.name), secret):
        return None
    with transaction(engine) as conn:
        conn.execute(sa.update(table).where(key == value).values({counter: 0, locked_until: None}))
    return row
