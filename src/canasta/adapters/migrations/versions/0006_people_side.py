"""The people's side: staff accounts, card PINs, web sessions, the access log and appeals.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 12:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(24), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", Timestamp, nullable=True),
        sa.CheckConstraint(
            "role IN ('registrar', 'reviewer', 'programme_officer', 'outlet_manager', 'auditor', 'admin')",
            name="ck_staff_users_role",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_staff_users"),
        sa.UniqueConstraint("username", name="uq_staff_users_username"),
    )
    op.create_table(
        "card_pins",
        sa.Column("card_id", sa.String(16), nullable=False),
        sa.Column("pin_hash", sa.String(200), nullable=False),
        sa.Column("set_at", Timestamp, nullable=False),
        sa.Column("failed_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("locked_until", Timestamp, nullable=True),
        sa.ForeignKeyConstraint(["card_id"], ["cards.id"], name="fk_card_pins_card_id_cards"),
        sa.PrimaryKeyConstraint("card_id", name="pk_card_pins"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.CheckConstraint("kind IN ('staff', 'portal')", name="ck_web_sessions_kind"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_web_sessions"),
    )
    op.create_index("ix_web_sessions_subject", "web_sessions", ["kind", "subject"])
    op.create_table(
        "access_log",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("household_id", Id, nullable=False),
        sa.Column("actor_kind", sa.String(8), nullable=False),
        sa.Column("actor_id", Id, nullable=False),
        sa.Column("actor_name", sa.String(100), nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(300), nullable=False),
        sa.Column("what", sa.String(32), nullable=False),
        sa.Column("read_at", Timestamp, nullable=False),
        sa.Column("consent", sa.Text, nullable=True),
        sa.CheckConstraint("actor_kind IN ('staff', 'partner')", name="ck_access_log_actor_kind"),
        sa.ForeignKeyConstraint(
            ["household_id"], ["households.id"], name="fk_access_log_household_id_households"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_access_log"),
    )
    op.create_index("ix_access_log_household", "access_log", ["household_id", "read_at"])
    op.create_table(
        "appeals",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("card_id", sa.String(16), nullable=False),
        sa.Column("household_id", Id, nullable=False),
        sa.Column("subject", sa.String(16), nullable=False),
        sa.Column("entitlement_id", Id, nullable=True),
        sa.Column("ledger_seq", Id, nullable=True),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("filed_at", Timestamp, nullable=False),
        sa.Column("decided_at", Timestamp, nullable=True),
        sa.Column("decided_by", Id, nullable=True),
        sa.Column("decided_by_name", sa.String(100), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.CheckConstraint("subject IN ('entitlement', 'redemption', 'data')", name="ck_appeals_subject"),
        sa.CheckConstraint("status IN ('open', 'upheld', 'rejected')", name="ck_appeals_status"),
        sa.ForeignKeyConstraint(
            ["household_id"], ["households.id"], name="fk_appeals_household_id_households"
        ),
        sa.ForeignKeyConstraint(["decided_by"], ["staff_users.id"], name="fk_appeals_decided_by_staff_users"),
        sa.PrimaryKeyConstraint("id", name="pk_appeals"),
    )
    op.create_index("ix_appeals_household_id", "appeals", ["household_id"])
    op.create_index("ix_appeals_status", "appeals", ["status", "filed_at"])


def downgrade() -> None:
    op.drop_table("appeals")
    op.drop_table("access_log")
    op.drop_table("web_sessions")
    op.drop_table("card_pins")
    op.drop_table("staff_users")
