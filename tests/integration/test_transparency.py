"""The transparency log as stored: every append is a leaf, every batch signs a checkpoint, and
proofs, tiles and receipts read back from the database equal those computed from all the
leaves at once."""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from canasta.adapters import ledger_repo, log_repo
from canasta.adapters.db import make_engine, transaction
from canasta.adapters.tables import ledger_entries, log_checkpoints, log_tiles
from canasta.domain.errors import NotFound
from canasta.domain.ledger import EntryKind
from canasta.domain.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from canasta.domain.receipt import verify_receipt
from canasta.domain.signed_note import Checkpoint, open_note
from canasta.domain.transparency import note_hash
from canasta.service.audit import run_audit
from canasta.service.transparency import TILE_WIDTH, LogView, ProofUnavailable, keyring_of, publish_checkpoint
from canasta.service.verifier import DatabaseLog, verify_log


def append(engine: sa.Engine, sizes: list[int], at: str = "2026-11-29T08:00:00.000000Z") -> None:
    """One ledger append (one batch, one checkpoint) per size."""
    for size in sizes:
        with transaction(engine) as conn:
            first = (ledger_repo.read_head(conn) or (0, ""))[0]
            bodies = [{"card": f"C{first + i}", "status": "lost"} for i in range(size)]
            ledger_repo.append(conn, EntryKind.CARD_WITHDRAWN, bodies, at)


def leaves(engine: sa.Engine) -> list[bytes]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ledger_entries.c.commitment).order_by(ledger_entries.c.seq))
        return [leaf_hash(bytes(c)) for (c,) in rows]


BATCHES = [1, 1, 3, 250, 7, 1, 300, 64, 5]  # 632 leaves: two full tiles and a partial one


def test_every_batch_signs_a_checkpoint_of_the_tree_over_every_leaf(engine: sa.Engine) -> None:
    append(engine, BATCHES)
    all_leaves = leaves(engine)
    verifier = keyring_of(engine).log.verifier
    with engine.connect() as conn:
        stored = log_repo.checkpoints(conn)
    sizes = [sum(BATCHES[: i + 1]) for i in range(len(BATCHES))]
    assert [c.size for c in stored] == sizes
    previous = "0" * 64  # the checkpoints chain: each names the note before it
    for checkpoint in stored:
        opened = Checkpoint.parse(open_note(checkpoint.note, [verifier]))
        assert opened.size == checkpoint.size
        assert opened.root == checkpoint.root == root(all_leaves[: checkpoint.size])
        assert opened.extensions == ("time 2026-11-29T08:00:00.000000Z", f"prev {previous}")
        previous = note_hash(checkpoint.note)
    with engine.connect() as conn:
        assert ledger_repo.lock_head(conn).checkpoint_hash == previous


def test_proofs_from_stored_tiles_equal_proofs_from_every_leaf(engine: sa.Engine) -> None:
    append(engine, BATCHES)
    all_leaves = leaves(engine)
    view = LogView(engine)
    rng = random.Random(5)
    sizes = [1, 2, 255, 256, 257, 511, 512, 513, len(all_leaves), *rng.sample(range(1, len(all_leaves)), 20)]
    for size in sizes:
        assert view.root(size) == root(all_leaves[:size])
        for index in {0, size - 1, rng.randrange(size)}:
            proof = view.inclusion(index, size)
            assert proof == inclusion_proof(index, all_leaves[:size])
            assert verify_inclusion(index, size, all_leaves[index], proof, root(all_leaves[:size]))
        old = rng.randrange(1, size + 1)
        proof = view.consistency(old, size)
        assert proof == consistency_proof(old, all_leaves[:size])
        assert verify_consistency(old, size, root(all_leaves[:old]), root(all_leaves[:size]), proof)
    with engine.connect() as conn:  # the two full tiles were stored on the way
        assert log_repo.stored_tile_count(conn, 0) == 2


