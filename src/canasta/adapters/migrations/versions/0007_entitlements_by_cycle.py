"""Entitlements found by their cycle: the dashboard, cycle summaries and the audit group by
it, and without an index they read the entitlements of every cycle ever run.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 13:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Building it locks entitlements against writes (redemptions) for as long as it takes. On
    # a live national database, build it first without blocking:
    #   CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_entitlements_cycle_id ON entitlements (cycle_id);
    # and this step then finds it made.
    op.create_index("ix_entitlements_cycle_id", "entitlements", ["cycle_id"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_entitlements_cycle_id", table_name="entitlements")
