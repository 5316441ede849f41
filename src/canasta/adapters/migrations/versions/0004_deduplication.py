"""Deduplication: which registration each one was merged into, the runs, every merge with
its undo, and the review queue.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 09:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.String(32)


def upgrade() -> None:
    with op.batch_alter_table("persons") as batch:
        batch.add_column(sa.Column("merged_into", Id, nullable=True))
        batch.add_column(sa.Column("matched_by", Id, nullable=True))
        batch.create_foreign_key("fk_persons_merged_into_persons", "persons", ["merged_into"], ["id"])
        batch.create_index("ix_persons_merged_into", ["merged_into"])
    op.create_table(
        "dedup_runs",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=False),
        sa.Column("registrations", sa.BigInteger, nullable=False),
        sa.Column("new_registrations", sa.BigInteger, nullable=False),
        sa.Column("scored_pairs", sa.BigInteger, nullable=False),
        sa.Column("merges", sa.BigInteger, nullable=False),
        sa.Column("review_items", sa.BigInteger, nullable=False),
        sa.Column("upper", sa.String(16), nullable=False),
        sa.Column("lower", sa.String(16), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.CheckConstraint("kind IN ('full', 'incremental')", name="ck_dedup_runs_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_dedup_runs"),
    )
    op.create_table(
        "person_merges",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("kept_id", Id, nullable=False),
        sa.Column("merged_id", Id, nullable=False),
        sa.Column("run_id", Id, nullable=True),
        sa.Column("review_id", Id, nullable=True),
        sa.Column("match_probability", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(100), nullable=False),
        sa.Column("decided_at", Timestamp, nullable=False),
        sa.Column("ledger_seq", sa.BigInteger, nullable=False),
        sa.Column("undone_at", Timestamp, nullable=True),
        sa.Column("undone_by", sa.String(100), nullable=True),
        sa.Column("undo_reason", sa.String(500), nullable=True),
        sa.Column("undo_ledger_seq", sa.BigInteger, nullable=True),
        sa.ForeignKeyConstraint(["kept_id"], ["persons.id"], name="fk_person_merges_kept_id_persons"),
        sa.ForeignKeyConstraint(["merged_id"], ["persons.id"], name="fk_person_merges_merged_id_persons"),
        sa.ForeignKeyConstraint(["run_id"], ["dedup_runs.id"], name="fk_person_merges_run_id_dedup_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_person_merges"),
    )
    op.create_index("ix_person_merges_merged_id", "person_merges", ["merged_id"])
    op.create_table(
        "review_items",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("left_id", Id, nullable=False),
        sa.Column("right_id", Id, nullable=False),
        sa.Column("run_id", Id, nullable=True),
        sa.Column("match_probability", sa.String(16), nullable=False),
        sa.Column("match_weight", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("decided_by", sa.String(100), nullable=True),
        sa.Column("decided_at", Timestamp, nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        sa.CheckConstraint("status IN ('open', 'merged', 'distinct')", name="ck_review_items_status"),
        sa.CheckConstraint("left_id < right_id", name="ck_review_items_ordered"),
        sa.ForeignKeyConstraint(["left_id"], ["persons.id"], name="fk_review_items_left_id_persons"),
        sa.ForeignKeyConstraint(["right_id"], ["persons.id"], name="fk_review_items_right_id_persons"),
        sa.ForeignKeyConstraint(["run_id"], ["dedup_runs.id"], name="fk_review_items_run_id_dedup_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_review_items"),
        sa.UniqueConstraint("left_id", "right_id", name="uq_review_items_left_id_right_id"),
    )
    op.create_index("ix_review_items_status", "review_items", ["status", "match_probability"])


def downgrade() -> None:
    op.drop_table("review_items")
    op.drop_table("person_merges")
    op.drop_table("dedup_runs")
    with op.batch_alter_table("persons") as batch:
        batch.drop_index("ix_persons_merged_into")
        batch.drop_constraint("fk_persons_merged_into_persons", type_="foreignkey")
        batch.drop_column("matched_by")
        batch.drop_column("merged_into")
