"""The transparency log: a salt and a public commitment per ledger entry, the tree's right
edge in the ledger head, signed checkpoints, stored tiles, and the keys a database was
first used with.

Entries already in the ledger get their salts and commitments here, in order, and the head
its frontier; the first writer after the upgrade signs a checkpoint that covers them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 07:40:00
"""

from __future__ import annotations

import hashlib
import json
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_checkpoints",
        sa.Column("size", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("signed_at", sa.String(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("size", name="pk_log_checkpoints"),
    )
    op.create_table(
        "log_tiles",
        sa.Column("level", sa.SmallInteger, autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("hashes", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name="pk_log_tiles"),
    )
    op.create_table(
        "signing_keys",
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("verifier", sa.Text, nullable=False),
        sa.Column("first_used_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("role", name="pk_signing_keys"),
    )
    with op.batch_alter_table("ledger_entries") as batch:
        batch.add_column(sa.Column("salt", sa.LargeBinary(32), nullable=True))
        batch.add_column(sa.Column("commitment", sa.LargeBinary(32), nullable=True))
    with op.batch_alter_table("ledger_head") as batch:
        batch.add_column(sa.Column("log_frontier", sa.LargeBinary, nullable=True))
        batch.add_column(sa.Column("checkpoint_hash", sa.String(64), nullable=True))
    _backfill(op.get_bind())
    with op.batch_alter_table("ledger_entries") as batch:
        batch.alter_column("salt", existing_type=sa.LargeBinary(32), nullable=False)
        batch.alter_column("commitment", existing_type=sa.LargeBinary(32), nullable=False)
    with op.batch_alter_table("ledger_head") as batch:
        batch.alter_column("log_frontier", existing_type=sa.LargeBinary, nullable=False)
        batch.alter_column("checkpoint_hash", existing_type=sa.String(64), nullable=False)


def _backfill(conn: sa.Connection) -> None:
    """Salts and commitments for the entries already stored, and the head's frontier. The
    hashing is written out here, as it stood at this revision, so later code cannot change
    what this migration did."""
    peaks: list[tuple[int, bytes]] = []
    last = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT seq, kind, recorded_at, body, prev_hash FROM ledger_entries "
                "WHERE seq > :last ORDER BY seq LIMIT 5000"
            ),
            {"last": last},
        ).all()
        updates = []
        for seq, kind, recorded_at, body, prev_hash in rows:
            encoded = json.dumps(
                {
                    "seq": seq,
                    "kind": kind,
                    "recorded_at": recorded_at,
                    "body": json.loads(body),
                    "prev": prev_hash,
                },
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode()
            salt = secrets.token_bytes(32)
            commitment = hashlib.sha256(salt + encoded).digest()
            updates.append({"s": seq, "salt": salt, "c": commitment})
            height, node = 0, hashlib.sha256(b"\x00" + commitment).digest()
            while peaks and peaks[-1][0] == height:
                node = hashlib.sha256(b"\x01" + peaks.pop()[1] + node).digest()
                height += 1
            peaks.append((height, node))
        if updates:
            conn.execute(
                sa.text("UPDATE ledger_entries SET salt = :salt, commitment = :c WHERE seq = :s"), updates
            )
        if len(rows) < 5000:
            break
        last = rows[-1][0]
    conn.execute(
        sa.text("UPDATE ledger_head SET log_frontier = :f, checkpoint_hash = :c WHERE id = 1"),
        {"f": b"".join(node for _, node in peaks), "c": "0" * 64},
    )


def downgrade() -> None:
    with op.batch_alter_table("ledger_head") as batch:
        batch.drop_column("checkpoint_hash")
        batch.drop_column("log_frontier")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_column("commitment")
        batch.drop_column("salt")
    op.drop_table("signing_keys")
    op.drop_table("log_tiles")
    op.drop_table("log_checkpoints")
