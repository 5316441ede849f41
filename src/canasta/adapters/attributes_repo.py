"""Declared attributes in the database: the schema rows, and the ``attr_<name>`` columns of
households, persons and vehicles that hold their values.

Adding a column is the one piece of DDL canasta runs outside a migration. It is what makes
declared values as cheap to read in a cycle run as any other column; the name is checked
(``registry.schema``) before it reaches SQL, and the DDL runs in the declaring transaction,
which both SQLite and PostgreSQL roll back whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from canasta.adapters.tables import declared_attributes, registry_schemas
from canasta.policy.compile import column_name
from canasta.registry.schema import Attribute, AttributeType, NeedCategory, Owner

TABLE_OF = {Owner.HOUSEHOLD: "households", Owner.PERSON: "persons", Owner.VEHICLE: "vehicles"}

_SQL_TYPE = {
    ("sqlite", AttributeType.INTEGER): "INTEGER",
    ("sqlite", AttributeType.DECIMAL): "REAL",
    ("sqlite", AttributeType.BOOLEAN): "BOOLEAN",
    ("sqlite", AttributeType.TEXT): "VARCHAR(200)",
    ("sqlite", AttributeType.DATE): "DATE",
    ("postgresql", AttributeType.INTEGER): "BIGINT",
    ("postgresql", AttributeType.DECIMAL): "DOUBLE PRECISION",
    ("postgresql", AttributeType.BOOLEAN): "BOOLEAN",
    ("postgresql", AttributeType.TEXT): "VARCHAR(200)",
    ("postgresql", AttributeType.DATE): "DATE",
}


def load(conn: sa.Connection) -> dict[str, Attribute]:
    return {
        row.name: Attribute(
            row.name,
            AttributeType(row.type),
            row.unit,
            Owner(row.belongs_to),
            NeedCategory(row.category),
            row.purpose,
            row.label_en,
            row.label_es,
        )
        for row in conn.execute(sa.select(declared_attributes).order_by(declared_attributes.c.name))
    }


def current_schema_text(conn: sa.Connection) -> str | None:
    row = conn.execute(
        sa.select(registry_schemas.c.text)
        .join(declared_attributes, declared_attributes.c.schema_sha256 == registry_schemas.c.sha256)
        .limit(1)
    ).one_or_none()
    return None if row is None else str(row.text)


def has_values(conn: sa.Connection, attribute: Attribute) -> bool:
    table = TABLE_OF[attribute.belongs_to]
    column = column_name(attribute.name)
    return (
        conn.exec_driver_sql(f"SELECT 1 FROM {table} WHERE {column} IS NOT NULL LIMIT 1").first() is not None
    )


def replace(
    conn: sa.Connection,
    sha256: str,
    text: str,
    now: str,
    wanted: Mapping[str, Attribute],
    current: Mapping[str, Attribute],
) -> None:
    """Make ``wanted`` the declared attributes: add the columns of new ones, drop those of
    removed ones (their values go with them: what is no longer declared is not kept)."""
    dialect = conn.dialect.name
    if conn.scalar(sa.select(registry_schemas.c.sha256).where(registry_schemas.c.sha256 == sha256)) is None:
        conn.execute(registry_schemas.insert().values(sha256=sha256, text=text, declared_at=now))
    for name, attribute in current.items():
        if name not in wanted:
            table = TABLE_OF[attribute.belongs_to]
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column_name(name)}")
    for name, attribute in wanted.items():
        if name not in current:
            table = TABLE_OF[attribute.belongs_to]
            kind = _SQL_TYPE[(dialect, attribute.type)]
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column_name(name)} {kind}")
    conn.execute(declared_attributes.delete())
    if wanted:
        conn.execute(
            declared_attributes.insert(),
            [
                {
                    "name": a.name,
                    "type": a.type.value,
                    "unit": a.unit,
                    "belongs_to": a.belongs_to.value,
                    "category": a.category.value,
                    "purpose": a.purpose,
                    "label_en": a.label_en,
                    "label_es": a.label_es,
                    "schema_sha256": sha256,
                }
                for a in wanted.values()
            ],
        )


def values(
    conn: sa.Connection, table: str, names: Sequence[str], ids: Sequence[int]
) -> dict[int, dict[str, Any]]:
    """The declared attributes ``names`` of rows ``ids`` of ``table`` (households, persons or
    vehicles), by row id: one statement for all of them."""
    if not names or not ids:
        return {}
    chosen = ", ".join(f'"{column_name(n)}"' for n in names)
    listed = ", ".join(str(int(i)) for i in ids)
    # Declared names are checked identifiers (column_name), the ids ints, the table ours.
    rows = conn.exec_driver_sql(f'SELECT id, {chosen} FROM "{table}" WHERE id IN ({listed})')
    return {int(r[0]): dict(zip(names, r[1:], strict=True)) for r in rows}
