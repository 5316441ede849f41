"""Durable redemptions per second over HTTP, against the raw limits, measured in one run.

    python bench/redeem.py [--seconds 10] [--clients 8,32,64] [--workers 1,2] [--no-postgres]

It measures, one after the other on the same machine:

1. the raw limits: ``pgbench -N`` on the same PostgreSQL at 8, 32 and 64 clients (best
   taken), a bare ``sqlite3`` loop doing the same update and insert in one transaction each
   with ``synchronous=FULL``, and wrk against a trivial server (the load generator's own
   ceiling, to show it is not the bottleneck);
2. canasta: ``canasta serve`` on a fresh SQLite file and on a fresh PostgreSQL database,
   with each worker count, driven by wrk (``redeem.lua``: one unit on a random card of
   20,000, at one of 16 outlets, a unique idempotency key each) at each client count;

then prints the best canasta figure against each raw limit, with p50/p99 latency, and checks
that every acknowledged redemption is in the database and that the ledger audits clean.
Needs ``wrk`` and ``pgbench`` (Debian: ``apt-get install wrk postgresql-contrib``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import sqlalchemy as sa

from baselines import (
    WrkResult,
    ensure_postgres,
    pgbench_best,
    run_wrk,
    sqlite_raw_loop,
    write_wrk_data,
    wrk_ceiling,
)
from canasta.adapters.db import make_engine
from canasta.adapters.tables import redemptions
from canasta.domain.model import BeneficiaryKind, Household, Outlet, OutletKind, Person, Programme
from canasta.domain.quantity import MAX_MILLI
from canasta.service import cards as card_service
from canasta.service import outlets as outlet_service
from canasta.service import programmes as programme_service
from canasta.service import registry as registry_service
from canasta.service.audit import run_audit
from canasta.service.bootstrap import open_database
from canasta.service.settings import Settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = "canasta_bench_redeem"
PG_RUN_DB = "canasta_bench_redeem_run"
HOUSEHOLDS = 20_000
OUTLETS = 16


@dataclass(frozen=True, slots=True)
class Run:
    database: str
    workers: int
    clients: int
    result: WrkResult


def build_world(url: str, data_file: Path) -> None:
    """20,000 households with a card each, entitled to far more than a run can take, and
    16 outlets; writes wrk's data file."""
    engine = open_database(Settings.load(url))
    born = date(1980, 1, 1)
    homes = [
        Household(
            f"B{n}", "Norte", "Alameda", f"Calle {n}", [Person(f"BR{n}", "Ana", "Pérez", "", "F", born)]
        )
        for n in range(HOUSEHOLDS)
    ]
    registry_service.import_households(engine, homes)
    programme_service.create_programme(
        engine, Programme("bench", "unit", BeneficiaryKind.HOUSEHOLD, 30, quota_fixed=MAX_MILLI)
    )
    programme_service.open_cycle(engine, "bench")
    issued = card_service.issue_missing_cards(engine)
    tokens = outlet_service.create_outlets(
        engine, [Outlet(f"o{n}", f"Outlet {n}", OutletKind.SHOP, "Norte") for n in range(OUTLETS)]
    )
    engine.dispose()
    write_wrk_data(data_file, "bench", sorted(tokens.items()), [c.card_id for c in issued])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(url: str, workers: int) -> Iterator[str]:
    port = _free_port()
    canasta = Path(sys.executable).with_name("canasta")
    server = subprocess.Popen(
        [str(canasta), "serve", "--db", url, "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(
                    f"canasta serve exited: {server.stderr.read().decode() if server.stderr else ''}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("canasta serve did not start within 60 s") from None
                time.sleep(0.2)
        time.sleep(0.5 * workers)  # let every worker finish starting
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@contextmanager
def fresh_copy(template: str) -> Iterator[str]:
    """A copy of the template database for one run, so every run starts from the same state
    (as the raw loop and pgbench do); on PostgreSQL after a checkpoint, so none starts
    during the run."""
    if template.startswith("sqlite:///"):
        source = Path(template.removeprefix("sqlite:///"))
        copy = source.with_name(f"run-{time.monotonic_ns()}.db")
        shutil.copy(source, copy)
        try:
            yield f"sqlite:///{copy}"
        finally:
            for leftover in copy.parent.glob(copy.name + "*"):
                leftover.unlink()
        return
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_RUN_DB}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{PG_RUN_DB}" TEMPLATE "{PG_BENCH_DB}"')
        admin.execute("CHECKPOINT")
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_RUN_DB}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_RUN_DB}" WITH (FORCE)')


