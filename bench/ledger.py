"""The transparency log's throughput, against the raw limits, measured in one run.

    python bench/ledger.py [--entries 1000000] [--append-entries 100000] [--no-postgres] [--dir DIR]

It measures, one after the other on the same machine:

1. appends per second: ``ledger_repo.append`` in batches of 1,000 and of 100 entries per
   transaction, each batch signing a checkpoint, on a fresh SQLite file (WAL,
   ``synchronous=FULL``) and a fresh PostgreSQL database (``synchronous_commit=on``); side
   by side, the raw limit: the same rows (same columns minus the log's salt and
   commitment) inserted with the database's own driver into a plain table, one transaction
   per batch of the same size, same durability: ``executemany`` of one INSERT, and on
   PostgreSQL also ``COPY``. Also the CPU cost per entry, no database: making the chained
   entry, and ``seal`` (salts, commitments, frontier, signed checkpoint);
2. inclusion proofs generated per second: at append time (``Sealed.receipt`` for every
   entry of a batch), and from storage (``LogView.inclusion`` for random leaves of the big
   log at its latest size, on a fresh view and again on the same view); and verified per
   second (``verify_inclusion``);
3. the time to verify the big log (``--entries``, a million by default) from scratch:
   ``verify_log`` over a copy of the database (``DatabaseLog``) and over HTTP against
   ``canasta serve`` on the same database (``HttpLog``: ``/log/v1/leaves``, and again from
   tlog-tiles entry bundles only, on loopback); side
   by side, the hashing floor: SHA-256 of every leaf and the frontier built in a tight loop
   over commitments already in memory. The big log is built once, by ``append`` in batches
   of 10,000 on SQLite, and its build time is reported.

Appends run on entries like redemptions (``{"card": 16 characters, "programme": "fuel",
"cycle": 1, "quantity": 12500, "outlet": "fs-0042"}``, kind ``redemption``). Each timed
append run starts with one untimed batch (connections, prepared statements), and the raw
and canasta runs alternate which goes first. Targets (the transparency-log issue): at least
20,000 appends per second, at least 20,000 proofs generated per second, a log of a million
entries verified in at most 10 seconds. Nothing is asserted: the figures are printed side
by side with their ratios.

The scratch directory (databases, the key directory ``CANASTA_KEYS`` for this process and
the server) is beside this script unless ``--dir`` says otherwise; it and the PostgreSQL
database ``canasta_bench_ledger`` are removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from baselines import canasta_server, ensure_postgres
from canasta.adapters import ledger_repo, migrate
from canasta.adapters.db import make_engine, transaction
from canasta.adapters.ledger_repo import encode_body
from canasta.adapters.tables import log_checkpoints
from canasta.domain.ledger import GENESIS_HASH, LedgerEntry
from canasta.domain.merkle import Frontier, leaf_hash, verify_inclusion
from canasta.domain.receipt import verify_receipt
from canasta.domain.signed_note import Checkpoint, Signer, Verifier, open_note
from canasta.domain.transparency import seal, sign_checkpoint
from canasta.service.bootstrap import open_database
from canasta.service.clock import utc_now_iso
from canasta.service.keys import ENV_KEYS, fixed_keyring, key_directory, load_keyring
from canasta.service.settings import Settings
from canasta.service.transparency import LogView, bind_keys
from canasta.service.verifier import DatabaseLog, HttpLog, verify_log

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH_DB = "canasta_bench_ledger"
KIND = "redemption"
BATCHES = (1_000, 100)
BUILD_BATCH = 10_000
PROOF_LEAVES = 20_000
RECEIPT_BATCHES = 10
MILLION = 1_000_000
TARGET_APPENDS = 20_000.0
TARGET_PROOFS = 20_000.0
TARGET_VERIFY_S = 10.0
CARD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
RAW = "raw"
RAW_COPY = "raw COPY"
CANASTA = "canasta"
RAW_TABLE = (
    "CREATE TABLE raw_entries (seq BIGINT PRIMARY KEY, kind VARCHAR(32) NOT NULL, "
    "recorded_at VARCHAR(32) NOT NULL, body TEXT NOT NULL, prev_hash VARCHAR(64) NOT NULL, "
    "entry_hash VARCHAR(64) NOT NULL)"
)
RAW_INSERT = (
    "INSERT INTO raw_entries (seq, kind, recorded_at, body, prev_hash, entry_hash) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
RawRow = tuple[int, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class AppendRun:
    """One timed append run: ``entries`` in batches of ``batch``, one transaction each."""

    database: str
    how: str
    batch: int
    entries: int
    seconds: float
    #: Each batch's wall time, from BEGIN to COMMIT returned (= the gap between checkpoints).
    batch_seconds: list[float]
    checkpoints: int

    @property
    def rate(self) -> float:
        return self.entries / self.seconds

    def describe(self) -> str:
        gaps = sorted(self.batch_seconds)
        text = (
            f"{self.rate:10,.0f} entries/s  ({self.entries:,} in {self.seconds:.2f} s; per batch "
            f"p50 {1000 * statistics.median(gaps):.1f} ms, max {1000 * gaps[-1]:.1f} ms"
        )
        if self.checkpoints:
            text += (
                f"; {self.checkpoints:,} checkpoints signed = {self.checkpoints / self.seconds:,.1f}/s, "
                f"longest gap {1000 * gaps[-1]:.0f} ms"
            )
        return text + ")"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the final table."""

    what: str
    measured: str
    target: str
    ratio: str
    note: str = ""


