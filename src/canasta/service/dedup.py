"""Deduplication of the registry: runs, automatic merges, the review queue, undo, export.

A run reads every registration that stands for itself, scores candidate pairs with the
Splink model (``canasta.linkage.model``) and, in one transaction:

* merges each cluster of pairs at or above the upper threshold into its first
  registration (the lowest id, so a person keeps the id they were first registered
  under): the others are marked ``merged_into`` it, are no longer counted as household
  members by the next cycle run, and each merge is a ledger entry, so it enters the
  transparency log;
* queues for review every pair between the thresholds, and every pair the model holds back
  (twin-like pairs), with its evidence: each compared field's level and match weight;
* marks the registrations it matched, so the next incremental run scores only pairs that
  involve registrations imported since, with the model of the last full run.

A pair a person decided is never decided again by a run: a pair decided distinct (or whose
merge was undone) is never merged automatically, and a cluster that would join such a
pair through other registrations goes to review instead.

Merges, decisions and undos change who is counted from the next cycle run on; the
entitlements of a cycle already run are not recomputed.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from canasta.adapters import dedup_repo, ledger_repo
from canasta.adapters.db import transaction
from canasta.domain.errors import Conflict, InvalidInput, NotFound
from canasta.domain.ledger import EntryKind
from canasta.domain.text import typed
from canasta.linkage.model import (
    JOINS_APART,
    Deduplication,
    ScoredPair,
    Thresholds,
    TooFewToEstimate,
    clusters_kept_apart,
    deduplicate,
)
from canasta.service.clock import utc_now_iso

Progress = Callable[[str], None]

#: Why a pair is in the review queue.
BETWEEN_THRESHOLDS = "between the thresholds"
MERGE_UNDONE = "merge undone"


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: int | None
    kind: str
    registrations: int
    new_registrations: int
    scored_pairs: int
    merged: int
    queued: int
    open_reviews: int


def _prob(value: float) -> str:
    return f"{value:.6f}"


def run(
    engine: sa.Engine,
    *,
    full: bool = False,
    thresholds: Thresholds | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Deduplicate the registry: incrementally when a full run has trained a model and
    ``full`` is not asked for, else in full. All-or-nothing: the merges, the queue and the
    run's record are written in one transaction."""
    say = progress or (lambda _stage: None)
    thresholds = thresholds or Thresholds()
    started = utc_now_iso()
    say("reading registrations")
    with transaction(engine, write=False) as conn:
        stored = dedup_repo.last_model(conn)
        rows: list[dict[str, str]] = []
        new: list[str] = []
        for row, is_new in dedup_repo.registrations(conn):
            rows.append(row)
            if is_new:
                new.append(row["registration_id"])
    model = None if full or stored is None else json.loads(stored)
    kind = "full" if model is None else "incremental"
    if kind == "incremental" and not new:
        with transaction(engine, write=False) as conn:
            open_now = dedup_repo.count_open(conn)
        return RunSummary(None, kind, len(rows), 0, 0, 0, 0, open_now)
    if len(rows) < 2:
        return RunSummary(None, "none", len(rows), 0, 0, 0, 0, 0)
    try:
        result = deduplicate(
            rows, thresholds, model=model, new=new if kind == "incremental" else None, progress=say
        )
    except TooFewToEstimate as few:
        raise InvalidInput(
            f"{few}; estimation needs pairs of registrations born on one day, so import the "
            "registry (a few thousand registrations at least) before deduplicating it"
        ) from None
    say("storing merges and the review queue")
    now = utc_now_iso()
    matched = [int(r["registration_id"]) for r in rows] if kind == "full" else [int(i) for i in new]
    with transaction(engine) as conn:
        dedup_repo.lock_registry(conn)
        run_id = dedup_repo.insert_run(
            conn,
            {
                "kind": kind,
                "started_at": started,
                "finished_at": now,
                "registrations": len(rows),
                "new_registrations": len(matched),
                "scored_pairs": len(result.pairs),
                "merges": 0,
                "review_items": 0,
                "upper": _prob(thresholds.upper),
                "lower": _prob(thresholds.lower),
                "model": json.dumps(result.settings if model is None else model, sort_keys=True),
            },
        )
        dedup_repo.mark_matched(conn, run_id, matched)
        merged, queued = _apply(conn, result, run_id, now)
        dedup_repo.finish_run(conn, run_id, {"merges": merged, "review_items": queued})
        open_now = dedup_repo.count_open(conn)
    return RunSummary(
        run_id,
        kind,
        len(rows),
        len(matched),
        len(result.pairs),
        merged,
        queued,
        open_now,
    )


