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
    op.add_column("cycles", sa.Column("policy_id", Id, nullable=True))
    # Entitlements lose their foreign keys: a cycle run writes millions of rows in one
    # statement, and checking three keys per row (and locking every household row) cost
    # PostgreSQL more than computing them. The cycle run is their only writer, and
    # ``canasta audit`` checks every reference.
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("entitlements", copy_from=_entitlements(), recreate="always") as batch:
            batch.add_column(sa.Column("policy_id", Id, nullable=True))
            batch.add_column(sa.Column("facts", sa.Text, nullable=True))
    else:
        for name in (
            "fk_entitlements_cycle_id_cycles",
            "fk_entitlements_household_id_households",
            "fk_entitlements_programme_id_programmes",
        ):
            op.drop_constraint(name, "entitlements", type_="foreignkey")
        op.add_column("entitlements", sa.Column("policy_id", Id, nullable=True))
        op.add_column("entitlements", sa.Column("facts", sa.Text, nullable=True))


def _entitlements() -> sa.Table:
    """The entitlements table as revision 0001 made it, less its foreign keys (SQLite
    rebuilds the table from this, keeping every row)."""
    return sa.Table(
        "entitlements",
        sa.MetaData(),
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("cycle_id", Id, nullable=False),
        sa.Column("programme_id", Id, nullable=False),
        sa.Column("beneficiary_kind", sa.String(length=16), nullable=False),
        sa.Column("beneficiary_id", Id, nullable=False),
        sa.Column("household_id", Id, nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("redeemed", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("redeemed >= 0 AND redeemed <= quantity", name="ck_entitlements_no_overdraft"),
        sa.PrimaryKeyConstraint("id", name="pk_entitlements"),
        sa.UniqueConstraint(
            "beneficiary_id",
            "beneficiary_kind",
            "cycle_id",
            name="uq_entitlements_beneficiary_id_beneficiary_kind_cycle_id",
        ),
        sa.Index("ix_entitlements_household_id", "household_id"),
    )


def downgrade() -> None:
    # Declared attribute columns (attr_*) are dropped by ``canasta registry declare``, not here.
    op.drop_column("cycles", "policy_id")
    with op.batch_alter_table("entitlements") as batch:
        batch.drop_column("facts")
        batch.drop_column("policy_id")
    op.drop_table("policies")
    op.drop_table("declared_attributes")
    op.drop_table("registry_schemas")