def redemption_bodies(count: int, rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "card": "".join(rng.choices(CARD_ALPHABET, k=16)),
            "programme": "fuel",
            "cycle": 1,
            "quantity": 12500,
            "outlet": "fs-0042",
        }
        for _ in range(count)
    ]


def chain(
    bodies: Sequence[Mapping[str, Any]], recorded_at: str, first_seq: int = 1
) -> tuple[list[LedgerEntry], list[bytes]]:
    """The chained entries for ``bodies`` and their canonical encodings, as ``append`` makes
    them."""
    entries, encodings, prev = [], [], GENESIS_HASH
    for seq, body in enumerate(bodies, first_seq):
        entry, encoded = LedgerEntry.create_encoded(seq, KIND, recorded_at, body, prev)
        prev = entry.entry_hash
        entries.append(entry)
        encodings.append(encoded)
    return entries, encodings


def batches(count: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, count, size):
        yield start, min(count, start + size)


# ---------------------------------------------------------------------- CPU only


@dataclass(frozen=True, slots=True)
class CpuCosts:
    entry_us: float
    seal_us: dict[int, float]
    sign_us: float
    verify_note_us: float


def cpu_costs(bodies: Sequence[Mapping[str, Any]], signer: Signer, verifier: Verifier) -> CpuCosts:
    """Per entry: making the chained entry and its canonical encoding, then ``seal`` at each
    batch size (salts, commitments, frontier, its signed checkpoint), as ``append`` does;
    per checkpoint: signing it, and opening and parsing its signed note as a verifier does."""
    at = utc_now_iso()
    started = time.perf_counter()
    entries, encodings = chain(bodies, at)
    entry_us = 1e6 * (time.perf_counter() - started) / len(entries)
    seal_us = {}
    for size in BATCHES:
        frontier, prev = Frontier(), "0" * 64
        started = time.perf_counter()
        for start, end in batches(len(entries), size):
            sealed = seal(entries[start:end], frontier, signer, at, prev, encodings=encodings[start:end])
            frontier = sealed.frontier
        seal_us[size] = 1e6 * (time.perf_counter() - started) / len(entries)
    root = hashlib.sha256(b"root").digest()
    notes = []
    started = time.perf_counter()
    for size in range(1, 501):
        notes.append(sign_checkpoint(signer, size, root, at, prev))
    sign_us = 1e6 * (time.perf_counter() - started) / len(notes)
    started = time.perf_counter()
    for note in notes:
        Checkpoint.parse(open_note(note, [verifier]))
    verify_note_us = 1e6 * (time.perf_counter() - started) / len(notes)
    return CpuCosts(entry_us, seal_us, sign_us, verify_note_us)


# ---------------------------------------------------------------------- databases