def _ordered(pair: ScoredPair) -> tuple[int, int]:
    a, b = int(pair.left), int(pair.right)
    return (a, b) if a < b else (b, a)


def _evidence(pair: ScoredPair) -> str:
    return json.dumps(
        [{"field": e.field, "level": e.level, "weight": e.weight} for e in pair.evidence],
        separators=(",", ":"),
    )


def _apply(conn: sa.Connection, result: Deduplication, run_id: int, now: str) -> tuple[int, int]:
    """Write a run's merges and review items; returns how many of each. The ledger entries
    are appended last, so the ledger head is locked only for the append and the commit."""
    decided = dedup_repo.decided_pairs(conn)
    involved = sorted({int(i) for p in result.pairs for i in (p.left, p.right)})
    distinct = [pair for pair, status in decided.items() if status == "distinct"]
    # Each registration as it resolves now (a reviewer may have merged some since the run
    # read the registry): pairs are judged between the people they belong to.
    person = dedup_repo.resolution(conn, sorted({*involved, *(i for pair in distinct for i in pair)}))
    upper = result.thresholds.upper
    links, apart = [], []
    for p in result.pairs:
        a, b = person[int(p.left)], person[int(p.right)]
        if p.held:  # twin-like: never joined automatically, even through a third registration
            apart.append((a, b))
        elif p.match_probability >= upper and decided.get(_ordered(p)) != "distinct" and a != b:
            links.append(replace(p, left=str(a), right=str(b)))
    apart += [(person[a], person[b]) for a, b in distinct]
    roots = sorted({person[i] for i in involved})
    clusters, withheld = clusters_kept_apart(roots, links, apart, int)
    merges: list[tuple[int, int, float]] = []
    best: dict[int, float] = defaultdict(float)
    for p in links:
        for side in (int(p.left), int(p.right)):
            best[side] = max(best[side], p.match_probability)
    for member, kept in clusters.items():
        if member != kept:
            merges.append((kept, member, best[member]))
    merges.sort()
    dedup_repo.merge_many(conn, [(k, m) for k, m, _ in merges])
    resolved = {i: clusters.get(person[i], person[i]) for i in involved}
    held_back = {frozenset((int(x.left), int(x.right))) for x in withheld}
    to_review: dict[tuple[int, int], tuple[ScoredPair, str]] = {}
    for p in result.pairs:
        pair = _ordered(p)
        if pair in decided or resolved[pair[0]] == resolved[pair[1]]:
            continue
        if p.match_probability < upper or p.held:
            to_review[pair] = (p, p.held or BETWEEN_THRESHOLDS)
        elif frozenset((person[pair[0]], person[pair[1]])) in held_back:
            to_review[pair] = (p, JOINS_APART)
    items = [
        {
            "left_id": a,
            "right_id": b,
            "run_id": run_id,
            "match_probability": _prob(p.match_probability),
            "match_weight": f"{p.match_weight:.3f}",
            "reason": reason,
            "evidence": _evidence(p),
            "status": "open",
            "created_at": now,
        }
        for (a, b), (p, reason) in sorted(to_review.items())
    ]
    dedup_repo.insert_review_items(conn, items)
    dedup_repo.close_resolved_items(conn, f"auto: run {run_id}", now)
    if merges:
        sealed = ledger_repo.append(
            conn,
            EntryKind.REGISTRATIONS_MERGED,
            [
                {"kept": k, "merged": m, "probability": _prob(p), "by": "automatic", "run": run_id}
                for k, m, p in merges
            ],
            now,
        )
        dedup_repo.insert_merges(
            conn,
            [
                {
                    "kept_id": k,
                    "merged_id": m,
                    "run_id": run_id,
                    "review_id": None,
                    "match_probability": _prob(p),
                    "decided_by": "automatic",
                    "decided_at": now,
                    "ledger_seq": entry.seq,
                }
                for (k, m, p), entry in zip(merges, sealed.entries, strict=True)
            ],
        )
    return len(merges), len(items)


