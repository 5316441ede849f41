"""Raw baselines for the redemption benchmark, measured in the same run as canasta itself.

- ``pgbench_best``: PostgreSQL's own ceiling for small write transactions (``pgbench -N``) on a scratch
  database, at several client counts.
- ``sqlite_raw_loop``: a bare ``sqlite3`` loop doing one durable redemption per transaction (WAL,
  ``synchronous=FULL``), i.e. the SQLite work a redemption cannot avoid.
- ``fsync_probe``: the disk's 8 kB write + ``fdatasync`` latency, which bounds both of the above.
- ``run_wrk`` / ``wrk_ceiling``: drive an HTTP endpoint with ``redeem.lua``, and measure wrk itself against
  ``_echo_server.py`` to show that the load generator is not the bottleneck.

Every loop is bounded in time, and every HTTP target must be on the loopback interface.
``python bench/baselines.py --seconds 10`` runs them all and prints one JSON document.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
REDEEM_LUA = BENCH_DIR / "redeem.lua"
ECHO_SERVER = BENCH_DIR / "_echo_server.py"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100] of values already sorted in ascending order."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    return sorted_values[max(1, math.ceil(q / 100 * len(sorted_values))) - 1]


# --- PostgreSQL: pgbench -N -------------------------------------------------------------------------


@dataclass(frozen=True)
class PgbenchPoint:
    clients: int
    threads: int
    tps: float  # excluding initial connection time
    latency_avg_ms: float
    p50_ms: float  # from the per-transaction logs (-l)
    p99_ms: float
    transactions: int
    failed: int


@dataclass(frozen=True)
class PgbenchResult:
    scale: int
    seconds: int
    points: tuple[PgbenchPoint, ...]

    @property
    def best(self) -> PgbenchPoint:
        return max(self.points, key=lambda point: point.tps)


def ensure_postgres(host: str = "127.0.0.1", port: int = 5432, wait_s: float = 30.0) -> None:
    """Start the local cluster with pg_ctlcluster if it does not answer, and wait for it."""

    def ready() -> bool:
        return subprocess.run(["pg_isready", "-q", "-h", host, "-p", str(port)], check=False).returncode == 0

    if ready():
        return
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    raise RuntimeError(f"PostgreSQL does not answer on {host}:{port}")


def _parse_pgbench(output: str) -> tuple[float, float, int, int]:
    def number(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, output, re.MULTILINE)
        if match:
            return match.group(1)
        if default is None:
            raise RuntimeError(f"pgbench output lacks {pattern!r}:\n{output}")
        return default

    return (
        float(number(r"^tps = ([\d.]+) \(without initial connection time\)")),
        float(number(r"^latency average = ([\d.]+) ms")),
        int(number(r"^number of transactions actually processed: (\d+)")),
        int(number(r"^number of failed transactions: (\d+)", "0")),
    )


def _logged_latencies_ms(log_dir: Path) -> list[float]:
    """Latencies of the committed transactions in pgbench's -l logs (third field, in microseconds)."""
    latencies = []
    for log in log_dir.glob("pgbench_log*"):
        with log.open() as lines:
            for line in lines:
                fields = line.split()
                if len(fields) > 2 and fields[2].isdigit():
                    latencies.append(int(fields[2]) / 1000)
    latencies.sort()
    return latencies


