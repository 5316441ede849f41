"""Deduplication of a stored registry: runs, merges in the ledger, the review queue, undo,
incremental matching and export, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from canasta.adapters import dedup_repo
from canasta.adapters.tables import (
    dedup_runs,
    entitlements,
    households,
    ledger_entries,
    person_merges,
    persons,
)
from canasta.domain.errors import Conflict, InvalidInput, NotFound
from canasta.linkage.generator import generate_registry
from canasta.linkage.metrics import pairwise_scores
from canasta.linkage.model import JOINS_APART, Deduplication, ScoredPair, Thresholds
from canasta.registry.registrations import REGISTRATION_COLUMNS
from canasta.service import dedup
from canasta.service import programmes as programme_service
from canasta.service.audit import run_audit
from canasta.service.registry import import_registrations_file
from tests.helpers import build_world


def write_registrations(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, REGISTRATION_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def registry() -> Any:
    return generate_registry(1500, seed=11)


def split(registry: Any) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The registrations of the first 70 % of households, then the rest (a household is
    imported whole); people registered twice are found within and across the two."""
    homes = list(dict.fromkeys(r["household_ref"] for r in registry.rows))
    early_homes = set(homes[: len(homes) * 7 // 10])
    early = [r for r in registry.rows if r["household_ref"] in early_homes]
    late = [r for r in registry.rows if r["household_ref"] not in early_homes]
    return early, late


def ids_by_registration(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            r.registration_id: int(r.id)
            for r in conn.execute(sa.select(persons.c.id, persons.c.registration_id))
        }


def resolved(engine: sa.Engine) -> dict[str, str]:
    """registration id → registration id of the person it resolves to."""
    with engine.connect() as conn:
        return dict(dedup_repo.clusters(conn))


def test_a_full_run_merges_duplicates_into_first_registrations_and_logs_each_merge(
    engine: sa.Engine, tmp_path: Path, registry: Any
) -> None:
    import_registrations_file(engine, write_registrations(tmp_path / "r.csv", registry.rows))
    summary = dedup.run(engine)
    assert summary.kind == "full"
    assert summary.registrations == len(registry.rows)
    assert summary.merged > 0 and summary.queued > 0
    clusters = resolved(engine)
    scores = pairwise_scores(clusters, registry.truth)
    assert scores.precision >= 0.98
    assert scores.recall >= 0.85
    ids = ids_by_registration(engine)
    with engine.connect() as conn:
        merges = conn.execute(sa.select(person_merges)).all()
        entries = {
            int(e.seq): e
            for e in conn.execute(
                sa.select(ledger_entries.c.seq, ledger_entries.c.kind, ledger_entries.c.body).where(
                    ledger_entries.c.kind == "registrations-merged"
                )
            )
        }
        merged_rows = conn.execute(
            sa.select(persons.c.id, persons.c.merged_into).where(persons.c.merged_into.is_not(None))
        ).all()
        matched = conn.scalar(sa.select(sa.func.count()).where(persons.c.matched_by == summary.run_id))
    assert len(merges) == summary.merged == len(entries) == len(merged_rows)
    for m in merges:
        assert m.kept_id < m.merged_id  # the first registration is kept
        assert m.decided_by == "automatic" and m.run_id == summary.run_id
        assert f'"merged":{m.merged_id}' in entries[int(m.ledger_seq)].body
    # Every merged registration points at one that stands for itself, never at a merged one.
    assert {int(r.merged_into) for r in merged_rows} <= set(ids.values())
    assert not {int(r.merged_into) for r in merged_rows} & {int(r.id) for r in merged_rows}
    assert matched == len(registry.rows)
    assert run_audit(engine).ok


def test_merged_registrations_are_not_counted_by_the_next_cycle_run(engine: sa.Engine) -> None:
    build_world(engine, households=4, vehicles=1)  # H4 has 4 members: 2 kg + 4 × 1.5 kg
    with engine.begin() as conn:
        h4 = conn.scalar(sa.select(households.c.id).where(households.c.ref == "H4"))
        ids = [int(i) for i in conn.scalars(sa.select(persons.c.id).where(persons.c.household_id == h4))]
        conn.execute(persons.update().where(persons.c.id == ids[3]).values(merged_into=ids[0]))
    programme_service.close_cycle(engine, "food")
    cycle = programme_service.open_cycle(engine, "food", date(2026, 12, 1))
    with engine.connect() as conn:
        quantity = conn.scalar(
            sa.select(entitlements.c.quantity).where(
                entitlements.c.cycle_id == cycle.cycle_id, entitlements.c.household_id == h4
            )
        )
    assert quantity == 6500  # 2 kg + 3 × 1.5 kg: the duplicate is not a fourth member


def test_review_decisions_merge_or_keep_apart_and_runs_respect_them(
    engine: sa.Engine, tmp_path: Path, registry: Any
) -> None:
    import_registrations_file(engine, write_registrations(tmp_path / "r.csv", registry.rows))
    dedup.run(engine)
    first, second = dedup.open_items(engine, 2)
    assert first.evidence and {e["field"] for e in first.evidence} >= {"given_names", "date_of_birth"}
    made = dedup.decide(engine, first.id, "merge", "Ana Soto", "same person, new surname spelling")
    assert made.status == "merged" and made.merge_id is not None and made.ledger_seq is not None
    people = resolved(engine)
    assert people[first.left.registration_id] == people[first.right.registration_id]
    with engine.connect() as conn:
        assert conn.scalar(
            sa.select(ledger_entries.c.kind).where(ledger_entries.c.seq == made.ledger_seq)
        ) == ("registrations-merged")
    apart = dedup.decide(engine, second.id, "distinct", "Ana Soto")
    assert apart.status == "distinct"
    with pytest.raises(Conflict, match="already decided"):
        dedup.decide(engine, second.id, "merge", "Luis Rojas")
    with pytest.raises(InvalidInput, match="merge' or 'distinct"):
        dedup.decide(engine, first.id, "maybe", "Ana Soto")
    with pytest.raises(InvalidInput, match="reviewer's name"):
        dedup.decide(engine, first.id, "merge", "  ")
    with pytest.raises(NotFound):
        dedup.decide(engine, 999_999, "merge", "Ana Soto")
    # A full run again: the distinct pair is neither merged nor queued again.
    dedup.run(engine, full=True)
    people = resolved(engine)
    assert people[second.left.registration_id] != people[second.right.registration_id]
    open_pairs = {(i.left.id, i.right.id) for i in dedup.open_items(engine)}
    assert (second.left.id, second.right.id) not in open_pairs
    assert run_audit(engine).ok


def test_an_undone_merge_stands_apart_for_good(engine: sa.Engine, tmp_path: Path, registry: Any) -> None:
    import_registrations_file(engine, write_registrations(tmp_path / "r.csv", registry.rows))
    dedup.run(engine)
    merge = dedup.list_merges(engine, limit=1)[0]
    seq = dedup.undo_merge(engine, merge.id, "Ana Soto", "different mothers, same name")
    people = resolved(engine)
    assert people[merge.merged] == merge.merged
    with engine.connect() as conn:
        body = conn.scalar(sa.select(ledger_entries.c.body).where(ledger_entries.c.seq == seq))
    assert f'"merge":{merge.ledger_seq}' in str(body)
    (again,) = dedup.list_merges(engine, merge.merged, limit=5)
    assert again.undone_by == "Ana Soto" and again.undo_reason == "different mothers, same name"
    with pytest.raises(Conflict, match="already undone"):
        dedup.undo_merge(engine, merge.id, "Ana Soto", "twice")
    with pytest.raises(InvalidInput, match="reason"):
        dedup.undo_merge(engine, merge.id, "Ana Soto", " ")
    dedup.run(engine, full=True)
    assert resolved(engine)[merge.merged] == merge.merged  # not merged again
    assert run_audit(engine).ok


NOW = "2026-11-29T00:00:00.000000Z"


def ten_people(engine: sa.Engine) -> list[int]:
    """The ten registrations of households H1..H4 (1 to 4 members), by id."""
    build_world(engine, households=4, vehicles=1)
    with engine.connect() as conn:
        return [int(i) for i in conn.scalars(sa.select(persons.c.id).order_by(persons.c.id))]


def merge_by_hand(engine: sa.Engine, kept: int, gone: int) -> None:
    """A reviewer's merge of two people, as ``decide`` makes it."""
    with engine.begin() as conn:
        dedup_repo.merge(conn, kept, gone)
        dedup._record_merge(conn, kept, gone, "0.900000", "Ana Soto", NOW, None)


def apply_pairs(engine: sa.Engine, pairs: list[ScoredPair]) -> tuple[int, int]:
    """A run's writing step for hand-made scored pairs."""
    result = Deduplication(Thresholds(0.95, 0.5), -1, tuple(pairs), {}, ())
    with engine.begin() as conn:
        run_id = dedup_repo.insert_run(
            conn,
            {
                "kind": "full",
                "started_at": NOW,
                "finished_at": NOW,
                "registrations": 0,
                "new_registrations": 0,
                "scored_pairs": 0,
                "merges": 0,
                "review_items": 0,
                "upper": "0.95",
                "lower": "0.5",
                "model": "{}",
            },
        )
        return dedup._apply(conn, result, run_id, NOW)


def pair(a: int, b: int, probability: float = 0.999, held: str = "") -> ScoredPair:
    return ScoredPair(str(a), str(b), 10.0, probability, held=held)


def into(engine: sa.Engine, ids: list[int]) -> dict[int, int | None]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(persons.c.id, persons.c.merged_into).where(persons.c.id.in_(ids)))
        return {int(r.id): (None if r.merged_into is None else int(r.merged_into)) for r in rows}


def test_a_run_merging_a_person_takes_the_registrations_merged_into_it_along(engine: sa.Engine) -> None:
    p = ten_people(engine)
    merge_by_hand(engine, p[3], p[5])
    assert apply_pairs(engine, [pair(p[1], p[3])]) == (1, 0)
    assert into(engine, [p[1], p[3], p[5]]) == {p[1]: None, p[3]: p[1], p[5]: p[1]}  # flat, no chain
    assert run_audit(engine).ok


def test_undoing_a_merge_takes_back_everyone_merged_into_it_however_deep(engine: sa.Engine) -> None:
    p = ten_people(engine)
    merge_by_hand(engine, p[5], p[6])
    merge_by_hand(engine, p[3], p[5])
    merge_by_hand(engine, p[1], p[3])
    assert into(engine, [p[3], p[5], p[6]]) == {p[3]: p[1], p[5]: p[1], p[6]: p[1]}
    third = dedup.list_merges(engine, limit=1)[0]
    dedup.undo_merge(engine, third.id, "Ana Soto", "3 is another person")
    assert into(engine, [p[1], p[3], p[5], p[6]]) == {p[1]: None, p[3]: None, p[5]: p[3], p[6]: p[3]}
    with engine.connect() as conn:
        matched = conn.execute(sa.select(persons.c.id, persons.c.matched_by).where(persons.c.id.in_(p[3:7])))
        assert {int(r.id) for r in matched if r.matched_by is None} >= {p[3], p[5], p[6]}
    assert run_audit(engine).ok


def test_a_pair_decided_distinct_is_not_joined_through_a_registration_merged_into_one_side(
    engine: sa.Engine,
) -> None:
    p = ten_people(engine)
    merge_by_hand(engine, p[2], p[4])
    with engine.begin() as conn:
        dedup_repo.insert_review_items(
            conn,
            [
                {
                    "left_id": p[1],
                    "right_id": p[4],
                    "match_probability": "0.7",
                    "match_weight": "1",
                    "reason": "between the thresholds",
                    "evidence": "[]",
                    "status": "distinct",
                    "created_at": NOW,
                    "decided_by": "Ana Soto",
                    "decided_at": NOW,
                }
            ],
        )
    assert apply_pairs(engine, [pair(p[1], p[2])]) == (0, 1)
    assert into(engine, [p[1], p[2]]) == {p[1]: None, p[2]: None}
    (item,) = dedup.open_items(engine)
    assert item.reason == JOINS_APART
    with pytest.raises(Conflict, match="decided are different people"):
        dedup.decide(engine, item.id, "merge", "Luis Rojas")


def test_twin_like_pairs_are_not_merged_through_a_third_registration(engine: sa.Engine) -> None:
    p = ten_people(engine)
    twins = pair(p[6], p[7], 0.999, held="twin-like")
    # The stronger link is taken; the one that would then join the twins is withheld.
    assert apply_pairs(engine, [twins, pair(p[6], p[9], 0.999), pair(p[7], p[9], 0.998)]) == (1, 2)
    assert {i.reason for i in dedup.open_items(engine)} == {"twin-like", JOINS_APART}
    assert into(engine, [p[6], p[7], p[9]]) == {p[6]: None, p[7]: None, p[9]: p[6]}


def test_an_undo_reopens_the_items_its_merge_had_closed(engine: sa.Engine) -> None:
    p = ten_people(engine)
    assert apply_pairs(engine, [pair(p[4], p[5], 0.7)]) == (0, 1)
    merge_by_hand(engine, p[3], p[4])
    merge_by_hand(engine, p[3], p[5])  # 4 and 5 are now one person: their item closes
    with engine.begin() as conn:
        assert dedup_repo.close_resolved_items(conn, "auto: run 9", NOW) == 1
    assert dedup.count_open(engine) == 0
    last = dedup.list_merges(engine, limit=1)[0]
    dedup.undo_merge(engine, last.id, "Ana Soto", "5 is someone else")
    (item,) = dedup.open_items(engine)  # (4, 5) is doubtful again
    assert (item.left.id, item.right.id) == (p[4], p[5])
    assert run_audit(engine).ok


def test_the_audit_names_a_registration_pointed_at_the_wrong_person(engine: sa.Engine) -> None:
    p = ten_people(engine)
    merge_by_hand(engine, p[1], p[2])
    with engine.begin() as conn:
        conn.execute(persons.update().where(persons.c.id == p[2]).values(merged_into=p[5]))
    report = run_audit(engine)
    assert not report.ok
    assert any(f"registration {p[2]} is counted as {p[5]}" in problem for problem in report.problems)


def test_an_incremental_run_matches_only_new_registrations(
    engine: sa.Engine, tmp_path: Path, registry: Any
) -> None:
    early, late = split(registry)
    import_registrations_file(engine, write_registrations(tmp_path / "early.csv", early))
    full = dedup.run(engine)
    nothing = dedup.run(engine)
    assert nothing.run_id is None and nothing.kind == "incremental"
    import_registrations_file(engine, write_registrations(tmp_path / "late.csv", late))
    later = dedup.run(engine)
    assert later.kind == "incremental"
    assert later.new_registrations == len(late)
    ids = ids_by_registration(engine)
    old = {ids[r["registration_id"]] for r in early}
    with engine.connect() as conn:
        merges = conn.execute(sa.select(person_merges).where(person_merges.c.run_id == later.run_id)).all()
        items = conn.execute(
            sa.text("SELECT left_id, right_id FROM review_items WHERE run_id = :r"), {"r": later.run_id}
        ).all()
        models = conn.execute(
            sa.select(dedup_runs.c.kind, dedup_runs.c.model).order_by(dedup_runs.c.id)
        ).all()
    assert merges, "the repeated registrations were merged"
    # Every merge joins a new registration's cluster (two old ones are joined only through
    # a new registration that matches both).
    people = resolved(engine)
    new_people = {ids[people[r["registration_id"]]] for r in late}
    assert {int(m.kept_id) for m in merges} <= new_people
    assert all(not (int(i.left_id) in old and int(i.right_id) in old) for i in items)
    assert models[-1].kind == "incremental" and models[-1].model == models[0].model  # no retraining
    scores = pairwise_scores(resolved(engine), registry.truth)
    assert scores.precision >= 0.98 and scores.recall >= 0.8
    assert full.run_id is not None
    assert run_audit(engine).ok


def test_a_run_that_fails_while_storing_leaves_nothing(
    engine: sa.Engine, tmp_path: Path, registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import_registrations_file(engine, write_registrations(tmp_path / "r.csv", registry.rows))

    def broken(conn: sa.Connection, rows: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(dedup_repo, "insert_review_items", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        dedup.run(engine)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(dedup_runs)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(person_merges)) == 0
        assert conn.scalar(sa.select(sa.func.count()).where(persons.c.merged_into.is_not(None))) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(ledger_entries)) == 0


def test_export_clusters_writes_every_registration_once(
    engine: sa.Engine, tmp_path: Path, registry: Any
) -> None:
    import duckdb

    import_registrations_file(engine, write_registrations(tmp_path / "r.csv", registry.rows))
    dedup.run(engine)
    count = dedup.export_clusters(engine, tmp_path / "clusters.csv")
    with (tmp_path / "clusters.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert count == len(rows) == len(registry.rows)
    assert list(rows[0]) == ["registration_id", "person_id"]
    people = {r["registration_id"]: r["person_id"] for r in rows}
    assert all(people[p] == p for p in people.values())  # a person is named by a kept registration
    sizes = Counter(people.values())
    assert max(sizes.values()) > 1
    assert dedup.export_clusters(engine, tmp_path / "clusters.parquet") == count
    with duckdb.connect() as con:
        read = con.execute("SELECT * FROM read_parquet(?)", [str(tmp_path / "clusters.parquet")]).fetchall()
    assert dict(read) == people
    with pytest.raises(InvalidInput, match="cannot write"):
        dedup.export_clusters(engine, tmp_path / "missing" / "clusters.csv")
    assert not list((tmp_path / "missing").parent.glob(".*partial*"))


def test_too_small_a_registry_is_said_plainly_and_nothing_is_recorded(
    engine: sa.Engine, tmp_path: Path, registry: Any
) -> None:
    assert dedup.run(engine).kind == "none"  # nothing registered: nothing to compare
    import_registrations_file(engine, write_registrations(tmp_path / "r.csv", registry.rows[:3]))
    with pytest.raises(InvalidInput, match="cannot be estimated from these 3 registrations"):
        dedup.run(engine)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(dedup_runs)) == 0