# -- the review queue -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registration:
    id: int
    registration_id: str
    given_names: str
    family_name: str
    second_family_name: str
    sex: str
    date_of_birth: str
    phone: str
    household_ref: str
    region: str
    municipality: str
    address: str
    #: The registration it is merged into, if any.
    merged_into: int | None


@dataclass(frozen=True, slots=True)
class ReviewItem:
    id: int
    left: Registration
    right: Registration
    match_probability: str
    match_weight: str
    reason: str
    #: Per compared field: {"field", "level", "weight"}.
    evidence: tuple[Mapping[str, Any], ...]
    status: str
    decided_by: str | None
    note: str | None


def _registration(row: Any) -> Registration:
    return Registration(
        id=int(row.id),
        registration_id=row.registration_id,
        given_names=row.given_names,
        family_name=row.family_name,
        second_family_name=row.second_family_name,
        sex=row.sex,
        date_of_birth=row.date_of_birth.isoformat(),
        phone=row.phone,
        household_ref=row.household_ref,
        region=row.region,
        municipality=row.municipality,
        address=row.address,
        merged_into=None if row.merged_into is None else int(row.merged_into),
    )


def _items(conn: sa.Connection, rows: list[Any]) -> list[ReviewItem]:
    people = dedup_repo.registration_details(conn, [i for r in rows for i in (r.left_id, r.right_id)])
    return [
        ReviewItem(
            id=int(r.id),
            left=_registration(people[int(r.left_id)]),
            right=_registration(people[int(r.right_id)]),
            match_probability=r.match_probability,
            match_weight=r.match_weight,
            reason=r.reason,
            evidence=tuple(json.loads(r.evidence)),
            status=r.status,
            decided_by=r.decided_by,
            note=r.note,
        )
        for r in rows
    ]


def open_items(engine: sa.Engine, limit: int | None = None, after: int = 0) -> list[ReviewItem]:
    """Open review items in the order they were queued."""
    with transaction(engine, write=False) as conn:
        return _items(conn, dedup_repo.open_items(conn, limit, after))


def count_open(engine: sa.Engine) -> int:
    with transaction(engine, write=False) as conn:
        return dedup_repo.count_open(conn)


def get_item(engine: sa.Engine, item_id: int) -> ReviewItem:
    with transaction(engine, write=False) as conn:
        row = dedup_repo.item(conn, item_id)
        if row is None:
            raise NotFound(f"there is no review item {item_id}")
        return _items(conn, [row])[0]


def _reviewer(by: str) -> str:
    name = by.strip()
    if not name:
        raise InvalidInput("a decision needs the reviewer's name")
    if len(name) > 80:
        raise InvalidInput("the reviewer's name is longer than 80 characters")
    return name


def _note(note: str | None) -> str | None:
    if note is not None:
        typed(note, "note")
    if note is not None and len(note) > 500:
        raise InvalidInput("the note is longer than 500 characters")
    return note.strip() or None if note is not None else None


@dataclass(frozen=True, slots=True)
class Decision:
    item_id: int
    status: str
    #: The merge this decision made (None when the pair was distinct or already joined).
    merge_id: int | None
    ledger_seq: int | None