def pg_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_pg(name: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(database: str, scratch: Path, tag: str) -> Iterator[str]:
    """A new, empty database at canasta's schema, removed afterwards."""
    if database == "SQLite":
        path = scratch / f"{tag}.db"
        url = f"sqlite:///{path}"
    else:
        drop_pg(PG_BENCH_DB)
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{PG_BENCH_DB}"')
        url = pg_url(PG_BENCH_DB)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    if database == "PostgreSQL":
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute("CHECKPOINT")  # so none starts during a timed run
    try:
        yield url
    finally:
        if database == "SQLite":
            for leftover in scratch.glob(f"{tag}.db*"):
                leftover.unlink()
        else:
            drop_pg(PG_BENCH_DB)


def canasta_appends(url: str, database: str, bodies: Sequence[Mapping[str, Any]], batch: int) -> AppendRun:
    """``ledger_repo.append`` of ``bodies`` in batches of ``batch``, one transaction and one
    checkpoint signed with the benchmark's fixed log key each; the first batch is untimed."""
    engine = make_engine(url)
    try:
        bind_keys(engine, fixed_keyring(b"bench"))
        with transaction(engine) as conn:
            ledger_repo.append(conn, KIND, bodies[:batch], utc_now_iso())
        with transaction(engine, write=False) as conn:
            before = int(conn.scalar(sa.select(sa.func.count()).select_from(log_checkpoints)) or 0)
        timed = bodies[batch:]
        gaps = []
        started = time.perf_counter()
        for start, end in batches(len(timed), batch):
            t0 = time.perf_counter()
            with transaction(engine) as conn:
                ledger_repo.append(conn, KIND, timed[start:end], utc_now_iso())
            gaps.append(time.perf_counter() - t0)
        seconds = time.perf_counter() - started
        with transaction(engine, write=False) as conn:
            after = int(conn.scalar(sa.select(sa.func.count()).select_from(log_checkpoints)) or 0)
    finally:
        engine.dispose()
    return AppendRun(database, CANASTA, batch, len(timed), seconds, gaps, after - before)


def raw_rows(bodies: Sequence[Mapping[str, Any]]) -> list[RawRow]:
    """The rows canasta stores for ``bodies``, minus the log's salt and commitment."""
    return [
        (e.seq, e.kind, e.recorded_at, encode_body(e.body), e.prev_hash, e.entry_hash)
        for e in chain(bodies, utc_now_iso())[0]
    ]


def raw_appends(url: str, database: str, how: str, rows: Sequence[RawRow], batch: int) -> AppendRun:
    """The same rows inserted with the database's own driver into a plain table (primary
    key on ``seq``, as the ledger), one transaction per batch, after one untimed batch:
    ``executemany`` of one INSERT (what canasta's writes come down to), or on PostgreSQL
    also ``COPY``, the server's bulk-load ceiling."""
    table = "raw_copy" if how == RAW_COPY else "raw_entries"
    create = RAW_TABLE.replace("raw_entries", table)
    if database == "SQLite":
        lite = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        with closing(lite):
            lite.execute("PRAGMA journal_mode=WAL")
            lite.execute("PRAGMA synchronous=FULL")
            lite.execute(create.replace("BIGINT", "INTEGER"))  # INTEGER PRIMARY KEY: the rowid
            insert = RAW_INSERT.replace("%s", "?")

            def commit_lite(chunk: Sequence[RawRow]) -> None:
                lite.execute("BEGIN IMMEDIATE")
                lite.executemany(insert, chunk)
                lite.execute("COMMIT")

            return _time_raw(database, how, rows, batch, commit_lite)
    with psycopg.connect(url, options="-c synchronous_commit=on") as pg:
        pg.execute(create)
        pg.commit()

        def commit_pg(chunk: Sequence[RawRow]) -> None:
            with pg.cursor() as cursor:
                if how == RAW_COPY:
                    with cursor.copy("COPY raw_copy FROM STDIN") as copy:
                        for row in chunk:
                            copy.write_row(row)
                else:
                    cursor.executemany(RAW_INSERT, chunk)
            pg.commit()

        return _time_raw(database, how, rows, batch, commit_pg)


def _time_raw(
    database: str, how: str, rows: Sequence[RawRow], batch: int, commit: Callable[[Sequence[RawRow]], None]
) -> AppendRun:
    commit(rows[:batch])
    timed = rows[batch:]
    gaps = []
    started = time.perf_counter()
    for start, end in batches(len(timed), batch):
        t0 = time.perf_counter()
        commit(timed[start:end])
        gaps.append(time.perf_counter() - t0)
    return AppendRun(database, how, batch, len(timed), time.perf_counter() - started, gaps, 0)


def measure_appends(
    databases: Sequence[str], scratch: Path, bodies: Sequence[Mapping[str, Any]], appends: int
) -> list[AppendRun]:
    """Raw and canasta at each database and batch size, on a fresh database each, in
    alternating order; every timed run appends ``appends`` entries after one untimed batch."""
    rows = raw_rows(bodies)
    runs: list[AppendRun] = []
    turn = 0
    for database in databases:
        for batch in BATCHES:
            with fresh_database(database, scratch, f"append-{batch}") as url:
                kinds = [RAW, CANASTA] if database == "SQLite" else [RAW, RAW_COPY, CANASTA]
                order = kinds if turn % 2 == 0 else kinds[::-1]
                turn += 1
                for how in order:
                    run = (
                        canasta_appends(url, database, bodies[: batch + appends], batch)
                        if how == CANASTA
                        else raw_appends(url, database, how, rows[: batch + appends], batch)
                    )
                    runs.append(run)
                    print(f"  {database:10} {how:8} batch {batch:5,}: {run.describe()}", flush=True)
    return runs


def postgres_durability() -> str:
    with psycopg.connect(PG_ADMIN, options="-c synchronous_commit=on") as pg:
        version = pg.execute("SHOW server_version").fetchone()
        shown = [
            f"{name}={row[0]}"
            for name in ("synchronous_commit", "fsync", "full_page_writes", "wal_sync_method")
            if (row := pg.execute(f"SHOW {name}").fetchone()) is not None
        ]
    return f"PostgreSQL {version[0] if version else '?'} ({', '.join(shown)})"


# ---------------------------------------------------------------------- the big log


def build_log(url: str, entries: int, rng: random.Random) -> float:
    """``entries`` appended by ``ledger_repo.append`` in batches of 10,000, each signing a
    checkpoint with the key in the key directory (as ``canasta serve`` will find it)."""
    engine = open_database(Settings.load(url))
    try:
        started = time.perf_counter()
        for start, end in batches(entries, BUILD_BATCH):
            bodies = redemption_bodies(end - start, rng)
            with transaction(engine) as conn:
                ledger_repo.append(conn, KIND, bodies, utc_now_iso())
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as lite:
        lite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return seconds


def load_commitments(url: str) -> list[bytes]:
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as lite:
        return [bytes(c) for (c,) in lite.execute("SELECT commitment FROM ledger_entries ORDER BY seq")]


def hashing_floor(commitments: Sequence[bytes]) -> tuple[float, bytes]:
    """SHA-256 of every leaf and the frontier built with it, inlined, no I/O: the least any
    verifier in Python must do. Returns the seconds and the root."""
    sha = hashlib.sha256
    started = time.perf_counter()
    peaks: list[bytes] = []
    for n, data in enumerate(commitments, 1):
        node = sha(b"\x00" + data).digest()
        merges = n
        while not merges & 1:
            node = sha(b"\x01" + peaks.pop() + node).digest()
            merges >>= 1
        peaks.append(node)
    root = peaks[-1]
    for left in reversed(peaks[:-1]):
        root = sha(b"\x01" + left + root).digest()
    return time.perf_counter() - started, root


def frontier_loop(commitments: Sequence[bytes]) -> float:
    """What ``verify_log`` does per leaf (``leaf_hash`` and ``Frontier.append``), no I/O."""
    started = time.perf_counter()
    frontier = Frontier()
    for data in commitments:
        frontier.append(leaf_hash(data))
    frontier.root()
    return time.perf_counter() - started


def proofs_at_append(
    url: str, signer: Signer, verifier: Verifier, rng: random.Random
) -> tuple[float, float, float]:
    """``Sealed.receipt`` for every entry of ``RECEIPT_BATCHES`` batches of 1,000 sealed on
    the big log's frontier (pure: nothing is stored), each proof checked with
    ``verify_inclusion``, and each receipt checked whole with ``verify_receipt``."""
    engine = make_engine(url)
    try:
        with transaction(engine, write=False) as conn:
            frontier = ledger_repo.read_frontier(conn)
    finally:
        engine.dispose()
    if frontier is None:
        raise SystemExit("the big log's head holds no frontier")
    batch = BATCHES[0]
    generate = check = whole = 0.0
    count = 0
    for _ in range(RECEIPT_BATCHES):
        entries, encodings = chain(redemption_bodies(batch, rng), utc_now_iso(), frontier.size + 1)
        sealed = seal(entries, frontier, signer, utc_now_iso(), encodings=encodings)
        started = time.perf_counter()
        receipts = [sealed.receipt(i) for i in range(len(entries))]
        generate += time.perf_counter() - started
        started = time.perf_counter()
        for i, receipt in enumerate(receipts):
            leaf = leaf_hash(sealed.commitments[i])
            if not verify_inclusion(
                receipt.leaf_index, sealed.frontier.size, leaf, receipt.proof, sealed.root
            ):
                raise SystemExit(f"the receipt of entry {receipt.entry.seq} does not verify")
        check += time.perf_counter() - started
        started = time.perf_counter()
        for receipt in receipts:
            verify_receipt(receipt, [verifier])
        whole += time.perf_counter() - started
        count += len(receipts)
        frontier = sealed.frontier
    return count / generate, count / check, count / whole


def proofs_from_storage(
    url: str, commitments: Sequence[bytes], root: bytes, rng: random.Random
) -> tuple[float, float, float, float]:
    """``LogView.inclusion`` at the latest size for ``PROOF_LEAVES`` random leaves: first
    the one-off storing of every full tile, then a fresh view (cold cache), then the same
    view over the same leaves (warm); each proof checked with ``verify_inclusion``."""
    size = len(commitments)
    leaves = [rng.randrange(size) for _ in range(PROOF_LEAVES)]
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        LogView(engine).inclusion(0, size)
        materialise = time.perf_counter() - started
        view = LogView(engine)
        rates = []
        proofs: list[list[bytes]] = []
        for _ in range(2):
            started = time.perf_counter()
            proofs = [view.inclusion(index, size) for index in leaves]
            rates.append(len(leaves) / (time.perf_counter() - started))
    finally:
        engine.dispose()
    started = time.perf_counter()
    for index, proof in zip(leaves, proofs, strict=True):
        if not verify_inclusion(index, size, leaf_hash(commitments[index]), proof, root):
            raise SystemExit(f"the stored proof of leaf {index} does not verify")
    verified = len(leaves) / (time.perf_counter() - started)
    return materialise, rates[0], rates[1], verified


# ---------------------------------------------------------------------- sections


def ratio(value: float, target: float) -> str:
    return f"{value / target:.2f}x"


def section_cpu(bodies: Sequence[Mapping[str, Any]], signer: Signer) -> tuple[CpuCosts, list[Row]]:
    print("CPU only, no database")
    cpu = cpu_costs(bodies[:50_000], signer, signer.verifier)
    print(f"  chained entry (canonical JSON + SHA-256): {cpu.entry_us:6.1f} µs/entry")
    for size, us in cpu.seal_us.items():
        print(
            f"  seal, batch {size:5,}, one signed checkpoint: {us:6.1f} µs/entry "
            f"= {1e6 / us:,.0f} entries/s on one core"
        )
    print(
        f"  Ed25519 checkpoint: signed in {cpu.sign_us:.0f} µs, "
        f"opened and parsed in {cpu.verify_note_us:.0f} µs"
    )
    rows = [
        Row(f"seal, CPU only, batch {size:,}", f"{1e6 / us:,.0f}/s", "-", "-", f"{us:.1f} µs/entry")
        for size, us in cpu.seal_us.items()
    ]
    return cpu, rows


def section_appends(
    databases: Sequence[str], scratch: Path, bodies: Sequence[Mapping[str, Any]], appends: int
) -> list[Row]:
    print("Appends per second (one transaction and one signed checkpoint per batch)")
    runs = measure_appends(databases, scratch, bodies, appends)
    rows = []
    for database in databases:
        for batch in BATCHES:
            found = {r.how: r for r in runs if (r.database, r.batch) == (database, batch)}
            ours, raw = found[CANASTA], found[RAW]
            note = f"{ours.rate / raw.rate:.2f}x the raw INSERT ({raw.rate:,.0f}/s)"
            if RAW_COPY in found:
                copy = found[RAW_COPY]
                note += f", {ours.rate / copy.rate:.2f}x raw COPY ({copy.rate:,.0f}/s)"
            rows.append(
                Row(
                    f"appends, {database}, batch {batch:,}",
                    f"{ours.rate:,.0f}/s",
                    f">= {TARGET_APPENDS:,.0f}/s",
                    ratio(ours.rate, TARGET_APPENDS),
                    f"{note}; {ours.checkpoints / ours.seconds:,.0f} checkpoints/s, longest gap "
                    f"{1000 * max(ours.batch_seconds):.0f} ms",
                )
            )
    return rows


@dataclass(frozen=True, slots=True)
class BigLog:
    url: str
    signer: Signer
    commitments: list[bytes]
    root: bytes


def section_verify(
    scratch: Path, entries: int, cpu: CpuCosts, rng: random.Random
) -> tuple[BigLog, list[Row]]:
    """Build the big log, then verify it from scratch over the database and over HTTP,
    beside the hashing floor."""
    print(f"The log of {entries:,} entries (SQLite, append in batches of {BUILD_BATCH:,})")
    url = f"sqlite:///{scratch / 'log.db'}"
    built = build_log(url, entries, rng)
    print(
        f"  built in {built:.1f} s = {entries / built:,.0f} entries/s, {entries // BUILD_BATCH:,} checkpoints"
    )
    signer = load_keyring(key_directory(url), create=False).log
    verifiers = [signer.verifier]
    commitments = load_commitments(url)
    floor, root = hashing_floor(commitments)
    loop = frontier_loop(commitments)
    engine = make_engine(url)
    try:
        report = verify_log(DatabaseLog(engine), verifiers)
        latest = Checkpoint.parse(open_note(DatabaseLog(engine).latest(), verifiers))
    finally:
        engine.dispose()
    if not report.ok or report.leaves != entries:
        raise SystemExit(f"verify_log over the database failed: {report.problems[:3]}")
    if latest.root != root:
        raise SystemExit("the hashing floor's root is not the log's root")
    with canasta_server(url) as base:
        http = verify_log(HttpLog(base), verifiers)
        tiles = verify_log(HttpLog(base, bulk=False), verifiers)
    for name, found in (("HTTP", http), ("HTTP entry bundles", tiles)):
        if not found.ok or found.leaves != entries:
            raise SystemExit(f"verify_log over {name} failed: {found.problems[:3]}")
    bundles = -(-entries // 256)
    requests = -(-entries // 65_536)
    print(f"  hashing floor (SHA-256 + frontier, inlined, in memory): {floor:.2f} s")
    print(f"  leaf_hash + Frontier.append loop, in memory:             {loop:.2f} s")
    print(
        f"  verify_log, DatabaseLog: {report.seconds:.2f} s ({report.checkpoints:,} checkpoints checked) "
        f"= {report.seconds / floor:.2f}x the hashing floor"
    )
    print(
        f"  verify_log, HttpLog:     {http.seconds:.2f} s ({requests:,} requests of up to 65,536 leaves to "
        f"/log/v1/leaves over loopback) = {http.seconds / floor:.2f}x the hashing floor"
    )
    print(
        f"  verify_log, HttpLog, tlog-tiles entry bundles only: {tiles.seconds:.2f} s ({bundles:,} bundles, "
        f"4 at a time, {1000 * tiles.seconds / bundles:.2f} ms each) = "
        f"{tiles.seconds / floor:.2f}x the hashing floor"
    )
    print(
        f"  each checkpoint costs a verifier {cpu.verify_note_us:.0f} µs (signature); a log of a million "
        f"signing every 100 entries has 10,000: +{10_000 * cpu.verify_note_us / 1e6:.1f} s"
    )
    scale = MILLION / entries
    label = "" if scale == 1 else f" (extrapolated ×{scale:g} from {entries:,})"
    rows = []
    for how, seconds in (
        ("DatabaseLog", report.seconds),
        ("HttpLog", http.seconds),
        ("HttpLog, bundles", tiles.seconds),
    ):
        at_million = seconds * scale
        rows.append(
            Row(
                f"verify 1M-entry log, {how}",
                f"{at_million:.2f} s",
                f"<= {TARGET_VERIFY_S:.0f} s",
                ratio(TARGET_VERIFY_S, at_million),
                f"{seconds / floor:.2f}x the hashing floor{label}",
            )
        )
    rows.append(
        Row("hashing floor, 1M leaves", f"{floor * scale:.2f} s", "-", "-", f"raw limit: no I/O{label}")
    )
    rows.append(
        Row(f"build of the log, batch {BUILD_BATCH:,}", f"{entries / built:,.0f}/s", "-", "-", "SQLite")
    )
    return BigLog(url, signer, commitments, root), rows


def section_proofs(log: BigLog, rng: random.Random) -> list[Row]:
    print("Inclusion proofs")
    size = len(log.commitments)
    at_append, at_append_verified, receipts = proofs_at_append(log.url, log.signer, log.signer.verifier, rng)
    print(
        f"  at append time (Sealed.receipt, batches of {BATCHES[0]:,} on the log's frontier): "
        f"{at_append:,.0f}/s; verify_inclusion {at_append_verified:,.0f}/s; "
        f"verify_receipt (hash, signature, commitment, proof) {receipts:,.0f}/s"
    )
    materialise, cold, warm, verified = proofs_from_storage(log.url, log.commitments, log.root, rng)
    print(
        f"  from storage (LogView.inclusion, {PROOF_LEAVES:,} random leaves at size {size:,}): "
        f"tiles stored first in {materialise:.2f} s; cold {cold:,.0f}/s, warm {warm:,.0f}/s; "
        f"verify_inclusion {verified:,.0f}/s"
    )
    target = f">= {TARGET_PROOFS:,.0f}/s"
    return [
        Row(
            f"proofs at append time, batch {BATCHES[0]:,}",
            f"{at_append:,.0f}/s",
            target,
            ratio(at_append, TARGET_PROOFS),
        ),
        Row(
            f"proofs from storage, cold, log of {size:,}",
            f"{cold:,.0f}/s",
            target,
            ratio(cold, TARGET_PROOFS),
        ),
        Row(
            f"proofs from storage, warm, log of {size:,}",
            f"{warm:,.0f}/s",
            target,
            ratio(warm, TARGET_PROOFS),
        ),
        Row("proofs verified (verify_inclusion)", f"{verified:,.0f}/s", "-", "-", "stored proofs"),
        Row("receipts verified whole (verify_receipt)", f"{receipts:,.0f}/s", "-", "-", "with the signature"),
        Row("storing every full tile (first proof)", f"{materialise:.2f} s", "-", "-", "once per database"),
    ]


def print_table(rows: Sequence[Row]) -> None:
    widths = [max(len(getattr(r, f)) for r in rows) for f in ("what", "measured", "target", "ratio")]
    header = Row("figure", "measured", "target", "ratio")
    for row in (header, *rows):
        print(
            f"  {row.what:<{widths[0]}}  {row.measured:>{widths[1]}}  {row.target:>{widths[2]}}  "
            f"{row.ratio:>{widths[3]}}  {row.note}".rstrip()
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=MILLION, help="size of the log verified from scratch")
    parser.add_argument(
        "--append-entries",
        type=int,
        default=None,
        help="entries per timed append run (default: 100,000 or --entries if smaller)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="scratch directory (default: a temporary one on the disk of this checkout)",
    )
    args = parser.parse_args()
    if args.entries < BUILD_BATCH:
        raise SystemExit(f"--entries must be at least {BUILD_BATCH:,}")
    appends = args.append_entries or min(args.entries, 100_000)
    scratch = Path(tempfile.mkdtemp(prefix="canasta-bench-", dir=args.dir or Path(__file__).resolve().parent))
    os.environ[ENV_KEYS] = str(scratch / "keys")  # for this process and the server it starts
    os.environ.pop("CANASTA_DATABASE_URL", None)
    databases = ["SQLite"] if args.no_postgres else ["SQLite", "PostgreSQL"]
    rng = random.Random(20_260_101)
    print(
        f"canasta transparency-log benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"{appends:,} entries per append run, a log of {args.entries:,} to verify; scratch in {scratch}"
    )
    try:
        conditions = ["SQLite WAL, synchronous=FULL"]
        if not args.no_postgres:
            ensure_postgres()
            conditions.append(postgres_durability())
        print(f"  durability: {'; '.join(conditions)}")
        bodies = redemption_bodies(appends + max(BATCHES), rng)
        cpu, seal_rows = section_cpu(bodies, fixed_keyring(b"bench").log)
        append_rows = section_appends(databases, scratch, bodies, appends)
        log, verify_rows = section_verify(scratch, args.entries, cpu, rng)
        proof_rows = section_proofs(log, rng)
        print(
            f"Result ({os.cpu_count()} cores; {'; '.join(conditions)}; "
            "ratio = measured / target, for times target / measured)"
        )
        print_table([*append_rows, *seal_rows, *proof_rows, *verify_rows])
    finally:
        if not args.no_postgres:
            drop_pg(PG_BENCH_DB)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
