"""One typed settings object, built when a command or the server starts (never at import)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from canasta.adapters.db import DEFAULT_SQLITE_FILE, normalise_url

ENV_DATABASE_URL = "CANASTA_DATABASE_URL"
ENV_MAX_BATCH = "CANASTA_MAX_BATCH"
ENV_PUBLIC_URL = "CANASTA_PUBLIC_URL"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    #: Most redemptions one group commit may hold.
    max_batch: int = 512
    #: Seconds an outlet token lookup is cached by the server.
    token_cache_seconds: float = 30.0
    debug: bool = False
    #: Where browsers reach the pages (``https://canasta.example.org``) when a proxy in front
    #: terminates TLS: forms must come from this origin, and cookies are marked Secure.
    public_url: str | None = None

    @classmethod
    def load(cls, db: str | None = None, *, debug: bool = False) -> Settings:
        """``db`` (from ``--db``) wins over ``CANASTA_DATABASE_URL``, which wins over the
        embedded SQLite file in the working directory."""
        url = db or os.environ.get(ENV_DATABASE_URL) or DEFAULT_SQLITE_FILE
        public = os.environ.get(ENV_PUBLIC_URL) or None
        return cls(database_url=normalise_url(url), debug=debug, public_url=public_origin(public))

    @classmethod
    def from_env(cls) -> Settings:
        """Settings handed to worker processes through the environment."""
        settings = cls.load()
        raw = os.environ.get(ENV_MAX_BATCH)
        if raw is None:
            return settings
        if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
            raise ValueError(f"{ENV_MAX_BATCH} must be a whole number from 1 to 10000, not {raw!r}")
        return cls(
            settings.database_url, max_batch=int(raw), debug=settings.debug, public_url=settings.public_url
        )


def public_origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of a public URL, refusing anything else."""
    if url is None:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"the public URL must be like https://canasta.example.org, not {url!r}")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError(f"the public URL must be like https://canasta.example.org, not {url!r}")
    return f"{parts.scheme}://{parts.netloc.lower()}"