def decide(engine: sa.Engine, item_id: int, decision: str, by: str, note: str | None = None) -> Decision:
    """A reviewer's decision on an open item: ``merge`` (the later person is merged into
    the earlier, recorded in the ledger) or ``distinct`` (never merged by a run)."""
    if decision not in ("merge", "distinct"):
        raise InvalidInput(f"a decision is 'merge' or 'distinct', not {decision!r}")
    reviewer, text = _reviewer(by), _note(note)
    now = utc_now_iso()
    with transaction(engine) as conn:
        dedup_repo.lock_registry(conn)
        row = dedup_repo.item(conn, item_id, lock=True)
        if row is None:
            raise NotFound(f"there is no review item {item_id}")
        if row.status != "open":
            raise Conflict(f"review item {item_id} was already decided ({row.status}, by {row.decided_by})")
        if decision == "distinct":
            dedup_repo.decide_item(conn, item_id, "distinct", reviewer, now, text)
            return Decision(item_id, "distinct", None, None)
        person = dedup_repo.resolution(conn, [int(row.left_id), int(row.right_id)])
        a, b = person[int(row.left_id)], person[int(row.right_id)]
        if a != b:
            _refuse_joining_distinct(conn, item_id, a, b)
        dedup_repo.decide_item(conn, item_id, "merged", reviewer, now, text)
        if a == b:
            return Decision(item_id, "merged", None, None)
        kept, gone = min(a, b), max(a, b)
        dedup_repo.merge(conn, kept, gone)
        dedup_repo.close_resolved_items(conn, f"auto: item {item_id}", now)
        merge_id, seq = _record_merge(
            conn, kept, gone, row.match_probability, reviewer, now, review_id=item_id
        )
        return Decision(item_id, "merged", merge_id, seq)


def _refuse_joining_distinct(conn: sa.Connection, item_id: int, a: int, b: int) -> None:
    """A merge of the people ``a`` and ``b`` may not join two registrations decided to be
    different people, through registrations merged into either."""
    sides = dedup_repo.members(conn, [a, b])
    for decided, left, right in dedup_repo.distinct_pairs_among(conn, list(sides)):
        if sides[left] != sides[right]:
            raise Conflict(
                f"review item {item_id} would join registrations {left} and {right}, which review item "
                f"{decided} decided are different people; undo the merges that joined them first"
            )


def _record_merge(
    conn: sa.Connection, kept: int, gone: int, probability: str, by: str, now: str, review_id: int | None
) -> tuple[int, int]:
    """The merge's ledger entry and record (the registry is already changed)."""
    sealed = ledger_repo.append(
        conn,
        EntryKind.REGISTRATIONS_MERGED,
        [{"kept": kept, "merged": gone, "probability": probability, "by": by, "review": review_id}],
        now,
    )
    seq = sealed.entries[0].seq
    merge_id = dedup_repo.insert_merge(
        conn,
        {
            "kept_id": kept,
            "merged_id": gone,
            "run_id": None,
            "review_id": review_id,
            "match_probability": probability,
            "decided_by": by,
            "decided_at": now,
            "ledger_seq": seq,
        },
    )
    return merge_id, seq


@dataclass(frozen=True, slots=True)
class Merge:
    id: int
    kept: str
    merged: str
    match_probability: str
    decided_by: str
    decided_at: str
    ledger_seq: int
    undone_at: str | None
    undone_by: str | None
    undo_reason: str | None


def list_merges(engine: sa.Engine, registration_id: str | None = None, limit: int = 100) -> list[Merge]:
    """The latest merges, or those of one registration (by its registration id)."""
    with transaction(engine, write=False) as conn:
        target = None
        if registration_id is not None:
            target = dedup_repo.registration_id_of(conn, registration_id)
            if target is None:
                raise NotFound(f"no registration {registration_id!r} is registered")
        rows = dedup_repo.merges(conn, target, limit)
        people = dedup_repo.registration_details(conn, [i for r in rows for i in (r.kept_id, r.merged_id)])
        return [
            Merge(
                id=int(r.id),
                kept=people[int(r.kept_id)].registration_id,
                merged=people[int(r.merged_id)].registration_id,
                match_probability=r.match_probability,
                decided_by=r.decided_by,
                decided_at=r.decided_at,
                ledger_seq=int(r.ledger_seq),
                undone_at=r.undone_at,
                undone_by=r.undone_by,
                undo_reason=r.undo_reason,
            )
            for r in rows
        ]


