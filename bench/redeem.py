"""Durable redemptions per second over HTTP, against the raw limits, measured in one run.

    python bench/redeem.py [--seconds 10] [--clients 8,32,64] [--workers 1,2] [--no-postgres]
                           [--baseline REF] [--dir DIR]

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

``--baseline REF`` also measures the code at git commit REF (say ``17be62a``, the commit
before the transparency log) side by side with the code of this checkout: REF is checked out
with ``git worktree add --detach`` into a temporary directory (removed at the end; this work
tree is not touched), and its servers, its template databases (built by its own code, at its
own schema) and its post-run checks run with ``PYTHONPATH`` set to that checkout's ``src``.
Each (database, workers, clients) point runs both codes back to back, in alternating order,
on fresh copies of their templates with the same wrk load and durations; each run checks
that its server answers ``/log/v1/key`` (and lists ``log_receipt`` in ``/openapi.json``) if
and only if its code has the transparency log, and the result gives current / baseline for
the best figure of each and at each point.

Every canasta process (world builds, servers and their workers, audits) is started as
``python -m canasta`` or as this script with the ``PYTHONPATH`` of the code it runs, and
with ``CANASTA_KEYS`` pointing at a scratch directory, so no signing key lands in the
checkout. ``--dir DIR`` puts the scratch directory (databases, keys) in DIR instead of
beside this script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg

from baselines import (
    WrkResult,
    canasta_server,
    ensure_postgres,
    pgbench_best,
    run_wrk,
    sqlite_raw_loop,
    write_wrk_data,
    wrk_ceiling,
)

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = "canasta_bench_redeem"
PG_BASELINE_DB = "canasta_bench_redeem_baseline"
PG_RUN_DB = "canasta_bench_redeem_run"
HOUSEHOLDS = 20_000
OUTLETS = 16
CHECKOUT = Path(__file__).resolve().parents[1]
CURRENT = "current"


@dataclass(frozen=True, slots=True)
class Code:
    """One version of canasta under test: its ``src`` directory, whether it has the
    transparency log, and the environment every process running it gets."""

    label: str
    src: Path
    has_log: bool
    env: dict[str, str]


@dataclass(frozen=True, slots=True)
class Run:
    code: str
    database: str
    workers: int
    clients: int
    result: WrkResult


def build_world(url: str, data_file: Path) -> None:
    """20,000 households with a card each, entitled to far more than a run can take, and
    16 outlets; writes wrk's data file.

    Runs in a process of its own (``--build-world``) with the ``PYTHONPATH`` of the code
    being measured, so canasta is imported here, from whichever checkout that is."""
    from canasta.domain.model import BeneficiaryKind, Household, Outlet, OutletKind, Person, Programme
    from canasta.domain.quantity import MAX_MILLI
    from canasta.service import cards as card_service
    from canasta.service import outlets as outlet_service
    from canasta.service import programmes as programme_service
    from canasta.service import registry as registry_service
    from canasta.service.bootstrap import open_database
    from canasta.service.settings import Settings

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


def code_at(label: str, src: Path, keys: Path) -> Code:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["CANASTA_KEYS"] = str(keys)
    env.pop("CANASTA_DATABASE_URL", None)
    code = Code(label, src, (src / "canasta" / "entrypoints" / "api" / "log.py").is_file(), env)
    probe = subprocess.run(
        [sys.executable, "-c", "import canasta.entrypoints.api.app as m; print(m.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    imported = Path(probe.stdout.strip())
    if not imported.is_relative_to(src):
        raise SystemExit(f"{label}: canasta is imported from {imported}, not from {src}")
    print(
        f"  {label:10} code: {src} (canasta imported from there; "
        f"{'with' if code.has_log else 'without'} the transparency log)"
    )
    return code


@contextmanager
def baseline_checkout(ref: str) -> Iterator[tuple[str, Path]]:
    """``ref`` checked out with ``git worktree add --detach`` in a temporary directory outside
    this work tree (so nothing scanning the checkout sees a second copy of the sources);
    yields its short commit and its ``src``."""
    git = ["git", "-C", str(CHECKOUT)]
    found = subprocess.run(
        [*git, "rev-parse", "--verify", "--quiet", "--short", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode != 0:
        raise SystemExit(f"--baseline {ref}: not a commit of {CHECKOUT}")
    commit = found.stdout.strip()
    parent = Path(tempfile.mkdtemp(prefix="canasta-bench-baseline-"))
    tree = parent / "baseline"
    try:
        subprocess.run(
            [*git, "worktree", "add", "--detach", str(tree), commit], check=True, capture_output=True
        )
        yield commit, tree / "src"
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False, capture_output=True)
        subprocess.run([*git, "worktree", "prune"], check=False, capture_output=True)
        shutil.rmtree(parent, ignore_errors=True)


def build_template(code: Code, url: str, data_file: Path) -> None:
    """The template database built by ``code`` (in a process of its own), then settled: the
    SQLite WAL folded into the file, PostgreSQL's statistics gathered."""
    if url.startswith("postgresql://"):
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    started = time.monotonic()
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--build-world", url, str(data_file)],
        env=code.env,
        check=True,
    )
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
    print(f"  {code.label:10} template built in {time.monotonic() - started:.0f} s", flush=True)


