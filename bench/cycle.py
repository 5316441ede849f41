"""A cycle run over a large registry, against hand-written SQL and per-household Python.

    python bench/cycle.py [--households 1000000 | --ten-million] [--engines sqlite,postgresql,duckdb]
                          [--python-sample 200000] [--repeat 2] [--cache DIR] [--clean]

On each engine it generates a registry of N households (about 3.5 members each, with dates
of birth, 25 regions, a declared monthly income, a rural flag and a per-member disability
flag), publishes a food-basket policy that reads member aggregates, and measures in one run:

1. canasta's cycle run, end to end (``run_cycle``: lock, compile, one INSERT … SELECT, count,
   ledger entry, commit), and canasta's compiled statement alone;
2. the INSERT … SELECT a DBA would write by hand for the same policy, on the same engine,
   producing the same rows (checked: count, total and an order-independent checksum over
   beneficiary, quantity, policy and facts);
3. the same rule evaluated in Python household by household on a sample, the way ORM-based
   platforms do it, extrapolated to N;
4. ``explain_beneficiary`` for 200 random households;
5. each measurement's peak memory, in a child process of its own.

On DuckDB canasta's service layer does not run (SQLAlchemy has no DuckDB dialect): there the
statement ``compile_grant`` writes for DuckDB is timed on a DuckDB file holding the same
tables, and no explanation is measured. Timed runs alternate (canasta, compiled, hand, then
hand, compiled, canasta, …) and the best of each is reported. Timings are printed side by
side, never asserted.

Generated registries are kept in ``--cache`` (files for SQLite and DuckDB, a template
database ``canasta_bench_cycle_t<N>`` for PostgreSQL) and reused by the next run with the
same N; ``--clean`` removes them.
"""

# ruff: noqa: S608 - the SQL here is built from constants and integers this file makes

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import sqlalchemy as sa

from canasta.adapters import migrate
from canasta.adapters.db import make_engine
from canasta.domain.model import BeneficiaryKind, Programme
from canasta.policy.compile import Dialect, compile_grant
from canasta.policy.document import Policy, parse_policy
from canasta.policy.explain import evaluate, quantity
from canasta.policy.language import Catalogue
from canasta.registry.schema import parse_schema
from canasta.service import programmes as programme_service
from canasta.service import rules

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_RUN_DB = "canasta_bench_cycle"
PG_TEMPLATE_PREFIX = "canasta_bench_cycle_t"
DEFAULT_CACHE = Path("/tmp/canasta-bench-cycle")
ENGINES = ("sqlite", "postgresql", "duckdb")
TEN_MILLION = 10_000_000
TARGET_SECONDS = 30.0
TARGET_RATIO = 0.9
TARGET_EXPLAIN_MS = 50.0
EXPLANATIONS = 200
PYTHON_BATCH = 1000
#: Bump when the generated registry changes, so that cached ones are not reused.
GENERATOR = "cycle-registry-1"

PROGRAMME = "food"
STARTS_ON = date(2026, 12, 1)
SCHEMA = """\
[attributes.monthly_income]
type = "decimal"
unit = "PEN"
belongs_to = "household"
category = "income and assets"
purpose = "Income the household declared at registration, for means testing."

[attributes.rural]
type = "boolean"
unit = ""
belongs_to = "household"
category = "location"
purpose = "Whether the household lives in a rural area, where goods cost more to reach."

[attributes.disabled]
type = "boolean"
unit = ""
belongs_to = "person"
category = "disability and care needs"
purpose = "Whether the member has a registered disability, for care-related support."
"""
POLICY = '''\
programme = "food"
version = 2
description = "Low income, rural and modest income, or a disabled member; more for small children."
eligible = """monthly_income < 1500 OR (rural AND monthly_income < 2200)
  OR COUNT(*) FILTER (WHERE disabled) > 0"""
quota = "8 + 3.2 * members + 2.5 * COUNT(*) FILTER (WHERE age < 5) + CASE WHEN rural THEN 2 ELSE 0 END"
cap = 30
rounding = "down"
step = 0.5
'''
#: The order of the facts the policy stores with each entitlement; the hand-written SQL
#: writes them in this order.
FACT_KEYS = [
    "household.monthly_income",
    "household.rural",
    "COUNT(*) FILTER(WHERE disabled)",
    "COUNT(*)",
    "COUNT(*) FILTER(WHERE age < 5)",
]
REGIONS = (
    "Amazonas",
    "Áncash",
    "Apurímac",
    "Arequipa",
    "Ayacucho",
    "Cajamarca",
    "Callao",
    "Cusco",
    "Huancavelica",
    "Huánuco",
    "Ica",
    "Junín",
    "La Libertad",
    "Lambayeque",
    "Lima",
    "Loreto",
    "Madre de Dios",
    "Moquegua",
    "Pasco",
    "Piura",
    "Puno",
    "San Martín",
    "Tacna",
    "Tumbes",
    "Ucayali",
)
GIVEN = ("Ana", "Luis", "María", "José", "Rosa", "Carlos", "Lucía", "Jorge")
FAMILY = ("Quispe", "Flores", "Sánchez", "Rodríguez", "García", "Mamani", "Huamán", "Torres")


# -- the registry, generated set-based on each engine -------------------------------------------


