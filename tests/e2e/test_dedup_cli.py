"""A registrar and a reviewer deduplicate from the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from canasta.entrypoints.cli import run
from canasta.linkage.generator import generate_registry
from canasta.registry.registrations import REGISTRATION_COLUMNS


def canasta(capsys: pytest.CaptureFixture[str], db: str, *args: str) -> tuple[int, str, str]:
    code = run([*args, "--db", db])
    out, err = capsys.readouterr()
    return code, " ".join(out.split()), " ".join(err.split())


def test_a_registry_is_deduplicated_reviewed_undone_and_exported(
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = database_url
    registry = generate_registry(1200, seed=5)
    source = tmp_path / "registrations.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, REGISTRATION_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(registry.rows)
    assert canasta(capsys, db, "registry", "import", str(source))[0] == 0

    code, out, _ = canasta(capsys, db, "registry", "dedup", "--upper", "0.4", "--lower", "0.6")
    assert code == 1  # thresholds the wrong way round are refused before any work

    code, out, _ = canasta(capsys, db, "registry", "dedup")
    assert code == 0, out
    found = re.search(r"Run 1 \(full\): matched ([\d,]+) registrations\. ([\d,]+) registrations merged", out)
    assert (
        found and int(found[1].replace(",", "")) == len(registry.rows) and int(found[2].replace(",", "")) > 0
    )
    queue = re.search(r"([\d,]+) pairs await review", out)
    assert queue is not None
    waiting = int(queue[1].replace(",", ""))
    assert waiting > 2

    code, out, _ = canasta(capsys, db, "registry", "review", "--list", "--limit", "3")
    assert code == 0 and f"{waiting} pairs await review" in out

    code, _, err = canasta(capsys, db, "registry", "review")
    assert code == 1 and "--reviewer NAME is needed" in err

    # Interactively: merge the first pair with a note, keep the second apart, then stop.
    monkeypatch.setattr("sys.stdin", io.StringIO("m\nsame person, shortened name\nd\n\nq\n"))
    code, out, _ = canasta(capsys, db, "registry", "review", "--reviewer", "Ana Soto")
    assert code == 0, out
    assert "given names" in out and "date of birth" in out and "weight" in out
    assert "merged (merge" in out and "distinct people; no run will merge them" in out
    # Two fewer, or more when the merge joined other queued pairs' people too.
    left = re.search(r"2 decided; ([\d,]+) pairs await review", out)
    assert left is not None and int(left[1].replace(",", "")) <= waiting - 2

    code, out, _ = canasta(capsys, db, "registry", "merges", "--limit", "1")
    assert code == 0 and "Ana Soto" in out
    merge = re.search(r"│ (\d+) +│", run_table(capsys, db))
    assert merge is not None
    code, out, _ = canasta(
        capsys,
        db,
        "registry",
        "undo-merge",
        merge[1],
        "--reviewer",
        "Ana Soto",
        "--reason",
        "twins after all",
    )
    assert code == 0 and "undone" in out
    code, _, err = canasta(
        capsys, db, "registry", "undo-merge", merge[1], "--reviewer", "Ana Soto", "--reason", "x"
    )
    assert code == 1 and "already undone" in err

    # The registration the undo brought back is matched again, alone, by the next run.
    code, out, _ = canasta(capsys, db, "registry", "dedup")
    assert code == 0 and "Run 2 (incremental): matched 1 new registrations" in out
    code, out, _ = canasta(capsys, db, "registry", "dedup")
    assert code == 0 and "No registration is new since the last run" in out

    clusters = tmp_path / "clusters.csv"
    code, out, _ = canasta(capsys, db, "registry", "export-clusters", str(clusters))
    assert code == 0 and f"Wrote {len(registry.rows):,} registrations" in out
    with clusters.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len({r["person_id"] for r in rows}) < len(rows)

    code, out, _ = canasta(capsys, db, "audit")
    assert code == 0 and "Audit passed" in out


def run_table(capsys: pytest.CaptureFixture[str], db: str) -> str:
    """The merges table as printed (unsquashed), to read a merge number from it."""
    run(["registry", "merges", "--limit", "1", "--db", db])
    return capsys.readouterr().out
