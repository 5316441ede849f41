import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from canasta.adapters import migrate
from canasta.adapters.tables import households, metadata
from canasta.service.bootstrap import DatabaseOutOfDate, open_database
from canasta.service.settings import Settings
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
    with pytest.raises(DatabaseOutOfDate, match="canasta db upgrade"):
        open_database(Settings.load(database_url))
