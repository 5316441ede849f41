"""Deduplication SQL: the registrations as the model reads them, runs, merges and the
review queue."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from canasta.adapters.tables import dedup_runs, households, person_merges, persons, review_items

CHUNK = 5000


def registrations(conn: sa.Connection, chunk: int = 20_000) -> Iterator[tuple[dict[str, str], bool]]:
    """Every registration that stands for itself (not merged into another), in the
    registration format the linkage model reads with the row id as its ``registration_id``,
    and whether it is new (no run has matched it yet). Read in chunks by id."""
    last = 0
    while True:
        rows = conn.execute(
            sa.select(
                persons.c.id,
                persons.c.given_names,
                persons.c.family_name,
                persons.c.second_family_name,
                persons.c.sex,
                persons.c.date_of_birth,
                persons.c.phone,
                persons.c.matched_by,
                households.c.ref,
                households.c.region,
                households.c.municipality,
                households.c.address,
            )
            .join(households, households.c.id == persons.c.household_id)
            .where(persons.c.merged_into.is_(None), persons.c.id > last)
            .order_by(persons.c.id)
            .limit(chunk)
        ).all()
        if not rows:
            return
        for r in rows:
            yield (
                {
                    "registration_id": str(r.id),
                    "given_names": r.given_names,
                    "family_name": r.family_name,
                    "second_family_name": r.second_family_name,
                    "sex": r.sex,
                    "date_of_birth": r.date_of_birth.isoformat(),
                    "region": r.region,
                    "municipality": r.municipality,
                    "address": r.address,
                    "phone": r.phone,
                    "household_ref": r.ref,
                },
                r.matched_by is None,
            )
        last = int(rows[-1].id)


def last_model(conn: sa.Connection) -> str | None:
    """The model of the last full run (JSON), if there was one."""
    return conn.scalar(
        sa.select(dedup_runs.c.model)
        .where(dedup_runs.c.kind == "full")
        .order_by(dedup_runs.c.id.desc())
        .limit(1)
    )


def resolution(conn: sa.Connection, ids: Sequence[int]) -> dict[int, int]:
    """registration id → the registration it resolves to now (itself when not merged)."""
    found: dict[int, int] = {}
    for start in range(0, len(ids), CHUNK):
        for row in conn.execute(
            sa.select(persons.c.id, persons.c.merged_into).where(persons.c.id.in_(ids[start : start + CHUNK]))
        ):
            found[int(row.id)] = int(row.merged_into if row.merged_into is not None else row.id)
    return found


def decided_pairs(conn: sa.Connection) -> dict[tuple[int, int], str]:
    """Every pair that already has a review item: (left, right) → its status."""
    return {
        (int(r.left_id), int(r.right_id)): str(r.status)
        for r in conn.execute(
            sa.select(review_items.c.left_id, review_items.c.right_id, review_items.c.status)
        )
    }


def insert_run(conn: sa.Connection, values: Mapping[str, Any]) -> int:
    return int(conn.execute(dedup_runs.insert().values(**values).returning(dedup_runs.c.id)).scalar_one())


def finish_run(conn: sa.Connection, run_id: int, values: Mapping[str, Any]) -> None:
    conn.execute(dedup_runs.update().where(dedup_runs.c.id == run_id).values(**values))


def merge(conn: sa.Connection, kept: int, merged: int) -> None:
    """``merged`` and every registration resolved to it now resolve to ``kept``."""
    conn.execute(
        persons.update()
        .where(sa.or_(persons.c.id == merged, persons.c.merged_into == merged))
        .values(merged_into=kept)
    )


def merge_many(conn: sa.Connection, pairs: Sequence[tuple[int, int]]) -> None:
    """``merge`` for many (kept, merged) pairs of registrations that stand for themselves
    (no kept one is merged by another pair): each merged one, and those merged into it,
    then resolve to its kept one."""
    for start in range(0, len(pairs), CHUNK):
        conn.execute(
            persons.update()
            .where(sa.or_(persons.c.id == sa.bindparam("m"), persons.c.merged_into == sa.bindparam("m")))
            .values(merged_into=sa.bindparam("k")),
            [{"k": k, "m": m} for k, m in pairs[start : start + CHUNK]],
        )


def insert_merge(conn: sa.Connection, row: Mapping[str, Any]) -> int:
    """One merge's record; returns its id."""
    return int(conn.execute(person_merges.insert().values(**row).returning(person_merges.c.id)).scalar_one())


