"""Schema migrations with Alembic: one set of scripts for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from canasta.adapters.db import transaction

_SCRIPTS = Path(__file__).parent / "migrations"


def _config(conn: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: sa.Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the database to ``revision`` in one transaction; data already stored is kept.
    Returns the revisions before and after."""
    before = current_revision(engine)
    with transaction(engine) as conn:
        command.upgrade(_config(conn), revision)
    after = current_revision(engine)
    assert after is not None
    return before, after


def autogenerate(engine: sa.Engine, message: str) -> None:
    """Developers' helper: write a new migration for what changed in ``tables.py``."""
    with transaction(engine) as conn:
        command.revision(_config(conn), message=message, autogenerate=True)