def count_redemptions(url: str) -> int:
    """Stored redemptions, read with the database's own driver (the same for every code)."""
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as lite:
            return int(lite.execute("SELECT count(*) FROM redemptions").fetchone()[0])
    with psycopg.connect(url) as pg:
        row = pg.execute("SELECT count(*) FROM redemptions").fetchone()
        return int(row[0]) if row else 0


def audit(code: Code, url: str) -> str | None:
    """``canasta audit`` run by ``code``: None if it passed, else what it said."""
    run = subprocess.run(
        [sys.executable, "-m", "canasta", "audit", "--db", url],
        env=code.env,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode == 0:
        return None
    said = (run.stderr.strip() or run.stdout.strip()).splitlines()
    return said[0] if said else f"exit status {run.returncode}"


def serves_log(base: str) -> bool:
    """Whether the server at ``base`` has the transparency log: ``/log/v1/key`` answered on
    eight connections of their own (so every worker is likely asked) and ``log_receipt`` in
    ``/openapi.json``, which must all agree."""
    statuses: set[int] = set()
    for _ in range(8):
        try:
            with urllib.request.urlopen(f"{base}/log/v1/key", timeout=10) as answer:  # noqa: S310
                statuses.add(answer.status)
        except urllib.error.HTTPError as refused:
            statuses.add(refused.code)
    with urllib.request.urlopen(f"{base}/openapi.json", timeout=10) as answer:  # noqa: S310
        listed = b"log_receipt" in answer.read()
    if statuses == {200} and listed:
        return True
    if statuses == {404} and not listed:
        return False
    raise SystemExit(f"{base}: /log/v1/key answered {sorted(statuses)}, log_receipt listed: {listed}")


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
    name = template.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_RUN_DB}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{PG_RUN_DB}" TEMPLATE "{name}"')
        admin.execute("CHECKPOINT")
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_RUN_DB}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_RUN_DB}" WITH (FORCE)')


def measure_once(
    code: Code, name: str, template: str, data_file: Path, workers: int, clients: int, seconds: int
) -> Run:
    """One (workers, clients) point of one code on a fresh copy: serve, check which code is
    serving, warm up, measure, then check that every acknowledged redemption is stored and
    that the ledger audits clean (with that code's ``canasta audit``)."""
    with fresh_copy(template) as url, canasta_server(url, workers, code.env) as base:
        has_log = serves_log(base)
        if has_log != code.has_log:
            raise SystemExit(f"{code.label}: the server is not running the code of {code.src}")
        run_wrk(base, data_file, 2, clients, 1)  # warm-up: prepared statements, caches
        before = count_redemptions(url)
        result = run_wrk(base, data_file, seconds, clients, 1)
        stored = count_redemptions(url) - before
        problem = audit(code, url)
    acknowledged = result.statuses.get(201, 0)
    print(
        f"  {name:10} {code.label:8} workers={workers} clients={clients:3}  {result.rps:8,.0f}/s  "
        f"p50 {result.p50_ms:6.1f} ms  p99 {result.p99_ms:6.1f} ms  non-2xx {result.non_2xx}  "
        f"log {'yes' if has_log else 'no '}  stored {stored:,} >= acknowledged {acknowledged:,}: "
        f"{stored >= acknowledged}  audit: {problem or 'passed'}",
        flush=True,
    )
    # wrk does not count answers still in flight when it stops, so a few more may be stored
    # than it saw acknowledged; never fewer.
    if stored < acknowledged or problem is not None:
        raise SystemExit(f"{name} {code.label}: an acknowledged redemption is missing or the audit failed")
    return Run(code.label, name, workers, clients, result)


def measure_canasta(
    name: str,
    templates: list[tuple[Code, str, Path]],
    workers: list[int],
    clients: list[int],
    seconds: int,
) -> list[Run]:
    """Each (workers, clients) point for every code in ``templates`` (code, template URL, wrk
    data file), the codes back to back at each point and in alternating order from one
    point to the next, so that neither always runs first (or right after the other)."""
    runs: list[Run] = []
    turn = 0
    for w in workers:
        for c in clients:
            order = templates if turn % 2 == 0 else templates[::-1]
            turn += 1
            for code, template, data_file in order:
                runs.append(measure_once(code, name, template, data_file, w, c, seconds))
    return runs


def best(runs: list[Run], database: str, code: str = CURRENT) -> Run:
    return max((r for r in runs if r.database == database and r.code == code), key=lambda r: r.result.rps)