def test_tiles_and_entry_bundles_read_as_tlog_tiles_serves_them(engine: sa.Engine) -> None:
    append(engine, BATCHES)
    all_leaves = leaves(engine)
    view = LogView(engine)
    assert view.tile(0, 0) == b"".join(all_leaves[:TILE_WIDTH])
    assert view.tile(0, 1) == b"".join(all_leaves[TILE_WIDTH : 2 * TILE_WIDTH])
    assert view.tile(0, 2, 120) == b"".join(all_leaves[512:632])
    assert view.tile(0, 2, 7) == b"".join(all_leaves[512:519])
    level1 = view.tile(1, 0, 2)  # the roots of the two full tiles
    assert level1 == root(all_leaves[:256]) + root(all_leaves[256:512])
    with engine.connect() as conn:
        commitments = log_repo.commitments(conn, 256, 512)
    assert view.entry_bundle(1) == b"".join(b"\x00\x20" + c for c in commitments)
    assert view.entry_bundle(2, 3) == b"".join(b"\x00\x20" + c for c in _commitments(engine)[512:515])
    for absent in [(0, 2, None), (0, 3, 1), (1, 0, 3), (0, 2, 121)]:
        with pytest.raises(NotFound, match="not in the log"):
            view.tile(*absent)


def _commitments(engine: sa.Engine) -> list[bytes]:
    with engine.connect() as conn:
        return log_repo.commitments(conn, 0, 632)


def test_a_receipt_from_storage_verifies_and_a_retry_gets_the_first_checkpoint(engine: sa.Engine) -> None:
    append(engine, BATCHES)
    view = LogView(engine)
    verifier = keyring_of(engine).log.verifier
    for seq in (1, 2, 5, 300, 632):
        latest = verify_receipt(view.receipt(seq), [verifier])
        assert latest.checkpoint.size == 632 and latest.entry.seq == seq
        first = verify_receipt(view.receipt(seq, first=True), [verifier])
        assert first.checkpoint.size == min(s for s in _sizes() if s >= seq)


def _sizes() -> list[int]:
    return [sum(BATCHES[: i + 1]) for i in range(len(BATCHES))]


def test_entries_written_without_the_key_are_covered_by_the_next_checkpoint(
    engine: sa.Engine, database_url: str
) -> None:
    append(engine, [3])
    keyless = make_engine(database_url)  # an engine with no log key bound
    try:
        append(keyless, [4, 2])
    finally:
        keyless.dispose()
    with engine.connect() as conn:
        assert [c.size for c in log_repo.checkpoints(conn)] == [3]
    published = publish_checkpoint(engine)
    assert published is not None and published.size == 9
    assert published.root == root(leaves(engine))
    assert publish_checkpoint(engine) == published  # nothing new: the same checkpoint
    assert verify_log(DatabaseLog(engine), [keyring_of(engine).log.verifier]).ok


def test_the_log_verifies_from_its_public_tables_and_a_changed_leaf_is_caught(engine: sa.Engine) -> None:
    append(engine, BATCHES)
    verifier = keyring_of(engine).log.verifier
    report = verify_log(DatabaseLog(engine), [verifier])
    assert report.ok, report.problems
    assert (report.leaves, report.checkpoints) == (632, len(BATCHES))
    with engine.begin() as conn:
        conn.execute(
            ledger_entries.update().where(ledger_entries.c.seq == 300).values(commitment=b"\x01" * 32)
        )
    report = verify_log(DatabaseLog(engine), [verifier])
    assert [p.split(" does")[0] for p in report.problems] == [
        "checkpoint of size 563",
        "checkpoint of size 627",
        "checkpoint of size 632",
    ]


def test_a_forged_checkpoint_is_refused(engine: sa.Engine) -> None:
    append(engine, BATCHES[:3])
    verifier = keyring_of(engine).log.verifier
    with engine.begin() as conn:
        note = conn.scalar(sa.select(log_checkpoints.c.note).where(log_checkpoints.c.size == 2))
        assert note is not None
        forged = note.replace("\n2\n", "\n1\n", 1)
        conn.execute(log_checkpoints.update().where(log_checkpoints.c.size == 2).values(note=forged))
    report = verify_log(DatabaseLog(engine), [verifier])
    assert len(report.problems) == 2 and "does not verify" in report.problems[0]
    assert report.problems[1].startswith("checkpoint of size 5 does not name the checkpoint before it")