def _h(value: str, k: int, dialect: Dialect) -> str:
    """A pseudo-random number 0..65535 from an integer expression: Knuth's multiplicative
    hash, one odd multiplier per ``k``; the same integer arithmetic on every engine, so every
    engine holds the same registry."""
    multiplier = (2654435761, 2246822519, 3266489917, 668265263, 374761393, 2870177451, 1597334677)[k % 7]
    multiplier += 2 * (k // 7) * 1000003
    div = "//" if dialect is Dialect.DUCKDB else "/"
    return f"((CAST({value} AS BIGINT) * {multiplier}) % 4294967296 {div} 65536)"


def _pick(value: str, choices: Sequence[str]) -> str:
    whens = " ".join(f"WHEN {i} THEN '{c}'" for i, c in enumerate(choices))
    return f"(CASE ({value}) % {len(choices)} {whens} END)"


def _padded(prefix: str, value: str, width: int, dialect: Dialect) -> str:
    if dialect is Dialect.POSTGRESQL:
        return f"('{prefix}' || lpad(CAST({value} AS TEXT), {width}, '0'))"
    return f"printf('{prefix}%0{width}d', {value})"


def _double_type(dialect: Dialect) -> str:
    return {Dialect.SQLITE: "REAL", Dialect.POSTGRESQL: "DOUBLE PRECISION", Dialect.DUCKDB: "DOUBLE"}[dialect]


def _div(dialect: Dialect) -> str:
    return "//" if dialect is Dialect.DUCKDB else "/"


def household_columns(dialect: Dialect) -> str:
    """The select list of one household from its number ``i``: 2 % of incomes unknown, 30 %
    rural."""
    i = "i"
    income = (
        f"CASE WHEN {_h(i, 3, dialect)} % 50 = 0 THEN NULL ELSE CAST(20000 + 5 * {_h(i, 4, dialect)} + "
        f"3 * ({_h(i, 5, dialect)} * {_h(i, 5, dialect)} {_div(dialect)} 65536) AS {_double_type(dialect)})"
        " / 100 END"
    )
    return (
        f"{i}, {_padded('H', i, 8, dialect)}, {_pick(_h(i, 0, dialect), REGIONS)}, "
        f"{_pick(_h(i, 0, dialect), REGIONS)} || ' ' || CAST({_h(i, 1, dialect)} % 40 + 1 AS TEXT), "
        f"'Calle ' || CAST({_h(i, 2, dialect)} % 900 + 1 AS TEXT), '2026-01-15T09:00:00Z', "
        f"{income}, ({_h(i, 6, dialect)} % 10 < 3)"
    )


def members_of(i: str, dialect: Dialect) -> str:
    """How many members household ``i`` has: 1 to 6, 3.5 on average."""
    return f"(1 + {_h(i, 7, dialect)} % 6)"


def person_columns(dialect: Dialect) -> str:
    """The select list of member ``j`` of household ``i`` (person id ``i * 8 + j``): the first
    two are adults of 18 to 80, the next two under 18, any others 20 to 80; 4 % disabled."""
    p = "(i * 8 + j)"
    div = _div(dialect)
    days = (
        f"(CASE WHEN j < 2 THEN 6570 + {_h(p, 8, dialect)} * 22630 {div} 65536 "
        f"WHEN j < 4 THEN {_h(p, 8, dialect)} * 6570 {div} 65536 "
        f"ELSE 7300 + {_h(p, 8, dialect)} * 21900 {div} 65536 END)"
    )
    if dialect is Dialect.SQLITE:
        julian = STARTS_ON.toordinal() + 1721424.5
        born = f"date({julian} - {days})"
    else:
        born = f"(DATE '{STARTS_ON.isoformat()}' - CAST({days} AS INTEGER))"
    return (
        f"{p}, i, {_padded('P', p, 9, dialect)}, {_pick(_h(p, 9, dialect), GIVEN)}, "
        f"{_pick(_h('i', 10, dialect), FAMILY)}, {_pick(_h('i', 11, dialect), FAMILY)}, "
        f"(CASE WHEN {_h(p, 12, dialect)} % 100 < 49 THEN 'F' WHEN {_h(p, 12, dialect)} % 100 < 98 "
        f"THEN 'M' ELSE 'X' END), {born}, CAST(900000000 + {p} AS TEXT), ({_h(p, 13, dialect)} % 100 < 4)"
    )


HOUSEHOLD_INSERT = (
    "INSERT INTO households (id, ref, region, municipality, address, created_at, attr_monthly_income, "
    "attr_rural) "
)
PERSON_INSERT = (
    "INSERT INTO persons (id, household_id, registration_id, given_names, family_name, "
    "second_family_name, sex, date_of_birth, phone, attr_disabled) "
)


def generation_sql(dialect: Dialect, n: int) -> list[str]:
    if dialect is Dialect.SQLITE:
        return [
            f"{HOUSEHOLD_INSERT}WITH RECURSIVE ids(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM ids "
            f"WHERE i < {n}) SELECT {household_columns(dialect)} FROM ids",
            f"{PERSON_INSERT}WITH slots(j) AS (VALUES (0), (1), (2), (3), (4), (5)) "
            f"SELECT {person_columns(dialect)} FROM (SELECT id AS i FROM households) h CROSS JOIN slots "
            f"WHERE j < {members_of('i', dialect)}",
        ]
    if dialect is Dialect.POSTGRESQL:
        return [
            f"{HOUSEHOLD_INSERT}SELECT {household_columns(dialect)} FROM generate_series(1, {n}) i",
            f"{PERSON_INSERT}SELECT {person_columns(dialect)} FROM generate_series(1, {n}) i "
            f"CROSS JOIN LATERAL generate_series(0, {members_of('i', dialect)} - 1) j",
        ]
    return [
        f"{HOUSEHOLD_INSERT}SELECT {household_columns(dialect)} FROM range(1, {n + 1}) t(i)",
        f"{PERSON_INSERT}SELECT {person_columns(dialect)} FROM range(1, {n + 1}) t(i) "
        f"CROSS JOIN range(0, 6) s(j) WHERE j < {members_of('i', dialect)} ORDER BY i, j",
    ]


#: The canasta tables a cycle run reads and writes, for DuckDB: the same columns, keys,
#: foreign keys, unique constraint, check and indexes as ``canasta.adapters.tables``.
DUCKDB_REGISTRY_DDL = [
    "CREATE TABLE households (id BIGINT PRIMARY KEY, ref VARCHAR(64) NOT NULL UNIQUE, "
    "region VARCHAR(100) NOT NULL, municipality VARCHAR(100) NOT NULL, address VARCHAR(300) NOT NULL, "
    "created_at VARCHAR(32) NOT NULL, attr_monthly_income DOUBLE, attr_rural BOOLEAN)",
    "CREATE TABLE persons (id BIGINT PRIMARY KEY, household_id BIGINT NOT NULL REFERENCES households (id), "
    "registration_id VARCHAR(64) NOT NULL UNIQUE, given_names VARCHAR(200) NOT NULL, "
    "family_name VARCHAR(200) NOT NULL, second_family_name VARCHAR(200) NOT NULL, sex VARCHAR(1) NOT NULL, "
    "date_of_birth DATE NOT NULL, phone VARCHAR(32) NOT NULL, attr_disabled BOOLEAN)",
    "CREATE TABLE programmes (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL UNIQUE)",
    "CREATE TABLE cycles (id BIGINT PRIMARY KEY, programme_id BIGINT NOT NULL REFERENCES programmes (id), "
    "starts_on DATE NOT NULL, ends_on DATE NOT NULL, status VARCHAR(8) NOT NULL, policy_id BIGINT)",
    "INSERT INTO programmes VALUES (1, 'food')",
    f"INSERT INTO cycles VALUES (1, 1, DATE '{STARTS_ON.isoformat()}', "
    f"DATE '{STARTS_ON.isoformat()}' + 29, 'open', 2)",
]
DUCKDB_INDEXES = ["CREATE INDEX ix_persons_household_id ON persons (household_id)"]
DUCKDB_ENTITLEMENTS = [
    "DROP TABLE IF EXISTS entitlements",
    "DROP SEQUENCE IF EXISTS entitlements_id",
    "CREATE SEQUENCE entitlements_id",
    # No foreign keys, as in canasta's own table (the audit checks the references).
    "CREATE TABLE entitlements (id BIGINT PRIMARY KEY DEFAULT nextval('entitlements_id'), "
    "cycle_id BIGINT NOT NULL, programme_id BIGINT NOT NULL, "
    "beneficiary_kind VARCHAR(16) NOT NULL, beneficiary_id BIGINT NOT NULL, "
    "household_id BIGINT NOT NULL, quantity BIGINT NOT NULL, "
    "redeemed BIGINT NOT NULL, policy_id BIGINT, facts VARCHAR, "
    "UNIQUE (beneficiary_id, beneficiary_kind, cycle_id), "
    "CHECK (redeemed >= 0 AND redeemed <= quantity))",
    "CREATE INDEX ix_entitlements_household_id ON entitlements (household_id)",
]
DUCKDB_IDS = (1, 1, 2)  # cycle, programme, policy


def duck(path: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that draws no progress bar."""
    con = duckdb.connect(path)
    con.execute("SET enable_progress_bar = false")
    return con


# -- the hand-written statements ---------------------------------------------------------------


def hand_sql(engine: str, cycle_id: int, programme_id: int, policy_id: int) -> str:
    """The INSERT … SELECT a DBA would write for POLICY: members counted in one grouped pass
    (``age < 5`` as a comparison of the date of birth with the day five years before the
    cycle starts), the quota in whole thousandths with integer arithmetic (exact, so no
    rounding to the thousandth is needed), the step and cap applied once, the facts in the
    policy's order."""
    under_five = STARTS_ON.replace(year=STARTS_ON.year - 5).isoformat()
    if engine == "sqlite":
        return (
            "INSERT INTO entitlements (cycle_id, programme_id, beneficiary_kind, beneficiary_id, "
            "household_id, quantity, redeemed, policy_id, facts) "
            f"SELECT {cycle_id}, {programme_id}, 'household', h.id, h.id, "
            "MIN(30000, (8000 + 3200 * COALESCE(m.members, 0) + 2500 * COALESCE(m.under_five, 0) "
            "+ CASE WHEN h.attr_rural THEN 2000 ELSE 0 END) / 500 * 500), "
            f"0, {policy_id}, json_array(h.attr_monthly_income, h.attr_rural, COALESCE(m.disabled, 0), "
            "COALESCE(m.members, 0), COALESCE(m.under_five, 0)) "
            "FROM households h LEFT JOIN (SELECT household_id, COUNT(*) AS members, "
            "COUNT(*) FILTER (WHERE attr_disabled) AS disabled, "
            f"COUNT(*) FILTER (WHERE date_of_birth > '{under_five}') AS under_five "
            "FROM persons GROUP BY household_id) m ON m.household_id = h.id "
            "WHERE h.attr_monthly_income < 1500 OR (h.attr_rural AND h.attr_monthly_income < 2200) "
            "OR m.disabled > 0"
        )
    to_text = "TEXT" if engine == "postgresql" else "VARCHAR"
    json_array = "json_build_array" if engine == "postgresql" else "json_array"
    div = "/" if engine == "postgresql" else "//"
    return (
        "INSERT INTO entitlements (cycle_id, programme_id, beneficiary_kind, beneficiary_id, "
        "household_id, quantity, redeemed, policy_id, facts) "
        f"SELECT {cycle_id}, {programme_id}, 'household', h.id, h.id, "
        "LEAST(30000, (8000 + 3200 * COALESCE(m.members, 0) + 2500 * COALESCE(m.under_five, 0) "
        f"+ CASE WHEN h.attr_rural THEN 2000 ELSE 0 END) {div} 500 * 500), "
        f"0, {policy_id}, CAST({json_array}(h.attr_monthly_income, h.attr_rural, COALESCE(m.disabled, 0), "
        f"COALESCE(m.members, 0), COALESCE(m.under_five, 0)) AS {to_text}) "
        "FROM households h LEFT JOIN (SELECT household_id, COUNT(*) AS members, "
        "COUNT(*) FILTER (WHERE attr_disabled) AS disabled, "
        f"COUNT(*) FILTER (WHERE date_of_birth > DATE '{under_five}') AS under_five "
        "FROM persons GROUP BY household_id) m ON m.household_id = h.id "
        "WHERE h.attr_monthly_income < 1500 OR (h.attr_rural AND h.attr_monthly_income < 2200) "
        "OR m.disabled > 0"
    )


# -- child processes -----------------------------------------------------------------------------


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_child(function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function(*args)`` in a fresh process, so that its peak memory is its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


@dataclass(frozen=True, slots=True)
class Timed:
    seconds: float
    peak_rss_mb: float


@contextmanager
def plain_transaction(engine: str, location: str) -> Iterator[Any]:
    """A cursor in one transaction on a plain DB-API connection, committed at the end: the
    engine's defaults, with the same durability and integrity as canasta's (SQLite: WAL,
    ``synchronous=FULL``, foreign keys on; PostgreSQL: synchronous commit)."""
    if engine == "sqlite":
        con = sqlite3.connect(_sqlite_path(location), isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            con.execute(f"PRAGMA {pragma}")
        con.execute("BEGIN IMMEDIATE")
        cursor = con.cursor()
        yield cursor
        cursor.close()
        con.execute("COMMIT")
        con.close()
    elif engine == "postgresql":
        with psycopg.connect(location, options="-c synchronous_commit=on") as pg, pg.cursor() as cur:
            yield cur  # the connection commits on leaving the block
    else:
        duck_con = duck(location)
        duck_con.execute("BEGIN")
        yield duck_con
        duck_con.execute("COMMIT")
        duck_con.close()


def timed_run(engine: str, location: str, kind: str, statement: str) -> Timed:
    """One timed run in this (child) process. "canasta" is ``run_cycle`` on canasta's own
    engine (``make_engine``); a statement ("compiled", "hand") runs in one transaction on a
    plain DB-API connection, as a DBA would run it: the engine's defaults, with the same
    durability and integrity as canasta's (SQLite: WAL, ``synchronous=FULL``, foreign keys
    on; PostgreSQL: synchronous commit). Connecting and committing are timed in both."""
    if kind == "canasta":
        db = make_engine(location)
        start = time.perf_counter()
        programme_service.run_cycle(db, PROGRAMME, STARTS_ON)
        seconds = time.perf_counter() - start
        db.dispose()
        return Timed(seconds, peak_rss_mb())
    start = time.perf_counter()
    with plain_transaction(engine, location) as cursor:
        cursor.execute(statement)
    return Timed(time.perf_counter() - start, peak_rss_mb())


# -- the databases -----------------------------------------------------------------------------


def cache_key(n: int) -> str:
    text = f"{GENERATOR}|{n}|{SCHEMA}|{migrate.head_revision()}|{STARTS_ON}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def pg_url(database: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"


def pg_reachable() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    except psycopg.OperationalError:
        return None


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def generate_sqlite(path: str, n: int) -> float:
    """A migrated database with the schema declared and ``n`` households; seconds taken."""
    start = time.perf_counter()
    db = make_engine(f"sqlite:///{path}")
    migrate.upgrade(db)
    rules.declare_schema(db, SCHEMA, "schema.toml")
    db.dispose()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-1000000")
    con.execute("BEGIN")
    for statement in generation_sql(Dialect.SQLITE, n):
        con.execute(statement)
    con.execute("COMMIT")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    return time.perf_counter() - start


def generate_postgresql(database: str, n: int) -> float:
    start = time.perf_counter()
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{database}"')
    db = make_engine(pg_url(database))
    migrate.upgrade(db)
    rules.declare_schema(db, SCHEMA, "schema.toml")
    db.dispose()
    with psycopg.connect(pg_url(database), autocommit=True) as conn:
        # Foreign keys are not checked while generating (the ids are right by construction).
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET maintenance_work_mem = '1GB'")
        with conn.transaction():
            for statement in generation_sql(Dialect.POSTGRESQL, n):
                conn.execute(statement)
        conn.execute("VACUUM (FREEZE, ANALYZE)")
        conn.execute("CHECKPOINT")
    return time.perf_counter() - start


def generate_duckdb(path: str, n: int) -> float:
    start = time.perf_counter()
    con = duck(path)
    for statement in DUCKDB_REGISTRY_DDL:
        con.execute(statement)
    for statement in generation_sql(Dialect.DUCKDB, n):
        con.execute(statement)
    for statement in DUCKDB_INDEXES + DUCKDB_ENTITLEMENTS:
        con.execute(statement)
    con.execute("CHECKPOINT")
    con.close()
    return time.perf_counter() - start


def _generate(engine: str, where: str, n: int) -> Timed:
    seconds = {"sqlite": generate_sqlite, "postgresql": generate_postgresql, "duckdb": generate_duckdb}[
        engine
    ](where, n)
    return Timed(seconds, peak_rss_mb())


@dataclass(slots=True)
class Prepared:
    location: str
    generated: Timed | None
    members: int


def prepare(engine: str, n: int, cache: Path) -> Prepared:
    """A fresh copy of the cached registry of ``n`` households (generated if missing)."""
    key = cache_key(n)
    cache.mkdir(parents=True, exist_ok=True)
    generated: Timed | None = None
    if engine == "postgresql":
        template = f"{PG_TEMPLATE_PREFIX}{n}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            row = admin.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                (template,),
            ).fetchone()
        if row is None or row[0] != key:
            generated = in_child(_generate, engine, template, n)
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f"COMMENT ON DATABASE \"{template}\" IS '{key}'")
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_RUN_DB}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{PG_RUN_DB}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        location = pg_url(PG_RUN_DB)
        with psycopg.connect(location, autocommit=True) as conn:
            members = int(conn.execute("SELECT count(*) FROM persons").fetchone()[0])  # type: ignore[index]
        return Prepared(location, generated, members)
    suffix = "db" if engine == "sqlite" else "duckdb"
    template_path = cache / f"{engine}-{n}-{key}.{suffix}"
    if not template_path.exists():
        for stale in cache.glob(f"{engine}-{n}-*"):
            stale.unlink()
        building = template_path.with_name(template_path.name + ".building")
        for leftover in cache.glob(building.name + "*"):
            leftover.unlink()
        generated = in_child(_generate, engine, str(building), n)
        building.rename(template_path)
        for leftover in cache.glob(building.name + "*"):
            leftover.unlink()
    run_path = cache / f"run-{engine}-{n}.{suffix}"
    for leftover in cache.glob(run_path.name + "*"):
        leftover.unlink()
    shutil.copyfile(template_path, run_path)
    if engine == "sqlite":
        with sqlite3.connect(run_path) as con:
            members = int(con.execute("SELECT count(*) FROM persons").fetchone()[0])
        return Prepared(f"sqlite:///{run_path}", generated, members)
    with duck(str(run_path)) as con:
        found = con.execute("SELECT count(*) FROM persons").fetchone()
        members = int(found[0]) if found else 0
    return Prepared(str(run_path), generated, members)


def discard(engine: str, location: str) -> None:
    if engine == "postgresql":
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_RUN_DB}" WITH (FORCE)')
        return
    path = Path(_sqlite_path(location) if engine == "sqlite" else location)
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()


