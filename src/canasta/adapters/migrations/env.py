"""Alembic environment: runs on the connection canasta hands it (see ``adapters.migrate``)."""

from __future__ import annotations

from alembic import context

from canasta.adapters.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode copies the table, the same script on both.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
