"""Outlets and their API tokens. A token is shown once; only its SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

import sqlalchemy as sa

from canasta.adapters.db import transaction
from canasta.adapters.tables import outlets
from canasta.domain.errors import Conflict, NotFound, Unauthenticated
from canasta.domain.model import Outlet, OutletKind
from canasta.service.clock import utc_now_iso

TOKEN_PREFIX = "cnt_"  # noqa: S105 - a visible prefix, not a secret


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a plain hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_outlet(engine: sa.Engine, outlet: Outlet) -> str:
    """Register ``outlet`` and return its API token (the only time it is seen)."""
    return create_outlets(engine, [outlet])[outlet.code]


def create_outlets(engine: sa.Engine, new: list[Outlet]) -> dict[str, str]:
    """Register outlets in one transaction; returns code → token (shown this once only)."""
    tokens = {o.code: new_token() for o in new}
    now = utc_now_iso()
    with transaction(engine) as conn:
        taken = conn.scalars(sa.select(outlets.c.code).where(outlets.c.code.in_(tokens))).all()
        if taken:
            raise Conflict(f"an outlet with code {taken[0]!r} already exists")
        conn.execute(
            outlets.insert(),
            [
                {
                    "code": o.code,
                    "name": o.name,
                    "kind": o.kind.value,
                    "region": o.region,
                    "token_hash": hash_token(tokens[o.code]),
                    "active": True,
                    "created_at": now,
                }
                for o in new
            ],
        )
    return tokens


def rotate_token(engine: sa.Engine, code: str) -> str:
    token = new_token()
    with transaction(engine) as conn:
        updated = conn.execute(
            outlets.update().where(outlets.c.code == code).values(token_hash=hash_token(token))
        ).rowcount
        if not updated:
            raise NotFound(f"there is no outlet {code!r}")
    return token


def list_outlets(engine: sa.Engine, limit: int | None = None, offset: int = 0) -> list[Outlet]:
    """Outlets by code (a page of ``limit`` from ``offset`` when given)."""
    query = sa.select(outlets).order_by(outlets.c.code).offset(offset).limit(limit)
    with transaction(engine, write=False) as conn:
        return [
            Outlet(row.code, row.name, OutletKind(row.kind), row.region, bool(row.active))
            for row in conn.execute(query)
        ]


def count_outlets(engine: sa.Engine) -> int:
    with transaction(engine, write=False) as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(outlets)) or 0)


class OutletAuthenticator:
    """Maps a bearer token to the outlet it belongs to. Answers are cached for ``ttl``
    seconds so the hot path does not read the database for every request; a rotated or
    deactivated token stops working within that time."""

    def __init__(self, engine: sa.Engine, ttl: float = 30.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> str | None:
        """The outlet for ``token`` if known and fresh; raises if known to be bad."""
        return self._hit(hash_token(token))

    def authenticate(self, token: str) -> str:
        digest = hash_token(token)
        code = self._hit(digest)
        if code is not None:
            return code
        with transaction(self._engine, write=False) as conn:
            row = conn.execute(
                sa.select(outlets.c.code, outlets.c.active).where(outlets.c.token_hash == digest)
            ).one_or_none()
        found = str(row.code) if row is not None and row.active else None
        with self._lock:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[digest] = (found, time.monotonic() + self._ttl)
        if found is None:
            raise Unauthenticated("the API token is not valid")
        return found

    def _hit(self, digest: str) -> str | None:
        hit = self._cache.get(digest)
        if hit is None or hit[1] < time.monotonic():
            return None
        if hit[0] is None:
            raise Unauthenticated("the API token is not valid")
        return hit[0]
