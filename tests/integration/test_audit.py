"""``canasta audit`` against direct tampering with the database: every kind of change,
deletion, insertion and reordering is detected, naming the entry."""

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from canasta.adapters import ledger_repo
from canasta.adapters.redemption_repo import SqlRedemptionStore
from canasta.adapters.tables import ledger_entries, ledger_head, redemptions
from canasta.domain.ledger import LedgerEntry
from canasta.domain.merkle import Frontier, leaf_hash
from canasta.domain.receipt import commitment
from canasta.domain.redemption import RedeemQuota
from canasta.service.audit import run_audit
from tests.helpers import build_world


def seeded(engine: sa.Engine) -> None:
    """Two policies published with their programmes (entries 1, 3), two cycles opened (2, 4),
    then six redemptions (entries 5 to 10)."""
    world = build_world(engine)
    cards = list(world.vehicle_cards.values())
    commands = [RedeemQuota(cards[n % 3], "fuel", 1000 * (n + 1), "fs-1", f"k{n}") for n in range(6)]
    SqlRedemptionStore(engine).run_batch(commands, lambda: "2026-11-05T10:00:00.000000Z")


def sql(*statements: str) -> Callable[[sa.Connection], None]:
    def run(conn: sa.Connection) -> None:
        for statement in statements:
            conn.exec_driver_sql(statement)

    return run


TAMPERING = {
    "changed body": (
        sql(
            "UPDATE ledger_entries SET body = replace(body, '\"quantity\":3000', '\"quantity\":300') "
            "WHERE seq = 7"
        ),
        "entry 7: content was changed",
    ),
    "changed time": (
        sql("UPDATE ledger_entries SET recorded_at = '2026-11-05T09:00:00.000000Z' WHERE seq = 6"),
        "entry 6: content was changed",
    ),
    "rewritten hash": (
        # Always a change: a hash that already began with "ab" would be left as it was.
        sql(
            "UPDATE ledger_entries SET entry_hash = CASE WHEN substr(entry_hash, 1, 2) = 'ab' THEN 'cd'"
            " ELSE 'ab' END || substr(entry_hash, 3) WHERE seq = 8"
        ),
        "entry 8: content was changed",
    ),
    "deleted entry": (sql("DELETE FROM ledger_entries WHERE seq = 6"), "entry 6: entry 6 is missing"),
    "deleted last entry": (
        sql("DELETE FROM ledger_entries WHERE seq = 10"),
        "entry 10: entry 10 is missing from the end",
    ),
    "inserted entry": (
        sql(
            "INSERT INTO ledger_entries "
            "(seq, kind, recorded_at, body, prev_hash, entry_hash, salt, commitment) "
            "SELECT 11, kind, recorded_at, body, entry_hash, entry_hash, salt, commitment "
            "FROM ledger_entries WHERE seq = 10"
        ),
        "entry 11: ",
    ),
    "reordered entries": (
        sql(
            "UPDATE ledger_entries SET seq = -7 WHERE seq = 7",
            "UPDATE ledger_entries SET seq = 7 WHERE seq = 8",
            "UPDATE ledger_entries SET seq = 8 WHERE seq = -7",
        ),
        "entry 7: ",
    ),
    "unparseable body": (
        sql("UPDATE ledger_entries SET body = 'not json' WHERE seq = 9"),
        "entry 9: content",
    ),
    "changed redemption": (
        sql("UPDATE redemptions SET quantity = 1 WHERE ledger_seq = 5"),
        "entry 5: redemption 5 no longer matches its ledger entry",
    ),
    "deleted redemption": (
        sql("DELETE FROM redemptions WHERE ledger_seq = 9"),
        "entry 9: its redemption is missing from the redemptions table",
    ),
    "changed balance": (
        sql("UPDATE entitlements SET redeemed = redeemed - 1000 WHERE redeemed > 1000"),
        "but its redemptions add up to",
    ),
    "unknown outlet": (
        sql("UPDATE redemptions SET outlet_code = 'ghost' WHERE ledger_seq = 6"),
        "redemption 6 names outlet 'ghost', which does not exist",
    ),
    "unknown card": (
        sql("UPDATE redemptions SET card_id = '0000000000000000' WHERE ledger_seq = 7"),
        "redemption 7 names card '0000000000000000', which does not exist",
    ),
    "raised entitlement": (
        sql("UPDATE entitlements SET quantity = quantity + 5000 WHERE id = 1"),
        "was opened with",
    ),
    "reopened cycle": (
        sql(
            "UPDATE cycles SET status = 'closed', closed_at = 'x' WHERE id = 1",
        ),
        "cycle 1 is closed but no ledger entry closed it",
    ),
    "card made lost by hand": (
        sql("UPDATE cards SET status = 'lost' WHERE id = (SELECT MIN(id) FROM cards)"),
        "but no ledger entry withdrew it",
    ),
    "moved head": (sql("UPDATE ledger_head SET seq = 9"), "entries were added after the recorded head"),
    # The transparency log. Checkpoints were signed at sizes 1, 2, 3, 4 and 10 (one per append).
    "changed commitment": (
        sql("UPDATE ledger_entries SET commitment = salt WHERE seq = 4"),
        "entry 4: its commitment in the public log does not open to it",
    ),
    "changed salt": (
        sql("UPDATE ledger_entries SET salt = commitment WHERE seq = 3"),
        "entry 3: its commitment in the public log does not open to it",
    ),
    "entry rewritten with a fresh hash and commitment": (
        # Whoever rewrites an entry can recompute its hash, the chain and its commitment, but
        # not re-sign the checkpoints over it.
        "rewrite",
        "checkpoint of size 10: the leaves no longer hash to the root it signs",
    ),
    "changed checkpoint": (
        sql("UPDATE log_checkpoints SET note = replace(note, 'time 2026', 'time 2025') WHERE size = 2"),
        "checkpoint of size 2: its signed note does not verify",
    ),
    "changed checkpoint root": (
        sql(
            "UPDATE log_checkpoints SET root = (SELECT root FROM log_checkpoints WHERE size = 1) "
            "WHERE size = 3"
        ),
        "checkpoint of size 3: its stored root is not the root its note signs",
    ),
    "deleted checkpoint": (
        sql("DELETE FROM log_checkpoints WHERE size = 3"),
        "checkpoint of size 4: the checkpoint before it is missing",
    ),
    "deleted latest checkpoint": (
        sql("DELETE FROM log_checkpoints WHERE size = 10"),
        "ledger head: the last checkpoint it names is not the last stored",
    ),
    "inserted checkpoint": (
        sql(
            "INSERT INTO log_checkpoints (size, root, signed_at, note) "
            "SELECT 7, root, signed_at, note FROM log_checkpoints WHERE size = 4"
        ),
        "checkpoint of size 7: holds the note of a tree of 4",
    ),
    "reordered checkpoints": (
        sql(
            "UPDATE log_checkpoints SET size = -2 WHERE size = 2",
            "UPDATE log_checkpoints SET size = 2 WHERE size = 3",
            "UPDATE log_checkpoints SET size = 3 WHERE size = -2",
        ),
        "checkpoint of size 2: holds the note of a tree of 3",
    ),
    "changed log frontier": (
        sql("UPDATE ledger_head SET log_frontier = (SELECT commitment FROM ledger_entries WHERE seq = 1)"),
        "ledger head: its record of the log's tree is not the tree of the stored entries",
    ),
}