def _describe(top: Run, limit: str) -> str:
    return (
        f"{top.result.rps:,.0f}/s ({top.workers} worker(s), {top.clients} clients) = {limit}; "
        f"p50 {top.result.p50_ms:.1f} ms, p99 {top.result.p99_ms:.1f} ms"
    )


def _label(code: Code, labelled: bool) -> str:
    return f"{code.label:8} " if labelled else ""


def print_comparison(runs: list[Run], database: str, baseline: str) -> None:
    """Current against baseline: the best of each, and each point on its own."""
    now, then = best(runs, database), best(runs, database, baseline)
    points = {(r.workers, r.clients): r for r in runs if r.database == database and r.code == baseline}
    each = ", ".join(
        f"{r.workers}w/{r.clients}c {r.result.rps / points[r.workers, r.clients].result.rps:.2f}x"
        for r in runs
        if r.database == database and r.code == CURRENT and (r.workers, r.clients) in points
    )
    print(
        f"  {'':12}current / {baseline} = {now.result.rps / then.result.rps:.2f}x best to best "
        f"(p50 {now.result.p50_ms:.1f} vs {then.result.p50_ms:.1f} ms, "
        f"p99 {now.result.p99_ms:.1f} vs {then.result.p99_ms:.1f} ms); at each point: {each}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    parser.add_argument("--clients", default="8,32,64", help="concurrent clients to try")
    parser.add_argument("--workers", default="1,2", help="canasta server processes to try")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--baseline",
        metavar="REF",
        default=None,
        help="also measure the code at git commit REF, side by side (e.g. 17be62a)",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="scratch directory (default: a temporary one on the disk of this checkout)",
    )
    # Internal: build one template database with the canasta on PYTHONPATH, then exit.
    parser.add_argument("--build-world", nargs=2, metavar=("URL", "DATAFILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_world:
        build_world(args.build_world[0], Path(args.build_world[1]))
        return
    clients = [int(c) for c in args.clients.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    for tool in ("wrk", "git") + (() if args.no_postgres else ("pgbench",)):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (Debian: apt-get install wrk postgresql-contrib)")
    scratch = Path(tempfile.mkdtemp(prefix="canasta-bench-", dir=args.dir or Path(__file__).resolve().parent))
    print(
        f"canasta redemption benchmark: {os.cpu_count()} cores, {args.seconds} s per run, "
        f"scratch in {scratch}"
    )
    pg_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_BENCH_DB}"
    pg_baseline_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_BASELINE_DB}"
    try:
        with ExitStack() as stack:
            checkout = stack.enter_context(baseline_checkout(args.baseline)) if args.baseline else None
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
            keys = scratch / "keys"
            current = code_at(CURRENT, CHECKOUT / "src", keys)
            codes = [current]
            if checkout is not None:
                commit, src = checkout
                codes.insert(0, code_at(commit, src, keys))
            sqlite_templates = []
            for code in codes:
                tag = "current" if code is current else "baseline"
                url, data = f"sqlite:///{scratch / f'template-{tag}.db'}", scratch / f"sqlite-{tag}.tsv"
                build_template(code, url, data)
                sqlite_templates.append((code, url, data))
            runs = measure_canasta("SQLite", sqlite_templates, workers, clients, args.seconds)
            if pg is not None:
                pg_templates = []
                for code in codes:
                    tag = "current" if code is current else "baseline"
                    url = pg_url if code is current else pg_baseline_url
                    build_template(code, url, scratch / f"pg-{tag}.tsv")
                    pg_templates.append((code, url, scratch / f"pg-{tag}.tsv"))
                runs += measure_canasta("PostgreSQL", pg_templates, workers, clients, args.seconds)
            print("Result (best of each; target: at least 1.0x the raw limit, p99 at most 50 ms)")
            labelled = checkout is not None
            for code in codes[::-1]:
                top = best(runs, "SQLite", code.label)
                limit = f"{top.result.rps / raw.tps:.2f}x the sqlite3 loop"
                print(f"  SQLite:     {_label(code, labelled)}{_describe(top, limit)}")
            if labelled:
                print_comparison(runs, "SQLite", codes[0].label)
            if pg is not None:
                for code in codes[::-1]:
                    top = best(runs, "PostgreSQL", code.label)
                    limit = (
                        f"{top.result.rps / pg.best.tps:.2f}x the best pgbench -N ({pg.best.tps:,.0f}/s at "
                        f"{pg.best.clients} clients)"
                    )
                    print(f"  PostgreSQL: {_label(code, labelled)}{_describe(top, limit)}")
                if labelled:
                    print_comparison(runs, "PostgreSQL", codes[0].label)
            print(
                f"  wrk's own ceiling was {ceiling.rps / max(r.result.rps for r in runs):.1f}x "
                "the fastest canasta run."
            )
    finally:
        if not args.no_postgres:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                for name in (PG_BENCH_DB, PG_BASELINE_DB, PG_RUN_DB):
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
