"""One typed settings object, built when a command or the server starts (never at import)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from canasta.adapters.db import DEFAULT_SQLITE_FILE, normalise_url

ENV_DATABASE_URL = "CANASTA_DATABASE_URL"
ENV_MAX_BATCH = "CANASTA_MAX_BATCH"
ENV_PUBLIC_URL = "CANASTA_PUBLIC_URL"
ENV_DCI_SENDER_ID = "CANASTA_DCI_SENDER_ID"
ENV_DCI_ALLOW_UNSIGNED = "CANASTA_DCI_ALLOW_UNSIGNED"
ENV_DCI_PRIVATE_CALLBACKS = "CANASTA_DCI_PRIVATE_CALLBACKS"


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
    #: The registry API (DCI): the ``sender_id`` canasta signs and answers as; whether a
    #: message without a signature is accepted (for test suites only: a real partner signs);
    #: whether callbacks may go to private or loopback addresses (tests on one machine).
    dci_sender_id: str = "canasta"
    dci_allow_unsigned: bool = False
    dci_private_callbacks: bool = False

    @classmethod
    def load(cls, db: str | None = None, *, debug: bool = False) -> Settings:
        """``db`` (from ``--db``) wins over ``CANASTA_DATABASE_URL``, which wins over the
        embedded SQLite file in the working directory."""
        url = db or os.environ.get(ENV_DATABASE_URL) or DEFAULT_SQLITE_FILE
        public = os.environ.get(ENV_PUBLIC_URL) or None
        return cls(
            database_url=normalise_url(url),
            debug=debug,
            public_url=public_origin(public),
            dci_sender_id=os.environ.get(ENV_DCI_SENDER_ID) or "canasta",
            dci_allow_unsigned=os.environ.get(ENV_DCI_ALLOW_UNSIGNED) == "1",
            dci_private_callbacks=os.environ.get(ENV_DCI_PRIVATE_CALLBACKS) == "1",
        )

    @classmethod
    def from_env(cls) -> Settings:
        """Settings handed to worker processes through the environment."""
        settings = cls.load()
        raw = os.environ.get(ENV_MAX_BATCH)
        if raw is None:
            return settings
        if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
            raise ValueError(f"{ENV_MAX_BATCH} must be a whole number from 1 to 10000, not {raw!r}")
        return replace(settings, max_batch=int(raw))


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