def rewrite(conn: sa.Connection) -> None:
    """Change entry 7 and recompute everything that can be recomputed without the key: its
    hash, the links after it, every commitment and the head."""
    entries = list(ledger_repo.iter_logged_entries(conn))
    prev = entries[5][0].entry_hash
    for entry, salt, _ in entries[6:]:
        body = dict(entry.body)
        if entry.seq == 7:
            body["quantity"] = 1
        new = LedgerEntry.create(entry.seq, entry.kind, entry.recorded_at, body, prev)
        prev = new.entry_hash
        conn.execute(
            ledger_entries.update()
            .where(ledger_entries.c.seq == entry.seq)
            .values(
                body=ledger_repo.encode_body(body),
                prev_hash=new.prev_hash,
                entry_hash=new.entry_hash,
                commitment=commitment(new, salt),
            )
        )
        conn.execute(redemptions.update().where(redemptions.c.ledger_seq == 7).values(quantity=1))
    frontier = Frontier()
    for row in conn.execute(sa.select(ledger_entries.c.commitment).order_by(ledger_entries.c.seq)):
        frontier.append(leaf_hash(bytes(row.commitment)))
    conn.execute(ledger_head.update().values(entry_hash=prev, log_frontier=frontier.to_bytes()))


@pytest.mark.parametrize("how", list(TAMPERING))
def test_tampering_is_detected_and_named(engine: sa.Engine, how: str) -> None:
    seeded(engine)
    assert run_audit(engine).ok
    tamper, expected = TAMPERING[how]
    with engine.begin() as conn:
        rewrite(conn) if tamper == "rewrite" else tamper(conn)  # type: ignore[operator]
    report = run_audit(engine)
    assert not report.ok
    assert any(expected in p for p in report.problems), report.problems