def undo_merge(engine: sa.Engine, merge_id: int, by: str, reason: str) -> int:
    """Undo a merge: the merged registration stands for itself again (with any
    registrations that had been merged into it), the undo is a ledger entry naming the
    merge's, and the pair is recorded as decided distinct so no run merges it again.
    Returns the undo's ledger position."""
    reviewer = _reviewer(by)
    why = (reason or "").strip()
    if not why:
        raise InvalidInput("undoing a merge needs a reason")
    if len(why) > 500:
        raise InvalidInput("the reason is longer than 500 characters")
    now = utc_now_iso()
    with transaction(engine) as conn:
        dedup_repo.lock_registry(conn)
        row = dedup_repo.merge_row(conn, merge_id)
        if row is None:
            raise NotFound(f"there is no merge {merge_id}")
        if row.undone_at is not None:
            raise Conflict(f"merge {merge_id} was already undone ({row.undone_at}, by {row.undone_by})")
        kept, gone = int(row.kept_id), int(row.merged_id)
        root = dedup_repo.resolution(conn, [gone])[gone]
        # The registrations merged into ``gone``, directly or through others, come back with it.
        children: dict[int, list[int]] = defaultdict(list)
        for merged, into in dedup_repo.standing_merges_into(conn, root):
            if merged != gone:
                children[into].append(merged)
        followers, frontier = [], [gone]
        while frontier:
            below = children.get(frontier.pop(), [])
            followers += below
            frontier += below
        dedup_repo.stand_apart(conn, gone, sorted(followers))
        for left, right, item in ((min(kept, gone), max(kept, gone), None), (None, None, row.review_id)):
            _decide_distinct(conn, left, right, item, row, reviewer, now, why)
        dedup_repo.reopen_split_items(conn)
        sealed = ledger_repo.append(
            conn,
            EntryKind.REGISTRATIONS_UNMERGED,
            [{"merge": int(row.ledger_seq), "kept": kept, "merged": gone, "by": reviewer}],
            now,
        )
        seq = sealed.entries[0].seq
        dedup_repo.mark_undone(conn, merge_id, reviewer, now, why, seq)
        return seq


def _decide_distinct(
    conn: sa.Connection,
    left: int | None,
    right: int | None,
    item: int | None,
    merge: Any,
    reviewer: str,
    now: str,
    why: str,
) -> None:
    """Record a pair as two people: the merge's two registrations (``left``, ``right``),
    or the review item a reviewer merged (``item``)."""
    if item is not None:
        dedup_repo.decide_item(conn, int(item), "distinct", reviewer, now, why)
        return
    if left is None or right is None:
        return
    existing = dedup_repo.pair_item(conn, left, right)
    if existing is not None:
        dedup_repo.decide_item(conn, int(existing.id), "distinct", reviewer, now, why)
        return
    dedup_repo.insert_review_items(
        conn,
        [
            {
                "left_id": left,
                "right_id": right,
                "run_id": merge.run_id,
                "match_probability": merge.match_probability,
                "match_weight": "",
                "reason": MERGE_UNDONE,
                "evidence": "[]",
                "status": "distinct",
                "created_at": now,
                "decided_by": reviewer,
                "decided_at": now,
                "note": why,
            }
        ],
    )


# -- export ---------------------------------------------------------------------------------


def export_clusters(engine: sa.Engine, path: Path) -> int:
    """Write ``registration_id,person_id`` for every registration, the person being named
    by the registration id of their first registration (the one the others were merged
    into). CSV, or Parquet when ``path`` ends in ``.parquet``. Written to a temporary file
    beside ``path`` and moved into place, so a failed export leaves no half file. Returns
    the number of rows."""
    temporary = path.with_name(f".{path.name}.partial")
    parquet = path.suffix.lower() == ".parquet"
    text = path.with_name(f".{path.name}.partial.csv") if parquet else temporary
    count = 0
    try:
        with _snapshot(engine) as conn, text.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(("registration_id", "person_id"))
            for pair in dedup_repo.clusters(conn):
                writer.writerow(pair)
                count += 1
        if parquet:
            _csv_to_parquet(text, temporary)
        temporary.replace(path)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)
        text.unlink(missing_ok=True)
    return count


@contextmanager
def _snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One snapshot for a read in many statements (a decision committed meanwhile must not
    show in half the file): REPEATABLE READ on PostgreSQL; SQLite reads one snapshot in a
    transaction anyway."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def _csv_to_parquet(source: Path, target: Path) -> None:
    import duckdb

    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * FROM read_csv('{_quoted(source)}', header = true, all_varchar = true))"  # noqa: S608
            f" TO '{_quoted(target)}' (FORMAT parquet)"
        )


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