def test_a_checkpoint_taken_out_of_the_published_list_is_named(engine: sa.Engine) -> None:
    append(engine, BATCHES[:4])
    with engine.begin() as conn:
        conn.execute(log_checkpoints.delete().where(log_checkpoints.c.size == 2))
    report = verify_log(DatabaseLog(engine), [keyring_of(engine).log.verifier])
    assert report.problems == [
        "checkpoint of size 5 does not name the checkpoint before it: a published checkpoint is "
        "missing or was replaced"
    ]


def test_checkpoints_signed_while_the_log_is_verified_are_left_for_the_next_run(engine: sa.Engine) -> None:
    append(engine, BATCHES[:3])

    class Live(DatabaseLog):
        def latest(self) -> str:
            note = super().latest()
            append(engine, [4])  # a batch commits between reading the latest and the list
            return note

    report = verify_log(Live(engine), [keyring_of(engine).log.verifier])
    assert report.ok, report.problems
    assert (report.leaves, report.checkpoints) == (5, 3)


def test_level_one_tiles_once_the_log_passes_65536_leaves(engine: sa.Engine) -> None:
    append(engine, [16384] * 4 + [300])
    all_leaves = leaves(engine)
    view = LogView(engine)
    size = len(all_leaves)
    assert view.root(size) == root(all_leaves)
    for index in (0, 65535, 65536, size - 1, 40_000):
        assert view.inclusion(index, size) == inclusion_proof(index, all_leaves)
    assert view.consistency(65536, size) == consistency_proof(65536, all_leaves)
    with engine.connect() as conn:
        assert log_repo.stored_tile_count(conn, 1) == 1 and log_repo.stored_tile_count(conn, 0) == 257
    assert view.tile(1, 0) == b"".join(root(all_leaves[i : i + 256]) for i in range(0, 65536, 256))
    assert view.tile(2, 0, 1) == root(all_leaves[:65536])
    assert not [p for p in run_audit(engine).problems if "tile" in p]
    # A damaged tile above level 0 is named, and so is a tile missing among stored ones...
    with engine.begin() as conn:
        stored = log_repo.tile(conn, 1, 0)
        assert stored is not None
        conn.execute(
            log_tiles.update()
            .where(log_tiles.c.level == 1, log_tiles.c.idx == 0)
            .values(hashes=stored[:3744] + b"\x07" * 32 + stored[3776:])
        )
        conn.execute(log_tiles.delete().where(log_tiles.c.level == 0, log_tiles.c.idx == 5))
    problems = [p for p in run_audit(engine).problems if "tile" in p]
    assert problems == [
        "log tile 1/0 does not hold the hashes of the tiles 0/0 to 255 and the nodes above them",
        "log tile 0/5 is missing while later tiles are stored",
    ]
    # ... and the missing one is stored again the next time a proof needs the tiles.
    with engine.begin() as conn:
        conn.execute(log_tiles.update().where(log_tiles.c.level == 1).values(hashes=stored))
    assert LogView(engine).inclusion(5 * 256 + 3, size) == inclusion_proof(5 * 256 + 3, all_leaves)
    assert not [p for p in run_audit(engine).problems if "tile" in p]


def test_a_changed_stored_tile_is_named_by_the_audit_and_never_served(engine: sa.Engine) -> None:
    append(engine, [300])
    view = LogView(engine)
    view.inclusion(5, 300)  # stores the full tile 0/0, with the nodes above its hashes
    with engine.connect() as conn:
        stored = log_repo.tile(conn, 0, 0)
    assert stored is not None and len(stored) == 511 * 32 and stored[-32:] == root(leaves(engine)[:256])
    with engine.begin() as conn:
        conn.execute(log_tiles.update().values(hashes=stored[:-32] + b"\x00" * 32))
    assert any(p.startswith("log tile 0/0 does not hold") for p in run_audit(engine).problems)
    with engine.begin() as conn:
        conn.execute(log_tiles.update().values(hashes=stored[:100]))
    with pytest.raises(ProofUnavailable, match="stored damaged"):
        LogView(engine).inclusion(5, 300)
