"""Signed partner messages seen recently, so that a replayed one is refused.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partner_messages",
        sa.Column("sender_id", sa.String(64), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("seen_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("sender_id", "message_id", name="pk_partner_messages"),
    )
    op.create_index("ix_partner_messages_seen_at", "partner_messages", ["seen_at"])


def downgrade() -> None:
    op.drop_table("partner_messages")