def clean(cache: Path) -> None:
    shutil.rmtree(cache, ignore_errors=True)
    if pg_reachable() is None:
        return
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        names = [
            str(r[0])
            for r in admin.execute(
                "SELECT datname FROM pg_database WHERE datname = %s OR datname LIKE %s",
                (PG_RUN_DB, PG_TEMPLATE_PREFIX + "%"),
            )
        ]
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            print(f"dropped database {name}")


@contextmanager
def sql_connection(engine: str, location: str) -> Iterator[Any]:
    """A plain DB-API connection in autocommit mode, for set-up and checks."""
    if engine == "sqlite":
        con: Any = sqlite3.connect(_sqlite_path(location), isolation_level=None)
    elif engine == "postgresql":
        con = psycopg.connect(location, autocommit=True)
    else:
        con = duck(location)
    try:
        yield con
    finally:
        con.close()


def clear_entitlements(engine: str, location: str) -> None:
    """Every timed run starts from an empty entitlements table, with nothing left to flush."""
    with sql_connection(engine, location) as con:
        if engine == "sqlite":
            con.execute("DELETE FROM entitlements")
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        elif engine == "postgresql":
            con.execute("TRUNCATE entitlements")
            con.execute("CHECKPOINT")
        else:
            for statement in DUCKDB_ENTITLEMENTS:
                con.execute(statement)
            con.execute("CHECKPOINT")


