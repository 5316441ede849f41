"""Engines for SQLite and PostgreSQL, and transactions that roll back unless committed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from canasta.domain.errors import InvalidInput

DEFAULT_SQLITE_FILE = "canasta.db"
_WRITE = "canasta_write"


def normalise_url(url: str) -> str:
    """Accept what operators type: a bare path or ``sqlite:///file`` for SQLite,
    ``postgresql://…`` (psycopg 3 is used) for PostgreSQL."""
    text = url.strip()
    if "://" not in text:
        return f"sqlite:///{Path(text).expanduser()}"
    try:
        parsed = make_url(text)
    except sa.exc.ArgumentError:
        raise InvalidInput(f"{url!r} is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite":
        return text
    raise InvalidInput(f"canasta runs on SQLite or PostgreSQL, not {backend!r}")


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, pool_size: int = 5) -> sa.Engine:
    """An engine set up for canasta's durability and concurrency needs.

    SQLite runs in WAL mode with ``synchronous=FULL`` (an acknowledged commit survives a
    power cut), foreign keys on, and a generous busy timeout; write transactions start with
    ``BEGIN IMMEDIATE`` so two writers queue instead of failing with "database is locked".
    """
    url = normalise_url(url)
    if url.startswith("sqlite"):
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})
        _configure_sqlite(engine)
        return engine
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _configure_sqlite(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's own transaction handling is disabled).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


@contextmanager
def transaction(engine: sa.Engine, *, write: bool = True) -> Iterator[sa.Connection]:
    """A connection in a transaction that commits when the block ends normally and rolls
    back on any error: nothing is ever half-written."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{_WRITE: write})
        with conn.begin():
            yield conn
