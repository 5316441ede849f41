"""Enrolment at scale (issue 4): import and deduplicate a generated national registry, end
to end, against the limits, and beside the ``recordlinkage`` package on a sample.

    .venv/bin/python bench/dedup_scale.py [--people 1000000] [--seed 7]
        [--samples 20000,200000] [--db sqlite|postgresql] [--skip-peer] [--skip-end-to-end]

1. Generates ``--people`` people in households with re-registrations
   (``canasta.linkage.generator``) and writes them to a CSV file (not timed: it stands for
   the registry's own export).
2. Times, each as its own ``canasta`` process so its peak memory is its own:
   ``registry import`` of that file, ``registry dedup`` (a full run: read, normalise,
   estimate, score, cluster, store merges in the ledger and the review queue) and
   ``registry export-clusters``. Prints the total against the 5-minute limit and each
   step's peak resident memory against the 8 GB limit, as ratios (limit / measured:
   above 1 is within).
3. Scores the exported clusters against the generator's truth: pairwise precision,
   recall and F1 of the automatic merges.
4. On samples of ``--samples`` people, runs canasta's deduplication and the
   ``recordlinkage`` package's standard pipeline (blocking index, field comparisons,
   unsupervised ECM classifier) on the same rows in this process, and prints both times,
   their ratio and both accuracies.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from canasta.linkage.generator import generate_registry
from canasta.linkage.metrics import Scores, pairwise_from_links, pairwise_scores
from canasta.linkage.model import deduplicate
from canasta.registry.registrations import REGISTRATION_COLUMNS

LIMIT_SECONDS = 300.0
LIMIT_BYTES = 8 * 1024**3
CANASTA = [sys.executable, "-m", "canasta"]


def write_csv(rows: Sequence[dict[str, str]], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, REGISTRATION_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def timed(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run one canasta command; its wall time, its peak resident memory (bytes) and output."""
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    output = process.stdout.read() if process.stdout else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({process.returncode}):\n{output}")
    return elapsed, usage.ru_maxrss * 1024, output


def _fmt(s: Scores) -> str:
    return f"precision {s.precision:.4f}  recall {s.recall:.4f}  F1 {s.f1:.4f}  (true pairs {s.true_pairs})"


def database_url(kind: str, work: Path) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{work / 'bench.db'}", None
    import psycopg

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"canasta_bench_dedup_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql://postgres@127.0.0.1:5432/{name}", drop


def end_to_end(people: int, seed: int, db: str) -> None:
    started = time.perf_counter()
    registry = generate_registry(people, seed)
    with tempfile.TemporaryDirectory(prefix="canasta-dedup-") as tmp:
        work = Path(tmp)
        source = work / "registry.csv"
        write_csv(registry.rows, source)
        print(
            f"generated {people:,} people, {len(registry.rows):,} registrations "
            f"({source.stat().st_size / 1e6:.0f} MB CSV) in {time.perf_counter() - started:.1f} s (not timed)"
        )
        url, cleanup = database_url(db, work)
        env = dict(os.environ, CANASTA_DATABASE_URL=url, CANASTA_KEYS=str(work / "keys"), COLUMNS="100")
        try:
            steps = [
                ("registry import", [*CANASTA, "registry", "import", str(source), "--all-or-nothing"]),
                ("registry dedup", [*CANASTA, "registry", "dedup"]),
                (
                    "registry export-clusters",
                    [*CANASTA, "registry", "export-clusters", str(work / "clusters.csv")],
                ),
            ]
            total, peak = 0.0, 0
            print(f"\nend to end on {db} ({os.cpu_count()} cores):")
            for name, args in steps:
                seconds, rss, output = timed(args, env)
                total += seconds
                peak = max(peak, rss)
                print(f"  {name:<26} {seconds:7.1f} s   peak memory {rss / 1024**3:5.2f} GB")
                for line in output.strip().splitlines():
                    print(f"      | {line}")
            print(
                f"  {'total':<26} {total:7.1f} s   limit {LIMIT_SECONDS:.0f} s:"
                f" ratio {LIMIT_SECONDS / total:.2f}"
                f" ({'within' if total <= LIMIT_SECONDS else 'OVER'})"
            )
            print(
                f"  {'peak memory':<26} {peak / 1024**3:7.2f} GB  limit 8 GB: ratio {LIMIT_BYTES / peak:.2f}"
                f" ({'within' if peak <= LIMIT_BYTES else 'OVER'})"
            )
            print(f"  throughput {len(registry.rows) / total:,.0f} registrations/s end to end")
            with (work / "clusters.csv").open(encoding="utf-8") as f:
                clusters = {r["registration_id"]: r["person_id"] for r in csv.DictReader(f)}
            truth = {k: str(v) for k, v in registry.truth.items()}
            print(f"  automatic merges: {_fmt(pairwise_scores(clusters, truth))}")
        finally:
            if cleanup is not None:
                cleanup()


