"""Offline outlets: each outlet's journal key, offline shares and daily caps, the synced
journal, and offline conflicts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 11:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.String(32)


def upgrade() -> None:
    with op.batch_alter_table("programmes") as batch:
        batch.add_column(sa.Column("offline_share_permille", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "outlet_keys",
        sa.Column("outlet_code", sa.String(64), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("enrolled_at", Timestamp, nullable=False),
        sa.ForeignKeyConstraint(["outlet_code"], ["outlets.code"], name="fk_outlet_keys_outlet_code_outlets"),
        sa.PrimaryKeyConstraint("outlet_code", name="pk_outlet_keys"),
    )
    op.create_table(
        "offline_caps",
        sa.Column("outlet_code", sa.String(64), nullable=False),
        sa.Column("programme_id", Id, nullable=False),
        sa.Column("daily_cap", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(
            ["outlet_code"], ["outlets.code"], name="fk_offline_caps_outlet_code_outlets"
        ),
        sa.ForeignKeyConstraint(
            ["programme_id"], ["programmes.id"], name="fk_offline_caps_programme_id_programmes"
        ),
        sa.PrimaryKeyConstraint("outlet_code", "programme_id", name="pk_offline_caps"),
    )
    op.create_table(
        "outlet_journal",
        sa.Column("outlet_code", sa.String(64), nullable=False),
        sa.Column("counter", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(100), nullable=False),
        sa.Column("card_id", sa.String(40), nullable=False),
        sa.Column("programme", sa.String(64), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("void", sa.Boolean, nullable=False),
        sa.Column("recorded_at", Timestamp, nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger, nullable=True),
        sa.CheckConstraint(
            "outcome IN ('redeemed', 'replayed', 'conflict', 'void')", name="ck_outlet_journal_outcome"
        ),
        sa.PrimaryKeyConstraint("outlet_code", "counter", name="pk_outlet_journal"),
    )
    op.create_table(
        "offline_conflicts",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("outlet_code", sa.String(64), nullable=False),
        sa.Column("counter", sa.BigInteger, nullable=False),
        sa.Column("card_id", sa.String(40), nullable=False),
        sa.Column("programme", sa.String(64), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("applied", sa.BigInteger, nullable=False),
        sa.Column("shortfall", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("decided_by", sa.String(100), nullable=True),
        sa.Column("decided_at", Timestamp, nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        sa.CheckConstraint("status IN ('open', 'settled')", name="ck_offline_conflicts_status"),
        sa.PrimaryKeyConstraint("id", name="pk_offline_conflicts"),
        sa.UniqueConstraint("outlet_code", "counter", name="uq_offline_conflicts_outlet_code_counter"),
    )


def downgrade() -> None:
    op.drop_table("offline_conflicts")
    op.drop_table("outlet_journal")
    op.drop_table("offline_caps")
    op.drop_table("outlet_keys")
    with op.batch_alter_table("programmes") as batch:
        batch.drop_column("offline_share_permille")