@dataclass(frozen=True, slots=True)
class Check:
    """What a run wrote: rows, total quantity, the sum of beneficiary × quantity (comparable
    across engines) and a checksum over beneficiary, quantity, policy and facts (comparable
    on one engine: the facts' JSON text differs between engines)."""

    count: int
    total: int
    weighted: int
    checksum: int

    def same_rows(self, other: Check) -> bool:
        return (self.count, self.total, self.weighted) == (other.count, other.total, other.weighted)


class _Checksum:
    """SQLite aggregate: the sum modulo 2**64 of the first 8 bytes of BLAKE2b of each value."""

    def __init__(self) -> None:
        self.total = 0

    def step(self, value: str) -> None:
        digest = hashlib.blake2b(value.encode(), digest_size=8).digest()
        self.total = (self.total + int.from_bytes(digest, "big")) % 2**64

    def finalize(self) -> int:
        return self.total - 2**63  # SQLite integers are signed


def check(engine: str, location: str, cycle_id: int, upto: int | None = None, full: bool = True) -> Check:
    where = f"cycle_id = {cycle_id}" + (f" AND beneficiary_id <= {upto}" if upto is not None else "")
    if not full:
        checksum = "0"
    elif engine == "sqlite":
        checksum = "checksum(beneficiary_id || '|' || quantity || '|' || policy_id || '|' || facts)"
    elif engine == "postgresql":
        checksum = (
            "COALESCE(SUM(('x' || substr(md5(beneficiary_id || '|' || quantity || '|' || policy_id || '|' "
            "|| facts), 1, 15))::bit(60)::bigint), 0)"
        )
    else:
        checksum = "COALESCE(SUM(hash(beneficiary_id, quantity, policy_id, facts)), 0)"
    query = (
        f"SELECT COUNT(*), COALESCE(SUM(quantity), 0), COALESCE(SUM(beneficiary_id * quantity), 0), "
        f"{checksum} FROM entitlements WHERE {where}"
    )
    with sql_connection(engine, location) as con:
        if engine == "sqlite":
            con.create_aggregate("checksum", 1, _Checksum)
        row = con.execute(query).fetchone()
    return Check(int(row[0]), int(row[1]), int(row[2]), int(row[3]) % 2**64)


