"""``canasta audit`` against direct tampering with the database: every kind of change,
deletion, insertion and reordering is detected, naming the entry."""

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from canasta.adapters.redemption_repo import SqlRedemptionStore
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
        sql("UPDATE ledger_entries SET entry_hash = 'ab' || substr(entry_hash, 3) WHERE seq = 8"),
        "entry 8: content was changed",
    ),
    "deleted entry": (sql("DELETE FROM ledger_entries WHERE seq = 6"), "entry 6: entry 6 is missing"),
    "deleted last entry": (
        sql("DELETE FROM ledger_entries WHERE seq = 10"),
        "entry 10: entry 10 is missing from the end",
    ),
    "inserted entry": (
        sql(
            "INSERT INTO ledger_entries (seq, kind, recorded_at, body, prev_hash, entry_hash) "
            "SELECT 11, kind, recorded_at, body, entry_hash, entry_hash FROM ledger_entries WHERE seq = 10"
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
}


@pytest.mark.parametrize("how", list(TAMPERING))
def test_tampering_is_detected_and_named(engine: sa.Engine, how: str) -> None:
    seeded(engine)
    assert run_audit(engine).ok
    tamper, expected = TAMPERING[how]
    with engine.begin() as conn:
        tamper(conn)
    report = run_audit(engine)
    assert not report.ok
    assert any(expected in p for p in report.problems), report.problems