def insert_merges(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        conn.execute(person_merges.insert(), list(rows[start : start + CHUNK]))


def insert_review_items(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        conn.execute(review_items.insert(), list(rows[start : start + CHUNK]))


def mark_matched(conn: sa.Connection, run_id: int, ids: Sequence[int]) -> None:
    """Mark exactly the registrations a run read (ids are not committed in order on
    PostgreSQL, so a range could take in rows the run never saw)."""
    for start in range(0, len(ids), CHUNK):
        conn.execute(
            persons.update().where(persons.c.id.in_(ids[start : start + CHUNK])).values(matched_by=run_id)
        )


def lock_registry(conn: sa.Connection) -> None:
    """One writer of merges and decisions at a time. PostgreSQL: a transaction-level
    advisory lock (the ledger head is locked only for the append, at the end); SQLite has
    one writer anyway."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _REGISTRY_LOCK})


#: The advisory lock key of deduplication writes ("canasta" "dedup").
_REGISTRY_LOCK = 0x63616E6173746164


def _person_of(side: sa.Column[Any]) -> sa.ScalarSelect[Any]:
    p = persons.alias()
    return sa.select(sa.func.coalesce(p.c.merged_into, p.c.id)).where(p.c.id == side).scalar_subquery()


def close_resolved_items(conn: sa.Connection, decided_by: str, now: str) -> int:
    """Open review items whose two registrations now resolve to one person are closed as
    merged: someone (a run or a reviewer) has joined them another way."""
    result = conn.execute(
        review_items.update()
        .where(
            review_items.c.status == "open",
            _person_of(review_items.c.left_id) == _person_of(review_items.c.right_id),
        )
        .values(status="merged", decided_by=decided_by, decided_at=now)
    )
    return int(result.rowcount or 0)


def open_items(conn: sa.Connection, limit: int | None = None, after: int = 0) -> list[sa.Row[Any]]:
    query = (
        sa.select(review_items)
        .where(review_items.c.status == "open", review_items.c.id > after)
        .order_by(review_items.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query))


def count_open(conn: sa.Connection) -> int:
    return int(
        conn.scalar(
            sa.select(sa.func.count()).select_from(review_items).where(review_items.c.status == "open")
        )
        or 0
    )


def item(conn: sa.Connection, item_id: int, *, lock: bool = False) -> sa.Row[Any] | None:
    query = sa.select(review_items).where(review_items.c.id == item_id)
    if lock:
        query = query.with_for_update()
    return conn.execute(query).first()


def decide_item(conn: sa.Connection, item_id: int, status: str, by: str, now: str, note: str | None) -> None:
    conn.execute(
        review_items.update()
        .where(review_items.c.id == item_id)
        .values(status=status, decided_by=by, decided_at=now, note=note)
    )


def pair_item(conn: sa.Connection, left: int, right: int) -> sa.Row[Any] | None:
    return conn.execute(
        sa.select(review_items).where(review_items.c.left_id == left, review_items.c.right_id == right)
    ).first()


def registration_details(conn: sa.Connection, ids: Iterable[int]) -> dict[int, sa.Row[Any]]:
    """What a reviewer sees of each registration: the person's fields and household."""
    wanted = sorted(set(ids))
    found: dict[int, Any] = {}
    for start in range(0, len(wanted), CHUNK):
        for row in conn.execute(
            sa.select(
                persons.c.id,
                persons.c.registration_id,
                persons.c.given_names,
                persons.c.family_name,
                persons.c.second_family_name,
                persons.c.sex,
                persons.c.date_of_birth,
                persons.c.phone,
                persons.c.merged_into,
                households.c.ref.label("household_ref"),
                households.c.region,
                households.c.municipality,
                households.c.address,
            )
            .join(households, households.c.id == persons.c.household_id)
            .where(persons.c.id.in_(wanted[start : start + CHUNK]))
        ):
            found[int(row.id)] = row
    return found


def merge_row(conn: sa.Connection, merge_id: int) -> sa.Row[Any] | None:
    return conn.execute(
        sa.select(person_merges).where(person_merges.c.id == merge_id).with_for_update()
    ).first()


def merges(conn: sa.Connection, registration: int | None = None, limit: int = 100) -> list[sa.Row[Any]]:
    query = sa.select(person_merges).order_by(person_merges.c.id.desc()).limit(limit)
    if registration is not None:
        query = query.where(
            sa.or_(person_merges.c.kept_id == registration, person_merges.c.merged_id == registration)
        )
    return list(conn.execute(query))


def standing_merges_into(conn: sa.Connection, root: int) -> list[tuple[int, int]]:
    """(merged, kept) of every merge that stands among the registrations resolved to
    ``root``: the tree of who was merged into whom."""
    members = sa.select(persons.c.id).where(persons.c.merged_into == root).scalar_subquery()
    return [
        (int(r.merged_id), int(r.kept_id))
        for r in conn.execute(
            sa.select(person_merges.c.merged_id, person_merges.c.kept_id).where(
                person_merges.c.undone_at.is_(None), person_merges.c.merged_id.in_(members)
            )
        )
    ]


def mark_undone(conn: sa.Connection, merge_id: int, by: str, now: str, reason: str, seq: int) -> None:
    conn.execute(
        person_merges.update()
        .where(person_merges.c.id == merge_id)
        .values(undone_at=now, undone_by=by, undo_reason=reason, undo_ledger_seq=seq)
    )


def stand_apart(conn: sa.Connection, root: int, followers: Sequence[int]) -> None:
    """``root`` stands for itself again, and ``followers`` resolve to it; all of them are
    matched again by the next incremental run (while merged they were not compared)."""
    conn.execute(persons.update().where(persons.c.id == root).values(merged_into=None, matched_by=None))
    for start in range(0, len(followers), CHUNK):
        conn.execute(
            persons.update()
            .where(persons.c.id.in_(followers[start : start + CHUNK]))
            .values(merged_into=root, matched_by=None)
        )


def reopen_split_items(conn: sa.Connection) -> int:
    """Items closed automatically because their two sides had been joined, whose sides no
    longer resolve to one person (a merge was undone), are open again."""
    result = conn.execute(
        review_items.update()
        .where(
            review_items.c.status == "merged",
            review_items.c.decided_by.like("auto:%"),
            _person_of(review_items.c.left_id) != _person_of(review_items.c.right_id),
        )
        .values(status="open", decided_by=None, decided_at=None)
    )
    return int(result.rowcount or 0)


def members(conn: sa.Connection, roots: Sequence[int]) -> dict[int, int]:
    """Every registration resolved to one of ``roots`` (the roots included) → its root."""
    found = {r: r for r in roots}
    for row in conn.execute(
        sa.select(persons.c.id, persons.c.merged_into).where(persons.c.merged_into.in_(list(roots)))
    ):
        found[int(row.id)] = int(row.merged_into)
    return found


def distinct_pairs_among(conn: sa.Connection, ids: Sequence[int]) -> list[tuple[int, int, int]]:
    """(item, left, right) of the pairs decided distinct with both sides in ``ids``."""
    found: list[tuple[int, int, int]] = []
    wanted = sorted(set(ids))
    inside = set(wanted)
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        for row in conn.execute(
            sa.select(review_items.c.id, review_items.c.left_id, review_items.c.right_id).where(
                review_items.c.status == "distinct", review_items.c.left_id.in_(chunk)
            )
        ):
            if int(row.right_id) in inside:
                found.append((int(row.id), int(row.left_id), int(row.right_id)))
    return found


def registration_id_of(conn: sa.Connection, registration_id: str) -> int | None:
    return conn.scalar(sa.select(persons.c.id).where(persons.c.registration_id == registration_id))


def clusters(conn: sa.Connection, chunk: int = 50_000) -> Iterator[tuple[str, str]]:
    """(registration_id, the registration_id of the person it resolves to), by id."""
    kept = persons.alias("kept")
    last = 0
    while True:
        rows = conn.execute(
            sa.select(
                persons.c.id,
                persons.c.registration_id,
                sa.func.coalesce(kept.c.registration_id, persons.c.registration_id),
            )
            .select_from(persons.outerjoin(kept, kept.c.id == persons.c.merged_into))
            .where(persons.c.id > last)
            .order_by(persons.c.id)
            .limit(chunk)
        ).all()
        if not rows:
            return
        for row in rows:
            yield str(row[1]), str(row[2])
        last = int(rows[-1][0])
