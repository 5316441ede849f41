"""One typed settings object, built when a command or the server starts (never at import)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from canasta.adapters.db import DEFAULT_SQLITE_FILE, normalise_url

ENV_DATABASE_URL = "CANASTA_DATABASE_URL"
ENV_MAX_BATCH = "CANASTA_MAX_BATCH"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    #: Most redemptions one group commit may hold.
    max_batch: int = 512
    #: Seconds an outlet token lookup is cached by the server.
    token_cache_seconds: float = 30.0
    debug: bool = False

    @classmethod
    def load(cls, db: str | None = None, *, debug: bool = False) -> Settings:
        """``db`` (from ``--db``) wins over ``CANASTA_DATABASE_URL``, which wins over the
        embedded SQLite file in the working directory."""
        url = db or os.environ.get(ENV_DATABASE_URL) or DEFAULT_SQLITE_FILE
        return cls(database_url=normalise_url(url), debug=debug)

    @classmethod
    def from_env(cls) -> Settings:
        """Settings handed to worker processes through the environment."""
        settings = cls.load()
        raw = os.environ.get(ENV_MAX_BATCH)
        if raw is None:
            return settings
        if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
            raise ValueError(f"{ENV_MAX_BATCH} must be a whole number from 1 to 10000, not {raw!r}")
        return cls(settings.database_url, max_batch=int(raw), debug=settings.debug)
