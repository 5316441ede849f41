"""Published rules: declared attributes, registry schemas, policies, and entitlements
stamped with the policy that granted them and the facts it read.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 04:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "registry_schemas",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("declared_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_registry_schemas"),
    )
    op.create_table(
        "declared_attributes",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("belongs_to", sa.String(16), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("purpose", sa.String(300), nullable=False),
        sa.Column("label_en", sa.String(80), nullable=False),
        sa.Column("label_es", sa.String(80), nullable=False),
        sa.Column("schema_sha256", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["schema_sha256"],
            ["registry_schemas.sha256"],
            name="fk_declared_attributes_schema_sha256_registry_schemas",
        ),
        sa.PrimaryKeyConstraint("name", name="pk_declared_attributes"),
    )
    op.create_table(
        "policies",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("programme_id", Id, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("published_at", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["programme_id"], ["programmes.id"], name="fk_policies_programme_id_programmes"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_policies"),
        sa.UniqueConstraint("sha256", name="uq_policies_sha256"),
        sa.UniqueConstraint("programme_id", "version", name="uq_policies_programme_id_version"),
    )
    op.add_column("entitlements", sa.Column("policy_id", Id, nullable=True))
    op.add_column("entitlements", sa.Column("facts", sa.Text, nullable=True))
    op.add_column("cycles", sa.Column("policy_id", Id, nullable=True))


def downgrade() -> None:
    # Declared attribute columns (attr_*) are dropped by ``canasta registry declare``, not here.
    op.drop_column("cycles", "policy_id")
    op.drop_column("entitlements", "facts")
    op.drop_column("entitlements", "policy_id")
    op.drop_table("policies")
    op.drop_table("declared_attributes")
    op.drop_table("registry_schemas")
