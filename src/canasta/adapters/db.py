"""Engines for SQLite and PostgreSQL, and transactions that roll back unless committed."""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from canasta.domain.errors import InvalidInput

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: SQLite's own busy timeout serves
    fcntl = None  # type: ignore[assignment]

DEFAULT_SQLITE_FILE = "canasta.db"
_WRITE = "canasta_write"
_AUTOCOMMIT = "canasta_autocommit"


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


class WriterLock:
    """Serialises writers to one SQLite file across threads and processes.

    SQLite lets one writer in at a time and makes the others poll with growing sleeps;
    under load that polling, not the disk, sets the pace. Writers here queue on a lock file
    instead (``flock``, which wakes the next writer the moment the last one is done) and
    only then begin their transaction, so the busy timeout is never used between canasta's
    own processes."""

    def __init__(self, database: str) -> None:
        self._path = f"{database}.writer-lock"
        self._threads = threading.Lock()
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                weakref.finalize(self, os.close, self._fd)  # closed with the engine's lock
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


_WRITER_LOCKS: weakref.WeakKeyDictionary[sa.Engine, WriterLock] = weakref.WeakKeyDictionary()


def make_engine(url: str, *, pool_size: int = 5, checkpoint_in_background: bool = False) -> sa.Engine:
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
        _configure_sqlite(engine, autocheckpoint=not checkpoint_in_background)
        if checkpoint_in_background:
            _Checkpointer(engine).start()
        if parsed.database and parsed.database != ":memory:" and fcntl is not None:
            _WRITER_LOCKS[engine] = WriterLock(str(Path(parsed.database).resolve()))
        return engine
    # Plan every execution for the data as it is now. psycopg prepares statements it runs
    # often, and PostgreSQL would then settle on a generic plan made while a table was
    # small (a scan of the redemptions table, say) and keep it as the table grows.
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # Durability does not rest on the server's defaults: commits wait for the disk.
        connect_args={"options": "-c plan_cache_mode=force_custom_plan -c synchronous_commit=on"},
    )


def _configure_sqlite(engine: sa.Engine, *, autocheckpoint: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's own transaction handling is disabled).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        # SQLite's lower() folds ASCII only: 'Álvarez' would not find 'álvarez'. This one
        # folds as PostgreSQL's lower() does in a UTF-8 database (see ``fold_case``).
        dbapi_connection.create_function("canasta_lower", 1, _unicode_lower, deterministic=True)
        if not autocheckpoint:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        options = conn.get_execution_options()
        if options.get(_AUTOCOMMIT, False):
            return  # each statement on its own (see ``reads``)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE, False) else "BEGIN")


def fold_case(conn: sa.Connection, column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """``lower(column)`` that folds every letter, not only ASCII, on both databases."""
    if conn.dialect.name == "sqlite":
        return sa.func.canasta_lower(column, type_=sa.String)
    return sa.func.lower(column, type_=sa.String)


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


class _Checkpointer(threading.Thread):
    """Copies the write-ahead log back into the database file in the background.

    By default the commit that pushes the log past 1,000 pages does that copy itself, and the
    redemptions in it wait tens of milliseconds for it. A server instead turns that off and
    checkpoints here twice a second in passive mode, which never blocks a writer."""

    def __init__(self, engine: sa.Engine, interval: float = 0.5) -> None:
        super().__init__(name="canasta-sqlite-checkpoint", daemon=True)
        self._engine = weakref.ref(engine)
        self._interval = interval

    def run(self) -> None:
        while True:
            time.sleep(self._interval)
            engine = self._engine()
            if engine is None:
                return
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except sa.exc.SQLAlchemyError:  # never fatal: the next round tries again
                continue
            finally:
                del engine


@contextmanager
def transaction(engine: sa.Engine, *, write: bool = True) -> Iterator[sa.Connection]:
    """A connection in a transaction that commits when the block ends normally and rolls
    back on any error: nothing is ever half-written."""
    lock = _WRITER_LOCKS.get(engine) if write else None
    with lock or nullcontext(), engine.connect() as conn:
        conn = conn.execution_options(**{_WRITE: write})
        with conn.begin():
            yield conn


@contextmanager
def reads(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection whose statements each run on their own, with no transaction around
    them: for reads of rows that never change once written (the log's tiles), where a
    BEGIN and a COMMIT would cost more than the read."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            yield conn.execution_options(isolation_level="AUTOCOMMIT")
        else:
            yield conn.execution_options(**{_AUTOCOMMIT: True})
