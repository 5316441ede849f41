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
    op.create_index("ix_entitlements_cycle_id", "entitlements", ["cycle_id"])


def downgrade() -> None:
    op.drop_index("ix_entitlements_cycle_id", table_name="entitlements")
