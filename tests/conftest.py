"""Database fixtures shared by integration and end-to-end tests.

``engine`` runs each test on SQLite and on PostgreSQL. PostgreSQL is used when it answers
at ``CANASTA_TEST_POSTGRES_URL`` (default: postgres@127.0.0.1:5432); otherwise its tests
skip, unless ``CANASTA_REQUIRE_POSTGRES=1`` (set by .ci/run), which makes them fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from canasta.adapters import migrate
from canasta.adapters.db import make_engine
from canasta.adapters.tables import LEDGER_HEAD_SEED, ledger_head, metadata
from canasta.service.keys import ENV_KEYS, load_keyring
from canasta.service.transparency import bind_keys

PG_ADMIN_URL = os.environ.get("CANASTA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("CANASTA_REQUIRE_POSTGRES") == "1"


def _pg_reason() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}".strip()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is faster)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    reason = _pg_reason()
    if reason is not None:
        if REQUIRE_PG:
            pytest.fail(f"{reason} (CANASTA_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    name = f"canasta_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reset_postgres(engine: sa.Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        # Declared attributes add columns (attr_*) that a TRUNCATE leaves behind.
        for table, column in conn.exec_driver_sql(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND left(column_name, 5) = 'attr_'"
        ):
            conn.exec_driver_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        conn.execute(ledger_head.insert(), LEDGER_HEAD_SEED)


@pytest.fixture
def key_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's signing keys live in its own directory (never the working directory)."""
    directory = tmp_path / "keys"
    monkeypatch.setenv(ENV_KEYS, str(directory))
    return directory


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path, key_directory: Path
) -> Iterator[str]:
    """The URL of an empty, migrated database: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "canasta.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url: str = request.getfixturevalue("postgres_database")
    engine = make_engine(url)
    _reset_postgres(engine)
    engine.dispose()
    yield url


@pytest.fixture
def engine(database_url: str, key_directory: Path) -> Iterator[sa.Engine]:
    """An engine with this test's keys bound, as ``canasta`` itself opens one."""
    engine = make_engine(database_url)
    bind_keys(engine, load_keyring(key_directory))
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with its cheapest parameters in tests: they create accounts and PINs and
    guess them by the dozen, and what they check is the lockout, the sessions and the pages,
    not the hash's cost (tests/unit/test_credentials_authz.py checks the real profile). A
    hash carries its parameters, so verifying stays correct, also in a server subprocess."""
    from argon2 import PasswordHasher

    from canasta.service import credentials

    monkeypatch.setattr(credentials, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
