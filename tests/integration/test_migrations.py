import json

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from canasta.adapters import ledger_repo, migrate
from canasta.adapters.db import transaction
from canasta.adapters.tables import households, metadata
from canasta.domain.ledger import GENESIS_HASH, LedgerEntry
from canasta.service.audit import run_audit
from canasta.service.bootstrap import DatabaseOutOfDate, open_database
from canasta.service.settings import Settings
from canasta.service.transparency import keyring_of, publish_checkpoint
from canasta.service.verifier import DatabaseLog, verify_log
from tests.helpers import build_world


def test_the_migrations_build_exactly_the_declared_tables(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_upgrading_again_keeps_every_row(engine: sa.Engine) -> None:
    build_world(engine)
    with engine.connect() as conn:
        before = conn.scalar(sa.select(sa.func.count()).select_from(households))
    assert migrate.upgrade(engine) == (migrate.head_revision(), migrate.head_revision())
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(households)) == before


def test_an_older_schema_is_refused_until_upgraded(engine: sa.Engine, database_url: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'older'")
    try:
        with pytest.raises(DatabaseOutOfDate, match="canasta db upgrade"):
            open_database(Settings.load(database_url))
    finally:  # PostgreSQL's test database outlives the test
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE alembic_version SET version_num = :v"), {"v": migrate.head_revision()}
            )


def test_upgrading_a_ledger_from_before_the_log_backfills_it(engine: sa.Engine) -> None:
    """Entries written at schema 0002 get salts and commitments, the head its frontier, and
    the first checkpoint after the upgrade covers them: the audit and the verifier pass."""
    with transaction(engine) as conn:
        command.downgrade(migrate._config(conn), "0002")
    try:
        prev = GENESIS_HASH
        with engine.begin() as conn:
            for seq in range(1, 301):
                entry = LedgerEntry.create(
                    seq, "card-withdrawn", "2026-11-01T00:00:00.000000Z", {"n": seq}, prev
                )
                prev = entry.entry_hash
                conn.execute(
                    sa.text(
                        "INSERT INTO ledger_entries (seq, kind, recorded_at, body, prev_hash, entry_hash) "
                        "VALUES (:s, :k, :r, :b, :p, :h)"
                    ),
                    {
                        "s": seq,
                        "k": entry.kind,
                        "r": entry.recorded_at,
                        "b": json.dumps(entry.body),
                        "p": entry.prev_hash,
                        "h": entry.entry_hash,
                    },
                )
            conn.execute(sa.text("UPDATE ledger_head SET seq = 300, entry_hash = :h"), {"h": prev})
    finally:
        migrate.upgrade(engine)
    with engine.connect() as conn:
        assert ledger_repo.read_frontier(conn) is not None
    checkpoint = publish_checkpoint(engine)
    assert checkpoint is not None and checkpoint.size == 300
    report = run_audit(engine)
    assert [p for p in report.problems if "cycle" not in p and "card" not in p] == []
    assert verify_log(DatabaseLog(engine), [keyring_of(engine).log.verifier]).ok