# -- per-household Python ------------------------------------------------------------------------


def the_policy() -> Policy:
    catalogue = Catalogue.of(parse_schema(SCHEMA, "schema.toml").attributes)
    return parse_policy(POLICY, "food-v2.toml", catalogue)


@dataclass(frozen=True, slots=True)
class PythonRun:
    households: int
    seconds: float
    peak_rss_mb: float


def python_run(engine: str, location: str, households: int, ids: tuple[int, int, int]) -> PythonRun:
    """Households 1..``households`` evaluated one by one in Python, the way an ORM platform
    does: households fetched in batches of 1,000 ids (as an ORM prefetches), their members
    in one query per batch, the member aggregates counted in Python, the eligibility and
    quota rules evaluated by canasta's own interpreter (``policy.explain.evaluate``), and the
    entitlements inserted per batch, all in one transaction on a plain connection (the
    ORM's own, see ``plain_transaction``)."""
    policy = the_policy()
    assert [f.key for f in policy.facts] == FACT_KEYS
    cycle_id, programme_id, policy_id = ids
    start_day = STARTS_ON.year * 10000 + STARTS_ON.month * 100 + STARTS_ON.day
    insert = (
        "INSERT INTO entitlements (cycle_id, programme_id, beneficiary_kind, beneficiary_id, household_id, "
        "quantity, redeemed, policy_id, facts) VALUES "
    )
    marks = (
        "(?, ?, ?, ?, ?, ?, ?, ?, ?)" if engine != "postgresql" else "(%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )

    def day(value: Any) -> int:
        if isinstance(value, str):
            return int(value.replace("-", ""))
        return int(value.year * 10000 + value.month * 100 + value.day)

    def body(cursor: Any) -> None:
        for low in range(1, households + 1, PYTHON_BATCH):
            batch = ", ".join(str(i) for i in range(low, min(low + PYTHON_BATCH, households + 1)))
            cursor.execute(
                "SELECT id, attr_monthly_income, attr_rural FROM households "
                f"WHERE id IN ({batch}) ORDER BY id"
            )
            homes = cursor.fetchall()
            cursor.execute(
                "SELECT household_id, date_of_birth, attr_disabled FROM persons "
                f"WHERE household_id IN ({batch})"
            )
            members: dict[int, list[tuple[Any, Any]]] = {}
            for household_id, born, disabled in cursor.fetchall():
                members.setdefault(household_id, []).append((born, disabled))
            rows = []
            for household_id, income, rural in homes:
                people = members.get(household_id, [])
                facts = {
                    FACT_KEYS[0]: income,
                    FACT_KEYS[1]: None if rural is None else bool(rural),
                    FACT_KEYS[2]: sum(1 for _, disabled in people if disabled),
                    FACT_KEYS[3]: len(people),
                    FACT_KEYS[4]: sum(1 for born, _ in people if (start_day - day(born)) // 10000 < 5),
                }
                if evaluate(policy.eligible.tree, facts) is not True:
                    continue
                granted = quantity(policy, evaluate(policy.quota.tree, facts))
                if granted is None or granted <= 0:
                    continue
                rows.append(
                    (
                        cycle_id,
                        programme_id,
                        "household",
                        household_id,
                        household_id,
                        granted,
                        0,
                        policy_id,
                        json.dumps([facts[k] for k in FACT_KEYS]),
                    )
                )
            if rows:
                cursor.executemany(insert + marks, rows)

    start = time.perf_counter()
    with plain_transaction(engine, location) as cursor:
        body(cursor)
    return PythonRun(households, time.perf_counter() - start, peak_rss_mb())


# -- explanations --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Explained:
    p50_ms: float
    p99_ms: float
    max_ms: float
    entitled: int
    count: int
    over_target: int
    peak_rss_mb: float


def explain_run(location: str, n: int, count: int) -> Explained:
    """``explain_beneficiary`` for ``count`` random households (after 5 untimed calls)."""
    db = make_engine(location)
    chosen = random.Random(20261201).sample(range(1, n + 1), min(count + 5, n))
    times = []
    entitled = 0
    for number, household in enumerate(chosen):
        start = time.perf_counter()
        explained = rules.explain_beneficiary(db, PROGRAMME, f"H{household:08d}", STARTS_ON)
        if number >= 5:
            times.append((time.perf_counter() - start) * 1000)
            entitled += explained.entitlement_id is not None
    db.dispose()
    times.sort()
    return Explained(
        statistics.median(times),
        times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
        times[-1],
        entitled,
        len(times),
        sum(1 for t in times if t > TARGET_EXPLAIN_MS),
        peak_rss_mb(),
    )


# -- one engine ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Report:
    engine: str
    version: str
    households: int
    members: int = 0
    generated: Timed | None = None
    reference: Check | None = None
    runs: dict[str, list[Timed]] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    python: PythonRun | None = None
    explained: Explained | None = None

    def best(self, kind: str) -> Timed:
        return min(self.runs[kind], key=lambda t: t.seconds)


def order(repeat: int) -> list[str]:
    """canasta, compiled, hand; then hand, compiled, canasta; and so on."""
    kinds = ["canasta", "compiled", "hand"]
    out: list[str] = []
    for r in range(repeat):
        out += kinds if r % 2 == 0 else kinds[::-1]
    return out


def set_up_programme(location: str) -> tuple[int, int]:
    """The food programme, per household, created with canasta's service (which publishes
    its fixed quota as version 1), and POLICY published as version 2. Returns the
    programme's and the policy's ids."""
    db = make_engine(location)
    programme = programme_service.create_programme(
        db,
        Programme(PROGRAMME, "kg", BeneficiaryKind.HOUSEHOLD, 30, quota_fixed=10_000, quota_per_member=2_000),
    )
    published = rules.publish_policy(db, POLICY, "food-v2.toml")
    db.dispose()
    assert programme.id is not None
    return int(programme.id), published.policy_id


def cycle_id_of(location: str, programme_id: int) -> int:
    db = make_engine(location)
    with db.connect() as conn:
        found = conn.scalar(
            sa.text("SELECT id FROM cycles WHERE programme_id = :p AND starts_on = :s"),
            {"p": programme_id, "s": STARTS_ON},
        )
    db.dispose()
    assert found is not None
    return int(found)


def bench_engine(engine: str, version: str, n: int, args: argparse.Namespace) -> Report:
    report = Report(engine, version, n)
    print(f"\n{NAMES[engine]}: preparing {n:,} households", flush=True)
    prepared = prepare(engine, n, args.cache)
    report.generated = prepared.generated
    report.members = prepared.members
    location = prepared.location
    if prepared.generated is not None:
        print(f"  generated in {prepared.generated.seconds:.1f} s", flush=True)
    try:
        policy = the_policy()
        assert [f.key for f in policy.facts] == FACT_KEYS, [f.key for f in policy.facts]
        dialect = {"sqlite": Dialect.SQLITE, "postgresql": Dialect.POSTGRESQL, "duckdb": Dialect.DUCKDB}[
            engine
        ]
        if engine == "duckdb":
            cycle_id, programme_id, policy_id = DUCKDB_IDS
            compiled = compile_grant(policy, dialect, STARTS_ON, cycle_id, programme_id, policy_id)
            warm = in_child(timed_run, engine, location, "compiled", compiled)
            kinds = [k for k in order(args.repeat) if k != "canasta"]
        else:
            programme_id, policy_id = set_up_programme(location)
            warm = in_child(timed_run, engine, location, "canasta", "")  # opens the cycle
            cycle_id = cycle_id_of(location, programme_id)
            compiled = compile_grant(policy, dialect, STARTS_ON, cycle_id, programme_id, policy_id)
            kinds = order(args.repeat)
        print(f"  warm-up    {warm.seconds:8.2f} s  (opens the cycle; untimed)", flush=True)
        reference = check(engine, location, cycle_id)
        report.reference = reference
        statements = {
            "canasta": "",
            "compiled": compiled,
            "hand": hand_sql(engine, cycle_id, programme_id, policy_id),
        }
        for kind in kinds:
            clear_entitlements(engine, location)
            timed = in_child(timed_run, engine, location, kind, statements[kind])
            report.runs.setdefault(kind, []).append(timed)
            got = check(engine, location, cycle_id)
            same = got == reference
            print(
                f"  {kind:9}  {timed.seconds:8.2f} s  peak RSS {timed.peak_rss_mb:5.0f} MB  "
                f"{'same rows as the warm-up' if same else 'DIFFERENT rows'}",
                flush=True,
            )
            if not same:
                report.mismatches.append(f"{kind} wrote {got}, the warm-up run {reference}")
        report.checks.append(
            f"check: every run wrote the same {reference.count:,} rows as the warm-up run "
            f"(total {reference.total:,} g, checksum {reference.checksum:016x} over beneficiary, "
            "quantity, policy and facts)"
            if not report.mismatches
            else "check: runs DIFFER (see below)"
        )
        if engine != "duckdb":
            report.explained = in_child(explain_run, location, n, EXPLANATIONS)
        sample = min(args.python_sample, n)
        if sample > 0:
            expected = check(engine, location, cycle_id, upto=sample, full=False)
            clear_entitlements(engine, location)
            report.python = in_child(
                python_run, engine, location, sample, (cycle_id, programme_id, policy_id)
            )
            got = check(engine, location, cycle_id, upto=sample, full=False)
            print(f"  Python     {report.python.seconds:8.2f} s  for {sample:,} households", flush=True)
            same = got.same_rows(expected)
            report.checks.append(
                f"Python check: households 1-{sample:,} got {got.count:,} entitlements, "
                f"total {got.total:,} g, sum of household id x quantity {got.weighted:,}: "
                + ("the same as canasta's" if same else "DIFFERENT from canasta's")
            )
            if not same:
                report.mismatches.append(f"Python wrote {got}, canasta {expected}")
    finally:
        discard(engine, location)
    return report


# -- output ---------------------------------------------------------------------------------------


def _runs(times: list[Timed]) -> str:
    return "best of " + ", ".join(f"{t.seconds:.2f}" for t in times) + " s"


NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "duckdb": "DuckDB"}


def print_report(report: Report) -> None:
    n = report.households
    ref = report.reference
    assert ref is not None
    duck = report.engine == "duckdb"
    ours = "compiled" if duck else "canasta"
    canasta, compiled, hand = report.best(ours), report.best("compiled"), report.best("hand")
    gen = report.generated
    rows: list[tuple[str, str, str]] = [
        ("households", f"{n:,}", f"{report.members:,} members, {report.members / n:.2f} per household"),
        (
            "registry generated",
            f"{gen.seconds:.1f} s" if gen else "cached",
            f"peak RSS {gen.peak_rss_mb:,.0f} MB; not part of the target" if gen else "reused from --cache",
        ),
        (
            "entitlements written",
            f"{ref.count:,}",
            f"{ref.count / n:.1%} of households, {ref.total / 1000:,.1f} kg",
        ),
        (
            "compiled statement (DuckDB)" if duck else "canasta run_cycle, end to end",
            f"{canasta.seconds:.2f} s",
            _runs(report.runs[ours]) + f"; peak RSS {max(t.peak_rss_mb for t in report.runs[ours]):,.0f} MB",
        ),
    ]
    if not duck:
        rows.append(
            (
                "canasta's compiled statement alone",
                f"{compiled.seconds:.2f} s",
                _runs(report.runs["compiled"])
                + "; compile_grant's INSERT on a plain connection, as hand SQL",
            )
        )
    rows.append(
        (
            "hand-written SQL",
            f"{hand.seconds:.2f} s",
            _runs(report.runs["hand"])
            + f"; peak RSS {max(t.peak_rss_mb for t in report.runs['hand']):,.0f} MB",
        )
    )
    ratio = hand.seconds / canasta.seconds
    rows.append(
        (
            "ratio hand / canasta",
            f"{ratio:.3f}x",
            f"target >= {TARGET_RATIO}x: {'met' if ratio >= TARGET_RATIO else 'NOT MET'}"
            + ("" if duck else f" (hand / compiled statement alone: {hand.seconds / compiled.seconds:.3f}x)"),
        )
    )
    rows.append(
        ("households per second", f"{n / canasta.seconds:,.0f}", f"hand-written SQL {n / hand.seconds:,.0f}")
    )
    if report.python is not None:
        py = report.python
        rate = py.households / py.seconds
        rows.append(
            (
                "Python, households per second",
                f"{rate:,.0f}",
                f"{rate / (n / canasta.seconds):.3f}x canasta; measured on households 1-{py.households:,} "
                f"({py.seconds:.1f} s, peak RSS {py.peak_rss_mb:,.0f} MB)",
            )
        )
        rows.append(
            (
                "  EXTRAPOLATED to all households",
                f"{n / rate:,.0f} s",
                f"linear extrapolation from the sample to {n:,} households, not measured",
            )
        )
    if report.explained is not None:
        ex = report.explained
        rows.append(
            (
                "explanation, p50 / p99",
                f"{ex.p50_ms:.1f} / {ex.p99_ms:.1f} ms",
                f"max {ex.max_ms:.1f} ms over {ex.count} random households ({ex.entitled} entitled, peak RSS "
                f"{ex.peak_rss_mb:,.0f} MB); target <= {TARGET_EXPLAIN_MS:.0f} ms each: "
                + ("met" if ex.over_target == 0 else f"NOT MET by {ex.over_target} of {ex.count}"),
            )
        )
    else:
        rows.append(("explanation", "n/a", "canasta's service layer does not run on DuckDB"))
    projected = canasta.seconds * TEN_MILLION / n
    measured = n == TEN_MILLION
    rows.append(
        (
            "10,000,000 households <= 30 s",
            f"{projected:.1f} s",
            (
                "measured"
                if measured
                else f"LINEAR EXTRAPOLATION of {canasta.seconds:.2f} s at {n:,}, not measured"
            )
            + f": {'met' if projected <= TARGET_SECONDS else 'NOT MET'}",
        )
    )
    title = f"{NAMES[report.engine]} {report.version}"
    if duck:
        title += ": canasta's compiled statement (compile_grant), as the service layer does not run on DuckDB"
    if report.engine == "postgresql":
        title += " (peak RSS is the client process's; the server's memory is not included)"
    print(f"\n{title}")
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    for what, value, note in rows:
        print(f"  {what:<{width}}  {value:>{value_width}}  {note}")
    for line in report.checks:
        print(f"  {line}")
    for mismatch in report.mismatches:
        print(f"  MISMATCH {mismatch}")


def source_state() -> str:
    """The commit measured, and whether ``src/`` had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "source state unknown"
    return f"canasta at {commit}" + (" with uncommitted changes in src/" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=1_000_000, help="households to generate")
    parser.add_argument("--ten-million", action="store_true", help="10,000,000 households")
    parser.add_argument(
        "--engines", default=",".join(ENGINES), help="engines to measure (default: all reachable)"
    )
    parser.add_argument("--python-sample", type=int, default=200_000, help="households evaluated in Python")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each (the best is reported)")
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help="where generated registries are kept"
    )
    parser.add_argument("--clean", action="store_true", help="remove the cached registries and exit")
    args = parser.parse_args()
    if args.clean:
        clean(args.cache)
        return
    n = TEN_MILLION if args.ten_million else args.households
    wanted = [e.strip() for e in args.engines.split(",") if e.strip()]
    for engine in wanted:
        if engine not in ENGINES:
            raise SystemExit(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    versions = {"sqlite": sqlite3.sqlite_version, "duckdb": duckdb.__version__}
    pg = pg_reachable()
    if pg is not None:
        versions["postgresql"] = pg
    engines = [e for e in wanted if e in versions]
    print(
        f"canasta cycle benchmark: {n:,} households; {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}, "
        f"SQLite {sqlite3.sqlite_version}, PostgreSQL {pg or 'not reachable'}, DuckDB {duckdb.__version__}; "
        f"best of {args.repeat} timed run(s) each; {source_state()}; cache in {args.cache}"
    )
    for engine in wanted:
        if engine not in versions:
            print(f"skipping {engine}: not reachable at {PG_ADMIN}")
    reports = [bench_engine(e, versions[e], n, args) for e in engines]
    print("\nResults")
    for report in reports:
        print_report(report)
    if len(reports) > 1:
        first = reports[0].reference
        same = all(
            r.reference is not None and first is not None and r.reference.same_rows(first) for r in reports
        )
        print(
            "\nAcross engines: "
            + (
                "the same entitlements (count, total, Σ id×quantity) on every engine"
                if same
                else "DIFFERENT entitlements: " + "; ".join(f"{r.engine} {r.reference}" for r in reports)
            )
        )


if __name__ == "__main__":
    main()