def recordlinkage_pipeline(rows: Sequence[dict[str, str]]) -> tuple[list[tuple[str, str]], int]:
    """The package's standard pipeline, as its documentation sets it up for FEBRL:
    a blocking index, string and exact comparisons, and the unsupervised ECM classifier.
    Returns the matched pairs and how many pairs were compared."""
    import pandas as pd  # type: ignore[import-untyped]
    import recordlinkage
    from recordlinkage.classifiers import ECMClassifier

    from canasta.linkage.normalise import normalise_registration

    frame = pd.DataFrame([normalise_registration(r) for r in rows]).set_index("unique_id").fillna("")
    indexer = recordlinkage.Index()
    indexer.block(left_on=["date_of_birth"])
    indexer.block(left_on=["first_given_name", "family_key", "birth_year"])
    candidates = indexer.index(frame)
    compare = recordlinkage.Compare()
    compare.string("given_names", "given_names", method="jarowinkler", threshold=0.85, label="given_names")
    compare.string("family_name", "family_name", method="jarowinkler", threshold=0.85, label="family_name")
    compare.string(
        "second_family_name", "second_family_name", method="jarowinkler", threshold=0.85, label="second"
    )
    compare.exact("date_of_birth", "date_of_birth", label="date_of_birth")
    compare.exact("sex", "sex", label="sex")
    features = compare.compute(candidates, frame)
    classifier = ECMClassifier(binarize=0.5)
    matches = classifier.fit_predict(features)
    return [(str(a), str(b)) for a, b in matches], len(candidates)


def peer(sample: int, seed: int) -> None:
    registry = generate_registry(sample, seed)
    truth = {k: str(v) for k, v in registry.truth.items()}
    print(f"\nbeside recordlinkage, {sample:,} people ({len(registry.rows):,} registrations), one process:")
    started = time.perf_counter()
    result = deduplicate(registry.rows)
    ours = time.perf_counter() - started
    print(f"  canasta (Splink on DuckDB)     {ours:7.1f} s   {_fmt(pairwise_scores(result.clusters, truth))}")
    started = time.perf_counter()
    links, compared = recordlinkage_pipeline(registry.rows)
    theirs = time.perf_counter() - started
    print(f"  recordlinkage (ECM)            {theirs:7.1f} s   {_fmt(pairwise_from_links(links, truth))}")
    print(f"    ({compared:,} pairs compared by recordlinkage)")
    print(f"  ratio recordlinkage / canasta: {theirs / ours:.2f}x the time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--samples", default="20000,200000", help="people in each peer sample, comma-separated"
    )
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--skip-end-to-end", action="store_true")
    args = parser.parse_args()
    if not args.skip_end_to_end:
        end_to_end(args.people, args.seed, args.db)
    if not args.skip_peer:
        for sample in (int(n) for n in args.samples.split(",")):
            peer(sample, args.seed)


if __name__ == "__main__":
    main()
