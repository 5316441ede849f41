"""The registry API (DCI): partner systems, their requests and their subscriptions.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 13:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("sender_id", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("key_name", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(300), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_partners"),
        sa.UniqueConstraint("name", name="uq_partners_name"),
        sa.UniqueConstraint("sender_id", name="uq_partners_sender_id"),
        sa.UniqueConstraint("token_hash", name="uq_partners_token_hash"),
    )
    op.create_table(
        "partner_requests",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("partner_id", Id, nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("transaction_id", sa.String(99), nullable=False),
        sa.Column("correlation_id", sa.String(99), nullable=False),
        sa.Column("status", sa.String(4), nullable=False),
        sa.Column("reason_code", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("completed_at", Timestamp, nullable=True),
        sa.Column("response", sa.Text, nullable=True),
        sa.CheckConstraint("status IN ('rcvd', 'pdng', 'succ', 'rjct')", name="ck_partner_requests_status"),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name="fk_partner_requests_partner_id_partners"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_partner_requests"),
        sa.UniqueConstraint("correlation_id", name="uq_partner_requests_correlation_id"),
    )
    op.create_index("ix_partner_requests_transaction", "partner_requests", ["partner_id", "transaction_id"])
    op.create_table(
        "partner_subscriptions",
        sa.Column("code", sa.String(99), nullable=False),
        sa.Column("partner_id", Id, nullable=False),
        sa.Column("reg_event_type", sa.String(32), nullable=False),
        sa.Column("filter", sa.Text, nullable=False),
        sa.Column("notify_uri", sa.String(500), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("ended_at", Timestamp, nullable=True),
        sa.CheckConstraint("status IN ('subscribe', 'unsubscribe')", name="ck_partner_subscriptions_status"),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name="fk_partner_subscriptions_partner_id_partners"
        ),
        sa.PrimaryKeyConstraint("code", name="pk_partner_subscriptions"),
    )
    op.create_index("ix_partner_subscriptions_partner_id", "partner_subscriptions", ["partner_id"])


def downgrade() -> None:
    op.drop_table("partner_subscriptions")
    op.drop_table("partner_requests")
    op.drop_table("partners")