def measure_canasta(
    name: str, template: str, data_file: Path, workers: list[int], clients: list[int], seconds: int
) -> list[Run]:
    """Each (workers, clients) pair on a fresh copy: serve, warm up, measure, then check that
    every acknowledged redemption is stored and that the ledger audits clean."""
    runs: list[Run] = []
    for w in workers:
        for c in clients:
            with fresh_copy(template) as url, serving(url, w) as base:
                run_wrk(base, data_file, 2, c, 1)  # warm-up: prepared statements, caches
                engine = make_engine(url)
                with engine.connect() as conn:
                    before = conn.scalar(sa.select(sa.func.count()).select_from(redemptions)) or 0
                result = run_wrk(base, data_file, seconds, c, 1)
                runs.append(Run(name, w, c, result))
                with engine.connect() as conn:
                    stored = conn.scalar(sa.select(sa.func.count()).select_from(redemptions)) or 0
                report = run_audit(engine)
                engine.dispose()
                acknowledged = result.statuses.get(201, 0)
                print(
                    f"  {name:10} workers={w} clients={c:3}  {result.rps:8,.0f}/s  "
                    f"p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  "
                    f"non-2xx {result.non_2xx}  stored {stored - before:,} >= acknowledged "
                    f"{acknowledged:,}: {stored - before >= acknowledged}  audit: "
                    f"{'passed' if report.ok else report.first}",
                    flush=True,
                )
                # wrk does not count answers still in flight when it stops, so a few more may
                # be stored than it saw acknowledged; never fewer.
                if stored - before < acknowledged or not report.ok:
                    raise SystemExit(f"{name}: an acknowledged redemption is missing or the audit failed")
    return runs


def best(runs: list[Run], database: str) -> Run:
    return max((r for r in runs if r.database == database), key=lambda r: r.result.rps)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    parser.add_argument("--clients", default="8,32,64", help="concurrent clients to try")
    parser.add_argument("--workers", default="1,2", help="canasta server processes to try")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="scratch directory (default: a temporary one on the disk of this checkout)",
    )
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    for tool in ("wrk",) + (() if args.no_postgres else ("pgbench",)):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install wrk postgresql-contrib)")
    scratch = Path(tempfile.mkdtemp(prefix="canasta-bench-", dir=args.dir or Path(__file__).resolve().parent))
    print(
        f"canasta redemption benchmark: {os.cpu_count()} cores, {args.seconds} s per run, "
        f"scratch in {scratch}"
    )
    try:
        print("Raw limits")
        ceiling = wrk_ceiling(seconds=args.seconds, connections=max(clients))
        print(f"  wrk against a trivial server: {ceiling.rps:,.0f}/s (the load generator's ceiling)")
        raw = sqlite_raw_loop(scratch, args.seconds)
        print(
            f"  sqlite3 loop, synchronous=FULL: {raw.tps:,.0f}/s  "
            f"p50 {raw.p50_ms:.2f} ms  p99 {raw.p99_ms:.2f} ms"
        )
        pg = None
        if not args.no_postgres:
            ensure_postgres()
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute("CHECKPOINT")
            pg = pgbench_best(clients=clients, seconds=args.seconds)
            for point in pg.points:
                print(
                    f"  pgbench -N, {point.clients} clients: {point.tps:,.0f}/s  "
                    f"p50 {point.p50_ms:.2f} ms  p99 {point.p99_ms:.2f} ms"
                )
        print("canasta over HTTP")
        sqlite_url = f"sqlite:///{scratch / 'template.db'}"
        build_world(sqlite_url, scratch / "sqlite.tsv")
        engine = make_engine(sqlite_url)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        runs = measure_canasta("SQLite", sqlite_url, scratch / "sqlite.tsv", workers, clients, args.seconds)
        if pg is not None:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{PG_BENCH_DB}"')
            pg_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_BENCH_DB}"
            build_world(pg_url, scratch / "pg.tsv")
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute("ANALYZE")
            runs += measure_canasta("PostgreSQL", pg_url, scratch / "pg.tsv", workers, clients, args.seconds)
        print("Result (best of each; target: at least 1.0x the raw limit, p99 at most 50 ms)")
        top = best(runs, "SQLite")
        print(
            f"  SQLite:     {top.result.rps:,.0f}/s ({top.workers} worker(s), {top.clients} clients) = "
            f"{top.result.rps / raw.tps:.2f}x the sqlite3 loop; "
            f"p50 {top.result.p50_ms:.1f} ms, p99 {top.result.p99_ms:.1f} ms"
        )
        if pg is not None:
            top = best(runs, "PostgreSQL")
            print(
                f"  PostgreSQL: {top.result.rps:,.0f}/s ({top.workers} worker(s), {top.clients} clients) = "
                f"{top.result.rps / pg.best.tps:.2f}x the best pgbench -N ({pg.best.tps:,.0f}/s at "
                f"{pg.best.clients} clients); p50 {top.result.p50_ms:.1f} ms, p99 {top.result.p99_ms:.1f} ms"
            )
        print(
            f"  wrk's own ceiling was {ceiling.rps / max(r.result.rps for r in runs):.1f}x "
            "the fastest canasta run."
        )
    finally:
        if not args.no_postgres:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)')
                admin.execute(f'DROP DATABASE IF EXISTS "{PG_RUN_DB}" WITH (FORCE)')
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