def pgbench_best(
    *,
    host: str = "127.0.0.1",
    port: int = 5432,
    user: str = "postgres",
    dbname: str = "canasta_bench_pgbench",
    clients: Iterable[int] = (8, 32, 64),
    seconds: int = 10,
    scale: int = 10,
    threads: int = 2,
    keep_database: bool = False,
) -> PgbenchResult:
    """Run ``pgbench -N`` for ``seconds`` at each client count on a freshly initialised scratch database.

    The database ``dbname`` is dropped and created anew, initialised at ``scale`` (100,000 accounts per
    unit), and dropped again afterwards unless ``keep_database``. ``threads`` is pgbench's ``-j`` (capped at
    the client count).
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", dbname) or dbname in {"postgres", "template0", "template1"}:
        raise ValueError(f"refusing to use {dbname!r} as the scratch database")
    ensure_postgres(host, port)
    conn = ["-h", host, "-p", str(port), "-U", user]

    def admin(sql: str) -> None:
        subprocess.run(
            ["psql", *conn, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
            check=True,
            capture_output=True,
            timeout=120,
        )

    admin(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    admin(f"CREATE DATABASE {dbname}")
    try:
        subprocess.run(
            ["pgbench", *conn, "-i", "-q", "-s", str(scale), dbname],
            check=True,
            capture_output=True,
            timeout=600,
        )
        points = []
        for count in clients:
            jobs = min(threads, count)
            with tempfile.TemporaryDirectory(prefix="canasta-pgbench-") as log_dir:
                run = subprocess.run(
                    [
                        "pgbench",
                        *conn,
                        "-N",
                        "-c",
                        str(count),
                        "-j",
                        str(jobs),
                        "-T",
                        str(seconds),
                        "-l",
                        f"--log-prefix={log_dir}/pgbench_log",
                        dbname,
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=seconds + 120,
                )
                latencies = _logged_latencies_ms(Path(log_dir))
            tps, latency_avg, transactions, failed = _parse_pgbench(run.stdout)
            points.append(
                PgbenchPoint(
                    clients=count,
                    threads=jobs,
                    tps=tps,
                    latency_avg_ms=latency_avg,
                    p50_ms=percentile(latencies, 50),
                    p99_ms=percentile(latencies, 99),
                    transactions=transactions,
                    failed=failed,
                )
            )
    finally:
        if not keep_database:
            admin(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    return PgbenchResult(scale=scale, seconds=seconds, points=tuple(points))


# --- SQLite and the disk -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawResult:
    transactions: int  # committed
    rejected: int  # rolled back because the entitlement had no quantity left
    seconds: float
    tps: float
    p50_ms: float  # per transaction, BEGIN to COMMIT (rejected ones included)
    p99_ms: float
    max_ms: float


def _summarise(committed: int, rejected: int, elapsed: float, latencies_ns: list[int]) -> RawResult:
    latencies = sorted(ns / 1e6 for ns in latencies_ns)
    return RawResult(
        transactions=committed,
        rejected=rejected,
        seconds=elapsed,
        tps=committed / elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1],
    )


SQLITE_SCHEMA = """
CREATE TABLE entitlements (id INTEGER PRIMARY KEY, quantity INTEGER NOT NULL, redeemed INTEGER NOT NULL);
CREATE TABLE redemptions (
    id INTEGER PRIMARY KEY,
    entitlement_id INTEGER NOT NULL REFERENCES entitlements (id),
    card_id TEXT NOT NULL,
    programme_id INTEGER NOT NULL,
    outlet_id INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (outlet_id, idempotency_key)
);
"""


def sqlite_raw_loop(
    directory: str | Path,
    seconds: float,
    *,
    rows: int = 10_000,
    quantity: int = 1_000_000,
    outlets: int = 50,
    programmes: int = 5,
    seed: int | None = None,
) -> RawResult:
    """Redeem one unit of a random entitlement per durable transaction, for ``seconds``.

    Each iteration is ``BEGIN IMMEDIATE``; a guarded ``UPDATE entitlements``; ``INSERT INTO redemptions``;
    ``COMMIT`` (``ROLLBACK`` if the guard fails), on a fresh ``raw_loop.sqlite3`` in ``directory`` (WAL,
    ``synchronous=FULL``; put it on the real disk, not tmpfs). The database files are removed afterwards.
    """
    path = Path(directory) / "raw_loop.sqlite3"
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    for file in files:
        file.unlink(missing_ok=True)
    rng = random.Random(seed)
    nonce = os.urandom(6).hex()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SQLITE_SCHEMA)
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO entitlements (id, quantity, redeemed) VALUES (?, ?, 0)",
            ((i, quantity) for i in range(1, rows + 1)),
        )
        db.execute("COMMIT")
        committed = rejected = 0
        latencies_ns: list[int] = []
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            entitlement = rng.randint(1, rows)
            outlet = rng.randint(1, outlets)
            t0 = time.perf_counter_ns()
            db.execute("BEGIN IMMEDIATE")
            updated = db.execute(
                "UPDATE entitlements SET redeemed = redeemed + ? WHERE id = ? AND redeemed + ? <= quantity",
                (1, entitlement, 1),
            ).rowcount
            if updated:
                db.execute(
                    "INSERT INTO redemptions (entitlement_id, card_id, programme_id, outlet_id, quantity,"
                    " idempotency_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        entitlement,
                        f"card-{entitlement:06d}",
                        entitlement % programmes + 1,
                        outlet,
                        1,
                        f"{nonce}-{committed + rejected}",
                        datetime.now(UTC).isoformat(),
                    ),
                )
                db.execute("COMMIT")
                committed += 1
            else:
                db.execute("ROLLBACK")
                rejected += 1
            latencies_ns.append(time.perf_counter_ns() - t0)
        elapsed = time.perf_counter() - start
    finally:
        db.close()
        for file in files:
            file.unlink(missing_ok=True)
    return _summarise(committed, rejected, elapsed, latencies_ns)


def fsync_probe(directory: str | Path, seconds: float = 2.0) -> RawResult:
    """Rewrite one 8 kB block and ``fdatasync`` it in a loop for ``seconds`` in ``directory``.

    A "transaction" here is one write + fdatasync, as in pg_test_fsync's fdatasync line.
    """
    path = Path(directory) / "fsync_probe.tmp"
    block = os.urandom(8192)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, block)
        os.fsync(fd)
        latencies_ns: list[int] = []
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            t0 = time.perf_counter_ns()
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            latencies_ns.append(time.perf_counter_ns() - t0)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        path.unlink()
    return _summarise(len(latencies_ns), 0, elapsed, latencies_ns)


# --- HTTP: wrk with redeem.lua ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    non_2xx: int
    statuses: Mapping[int, int]
    socket_errors: Mapping[str, int]  # connect, read, write, timeout
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def write_wrk_data(
    path: str | Path, programme: str, outlets: Iterable[tuple[str, str]], cards: Iterable[str]
) -> Path:
    """Write the data file redeem.lua reads: the programme name, (outlet id, bearer token) pairs, card ids."""
    outlets, cards = list(outlets), list(cards)
    values = [programme, *(value for pair in outlets for value in pair), *cards]
    if not all(values) or any(char in value for value in values for char in "\t\r\n"):
        raise ValueError("values in the wrk data file must be non-empty, without tabs or newlines")
    lines = [f"programme\t{programme}"]
    lines += [f"outlet\t{outlet}\t{token}" for outlet, token in outlets]
    lines += [f"card\t{card}" for card in cards]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"load tests only target the loopback interface, not {host!r}")


def run_wrk(
    url: str,
    data_file: str | Path,
    seconds: int,
    connections: int,
    threads: int,
    *,
    timeout_s: int = 10,
    script: str | Path = REDEEM_LUA,
) -> WrkResult:
    """Run ``wrk --latency`` with redeem.lua against ``url`` (scheme, host and port; the path is fixed)."""
    _require_loopback(url)
    run = subprocess.run(
        [
            "wrk",
            "--latency",
            f"--threads={threads}",
            f"--connections={connections}",
            f"--duration={seconds}s",
            f"--timeout={timeout_s}s",
            f"--script={script}",
            url,
            "--",
            str(data_file),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + timeout_s + 60,
        check=False,
    )
    line = next((line for line in run.stdout.splitlines() if line.startswith("RESULT ")), None)
    if run.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    result = json.loads(line.removeprefix("RESULT "))
    latency = result["latency_us"]
    return WrkResult(
        requests=int(result["requests"]),
        duration_s=float(result["duration_s"]),
        rps=float(result["rps"]),
        non_2xx=int(result["non_2xx"]),
        statuses={int(status): int(count) for status, count in result["status"].items()},
        socket_errors={str(kind): int(count) for kind, count in result["socket_errors"].items()},
        mean_ms=latency["mean"] / 1000,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
    )


def wrk_ceiling(seconds: int = 10, connections: int = 64, threads: int = 1, cards: int = 10_000) -> WrkResult:
    """Run redeem.lua against _echo_server.py (one asyncio process on 127.0.0.1) to bound wrk's own cost.

    The server checks every request and answers 201, so ``non_2xx`` must come back 0.
    """
    server = subprocess.Popen(
        [sys.executable, str(ECHO_SERVER), "--port", "0", "--max-seconds", str(seconds + 120)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with tempfile.TemporaryDirectory(prefix="canasta-wrk-") as tmp:
            data = write_wrk_data(
                Path(tmp) / "redeem.tsv",
                "Canasta básica",
                ((f"outlet-{i}", f"token-{i}") for i in range(8)),
                (f"card-{i:06d}" for i in range(cards)),
            )
            return run_wrk(f"http://127.0.0.1:{port}", data, seconds, connections, threads)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the raw baselines once and print them as JSON.")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each measurement")
    parser.add_argument("--scale", type=int, default=10, help="pgbench scale factor")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="directory on the disk under test")
    args = parser.parse_args()
    report: dict[str, object] = {"fsync": asdict(fsync_probe(args.dir))}
    pg = pgbench_best(seconds=args.seconds, scale=args.scale)
    report["pgbench"] = {"points": [asdict(point) for point in pg.points], "best": asdict(pg.best)}
    report["sqlite"] = asdict(sqlite_raw_loop(args.dir, args.seconds))
    report["wrk_ceiling"] = asdict(wrk_ceiling(args.seconds))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def canasta_server(url: str, workers: int = 1, env: Mapping[str, str] | None = None) -> Iterator[str]:
    """``canasta serve --db url`` in a process group of its own, with ``env`` (this process's
    environment when None); yields its base URL once it answers, and stops it on exit."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "canasta",
            "serve",
            "--db",
            url,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=None if env is None else dict(env),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                said = server.stderr.read().decode() if server.stderr else ""
                raise RuntimeError(f"canasta serve exited: {said}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("canasta serve did not start within 60 s") from None
                time.sleep(0.2)
        if workers > 1:
            time.sleep(0.5 * workers)  # let every worker finish starting
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
