"""Wires the parts together: settings → engine (migrated) → stores → desk."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from canasta.adapters import migrate
from canasta.adapters.db import make_engine
from canasta.adapters.redemption_repo import SqlRedemptionStore
from canasta.domain.errors import CanastaError
from canasta.service.keys import key_directory, load_keyring
from canasta.service.outlets import OutletAuthenticator
from canasta.service.redemption import RedemptionDesk
from canasta.service.settings import Settings
from canasta.service.transparency import LogView, bind_keys


class DatabaseOutOfDate(CanastaError):
    code = "database-out-of-date"


@dataclass(slots=True)
class Canasta:
    settings: Settings
    engine: sa.Engine
    desk: RedemptionDesk
    outlets: OutletAuthenticator
    log: LogView

    def close(self) -> None:
        self.desk.stop()
        self.engine.dispose()


def open_database(settings: Settings, *, create: bool = True, serving: bool = False) -> sa.Engine:
    """An engine on a database at the current schema. An empty database is created; one at
    an older schema is refused until ``canasta db upgrade`` (data is never migrated
    behind the operator's back)."""
    engine = make_engine(settings.database_url, pool_size=8, checkpoint_in_background=serving)
    current = migrate.current_revision(engine)
    head = migrate.head_revision()
    if current is None and create:
        migrate.upgrade(engine)
    elif current != head:
        engine.dispose()
        raise DatabaseOutOfDate(
            f"the database is at schema {current or 'none'} and this canasta needs {head}; "
            "run 'canasta db upgrade' first"
        )
    try:
        bind_keys(engine, load_keyring(key_directory(settings.database_url)))
    except BaseException:
        engine.dispose()
        raise
    return engine


def bootstrap(settings: Settings, *, inline: bool = False) -> Canasta:
    """Wire canasta up. ``inline`` makes the redemption desk commit on the server's event
    loop instead of a writer thread (what ``canasta serve`` uses)."""
    engine = open_database(settings, serving=inline)
    desk = RedemptionDesk(SqlRedemptionStore(engine), max_batch=settings.max_batch, inline=inline)
    outlets = OutletAuthenticator(engine, settings.token_cache_seconds)
    return Canasta(settings, engine, desk, outlets, LogView(engine))
