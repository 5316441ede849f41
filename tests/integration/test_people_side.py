"""The people's side on the real databases: staff accounts and sessions, PINs, the access
log (invariant 6) and appeals (invariant 5), through the service layer."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from canasta.adapters.redemption_repo import SqlRedemptionStore
from canasta.adapters.tables import access_log, appeals, card_pins, staff_users, web_sessions
from canasta.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    SignInLocked,
    SignInRefused,
)
from canasta.domain.model import CardStatus
from canasta.domain.redemption import RedeemQuota
from canasta.service import access, portal, records, sessions, staff
from canasta.service import appeals as appeal_service
from canasta.service import cards as card_service
from canasta.service.authz import Role, Staff
from canasta.service.redemption import RedemptionDesk
from canasta.service.transparency import LogView
from tests.helpers import World, build_world

PASSWORD = "correct horse battery"


def _officer(engine: sa.Engine, role: Role = Role.PROGRAMME_OFFICER, name: str = "Ana Officer") -> Staff:
    account = staff.create_account(engine, role.value.replace("_", "-"), name, role.value, PASSWORD)
    return Staff(account.id, account.username, account.name, account.role)


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def _redeem(engine: sa.Engine, card: str, programme: str, quantity: int, key: str) -> int:
    desk = RedemptionDesk(SqlRedemptionStore(engine)).start()
    try:
        outlet = "fs-1" if programme == "fuel" else "shop-1"
        receipt = desk.redeem(RedeemQuota(card, programme, quantity, outlet, key), acting_outlet=outlet)
    finally:
        desk.stop()
    return receipt.ledger_seq


# -- staff accounts --------------------------------------------------------------------------


def test_a_staff_account_signs_in_and_bad_accounts_are_refused(engine: sa.Engine) -> None:
    made = staff.create_account(engine, "Ana.Perez", "Ana  Pérez", "registrar", PASSWORD)
    assert (made.username, made.name, made.role) == ("ana.perez", "Ana Pérez", Role.REGISTRAR)
    stored = _stored_hash(engine, "ana.perez")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert staff.authenticate(engine, "ANA.PEREZ", PASSWORD).id == made.id
    with pytest.raises(Conflict, match="already"):
        staff.create_account(engine, "ana.perez", "Other", "auditor", PASSWORD)
    with pytest.raises(InvalidInput, match="role"):
        staff.create_account(engine, "bo", "Bo", "mayor", PASSWORD)
    with pytest.raises(InvalidInput, match="12 characters"):
        staff.create_account(engine, "bo", "Bo", "auditor", "short")
    with pytest.raises(InvalidInput, match="user name"):
        staff.create_account(engine, "1 bad name", "Bo", "auditor", PASSWORD)
    assert _count(engine, staff_users) == 1


def _stored_hash(engine: sa.Engine, username: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.scalar(sa.select(staff_users.c.password_hash).where(staff_users.c.username == username))
        )


def test_five_wrong_passwords_lock_the_account_until_its_time(engine: sa.Engine) -> None:
    staff.create_account(engine, "ana", "Ana", "auditor", PASSWORD)
    for _ in range(4):
        with pytest.raises(SignInRefused):
            staff.authenticate(engine, "ana", "wrong password!")
    assert staff.authenticate(engine, "ana", PASSWORD).username == "ana"  # resets the count
    for _ in range(5):
        with pytest.raises(SignInRefused):
            staff.authenticate(engine, "ana", "wrong password!")
    with pytest.raises(SignInLocked) as locked:
        staff.authenticate(engine, "ana", PASSWORD)
    until = datetime.fromisoformat(locked.value.until)
    assert timedelta(minutes=14) < until - datetime.now(UTC) <= timedelta(minutes=15)
    with engine.begin() as conn:
        conn.execute(sa.update(staff_users).values(locked_until="2000-01-01T00:00:00+00:00"))
    assert staff.authenticate(engine, "ana", PASSWORD).username == "ana"


def test_an_unknown_user_and_a_disabled_account_get_the_same_refusal(engine: sa.Engine) -> None:
    staff.create_account(engine, "ana", "Ana", "auditor", PASSWORD)
    token, _ = sessions.start(engine, "staff", str(staff.authenticate(engine, "ana", PASSWORD).id))
    staff.set_active(engine, None, "ana", False)
    assert sessions.find(engine, "staff", token) is None  # its session ended with it
    for name in ("ana", "nobody"):
        with pytest.raises(SignInRefused, match="user name or password is wrong"):
            staff.authenticate(engine, name, PASSWORD)
    staff.set_active(engine, None, "ana", True)
    assert staff.authenticate(engine, "ana", PASSWORD).username == "ana"


def test_only_an_administrator_manages_accounts_and_not_their_own(engine: sa.Engine) -> None:
    admin = _officer(engine, Role.ADMIN, "Root")
    officer = _officer(engine)
    with pytest.raises(Forbidden):
        staff.add_account(engine, officer, "eve", "Eve", "admin", PASSWORD)
    with pytest.raises(Forbidden):
        staff.list_accounts(engine, officer)
    staff.add_account(engine, admin, "eve", "Eve", "registrar", PASSWORD)
    with pytest.raises(InvalidInput, match="your own"):
        staff.set_active(engine, admin, admin.username, False)
    assert {a.username for a in staff.list_accounts(engine, admin)} == {"admin", "programme-officer", "eve"}


# -- sessions --------------------------------------------------------------------------------


def test_sessions_keep_only_a_hash_and_expire_idle_or_old(engine: sa.Engine) -> None:
    token, session = sessions.start(engine, "portal", "CARD")
    with engine.connect() as conn:
        stored = conn.execute(sa.select(web_sessions)).one()
    assert stored.token_hash != token and len(stored.token_hash) == 64
    assert sessions.find(engine, "portal", token) == session
    assert sessions.find(engine, "staff", token) is None  # a portal token opens no staff page
    assert sessions.find(engine, "portal", token + "x") is None
    idle = (datetime.now(UTC) - timedelta(minutes=16)).isoformat(timespec="seconds")
    with engine.begin() as conn:
        conn.execute(sa.update(web_sessions).values(last_seen_at=idle))
    assert sessions.find(engine, "portal", token) is None
    assert _count(engine, web_sessions) == 0  # an expired session is deleted when met
    token, _ = sessions.start(engine, "staff", "1")
    with engine.begin() as conn:
        conn.execute(sa.update(web_sessions).values(expires_at="2000-01-01T00:00:00+00:00"))
    assert sessions.find(engine, "staff", token) is None
    token, _ = sessions.start(engine, "staff", "1")
    sessions.end(engine, token)
    assert sessions.find(engine, "staff", token) is None


# -- PINs and the portal ---------------------------------------------------------------------


def test_a_pin_signs_in_its_card_and_five_wrong_lock_it(engine: sa.Engine) -> None:
    world = build_world(engine)
    card = world.household_cards["H2"]
    with pytest.raises(InvalidInput, match="4 to 8 digits"):
        portal.set_pin(engine, card, "12a4")
    with pytest.raises(InvalidInput, match="too easy"):
        portal.set_pin(engine, card, "1234")
    with pytest.raises(NotFound):
        portal.set_pin(engine, "2QXR718S1A884S93", "4826")
    portal.set_pin(engine, card, "4826")
    assert portal.sign_in(engine, card.lower(), "4826") == card
    for wrong in ("0000", "card"):
        with pytest.raises(SignInRefused, match="card number or PIN is wrong"):
            portal.sign_in(
                engine,
                card if wrong == "0000" else "2QXR-718S-1A88-4S93",
                "4826" if wrong == "card" else wrong,
            )
    for _ in range(4):
        with pytest.raises(SignInRefused):
            portal.sign_in(engine, card, "9999")
    with pytest.raises(SignInLocked):
        portal.sign_in(engine, card, "4826")
    with engine.begin() as conn:
        conn.execute(sa.update(card_pins).values(locked_until="2000-01-01T00:00:00+00:00"))
    assert portal.sign_in(engine, card, "4826") == card


def test_a_withdrawn_card_loses_its_pin_and_sessions(engine: sa.Engine) -> None:
    world = build_world(engine)
    card = world.household_cards["H2"]
    portal.set_pin(engine, card, "4826")
    token, _ = sessions.start(engine, "portal", card)
    card_service.withdraw_card(engine, card, CardStatus.LOST)
    assert sessions.find(engine, "portal", token) is None
    with pytest.raises(SignInRefused):
        portal.sign_in(engine, card, "4826")


def test_the_portal_shows_the_holders_entitlements_history_and_receipts(engine: sa.Engine) -> None:
    world = build_world(engine)
    card = world.vehicle_cards["AB0001"]
    seq = _redeem(engine, card, "fuel", 12_500, "k1")
    other = _redeem(engine, world.vehicle_cards["AB0002"], "fuel", 1_000, "k2")
    (entitled,) = portal.entitlements(engine, card, "es")
    assert entitled.balance.programme == "fuel" and entitled.balance.remaining == 27_500
    assert entitled.explained is not None and entitled.explained.explanation.language == "es"
    (taken,) = portal.history(engine, card)
    assert (taken.ledger_seq, taken.quantity, taken.outlet) == (seq, 12_500, "fs-1")
    view = LogView(engine)
    assert portal.receipt(view, card, seq).entry.body["card"] == card
    with pytest.raises(NotFound):
        portal.receipt(view, card, other)  # another holder's receipt is "not found"
    new = card_service.reissue_card(engine, card)
    assert [t.ledger_seq for t in portal.history(engine, new.id)] == [seq]  # the old card's too
    assert portal.receipt(view, new.id, seq).entry.body["card"] == card


# -- the access log --------------------------------------------------------------------------


def test_opening_a_record_needs_a_purpose_and_the_holder_sees_the_read(engine: sa.Engine) -> None:
    world = build_world(engine)
    officer = _officer(engine)
    with pytest.raises(InvalidInput, match="purpose"):
        records.open_household(engine, officer, "H2", "   why ")
    assert _count(engine, access_log) == 0
    record = records.open_household(engine, officer, "H2", "Answering the  holder's appeal")
    assert record.ref == "H2" and len(record.members) == 2 and record.cards
    assert [(a.actor_name, a.actor_role, a.purpose, a.what) for a in record.accesses] == [
        ("Ana Officer", "programme_officer", "Answering the holder's appeal", "record")
    ]
    (seen,) = portal.access_log(engine, world.household_cards["H2"])
    assert (seen.actor_name, seen.purpose) == ("Ana Officer", "Answering the holder's appeal")
    assert portal.access_log(engine, world.household_cards["H3"]) == []
    with pytest.raises(NotFound):
        records.open_household(engine, officer, "H99", "Answering the holder's appeal")


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OUTLET_MANAGER])
def test_roles_without_the_right_read_no_record_and_leave_no_entry(engine: sa.Engine, role: Role) -> None:
    build_world(engine)
    who = _officer(engine, role)
    with pytest.raises(Forbidden):
        records.open_household(engine, who, "H2", "Just looking around here")
    with pytest.raises(Forbidden):
        records.search(engine, who, "H2", "Just looking around here")
    assert _count(engine, access_log) == 0


def test_a_search_logs_every_household_it_shows(engine: sa.Engine) -> None:
    world = build_world(engine)
    registrar = _officer(engine, Role.REGISTRAR, "Rita Registrar")
    by_ref = records.search(engine, registrar, "H3", "Enrolment: checking a new registration")
    assert [h.household_ref for h in by_ref] == ["H3"] and by_ref[0].members == 3
    by_card = records.search(engine, registrar, world.household_cards["H4"].lower(), "Replacing a lost card")
    assert [h.household_ref for h in by_card] == ["H4"]
    with engine.connect() as conn:
        name = conn.execute(sa.text("SELECT family_name, given_names FROM persons ORDER BY id LIMIT 1")).one()
    by_name = records.search(
        engine, registrar, f"{name.family_name} {name.given_names[:2]}", "Correcting the record"
    )
    assert by_name and all(h.matched for h in by_name)
    with engine.connect() as conn:
        logged = conn.execute(sa.select(access_log.c.what, sa.func.count()).group_by(access_log.c.what)).all()
    assert dict(logged) == {"search result": 2 + len(by_name)}
    with pytest.raises(InvalidInput):
        records.search(engine, registrar, "x", "Correcting the record")


def test_a_partner_read_carries_its_consent(engine: sa.Engine) -> None:
    world = build_world(engine)
    with engine.begin() as conn:
        hid = conn.scalar(sa.text("SELECT id FROM households WHERE ref = 'H1'"))
        access.record_partner_read(
            conn, 7, "Civil registry", [int(hid), int(hid)], "eligibility check", "search result", {"ts": "x"}
        )
    (seen,) = portal.access_log(engine, world.household_cards["H1"])
    assert (seen.actor_kind, seen.actor_name, seen.actor_role) == (
        "partner",
        "Civil registry",
        "partner system",
    )
    with engine.connect() as conn:
        assert conn.scalar(sa.select(access_log.c.consent)) == '{"ts":"x"}'


# -- appeals ---------------------------------------------------------------------------------


def _world_with_appeal(engine: sa.Engine) -> tuple[World, int]:
    world = build_world(engine)
    card = world.household_cards["H2"]
    (entitled,) = portal.entitlements(engine, card, "en")
    filed = appeal_service.file_appeal(
        engine,
        card,
        "entitlement",
        "My mother lives with us now.",
        entitlement_id=entitled.balance.entitlement_id,
    )
    return world, filed.id


def test_an_appeal_is_decided_once_with_a_reason_the_holder_reads(engine: sa.Engine) -> None:
    world, appeal_id = _world_with_appeal(engine)
    officer = _officer(engine)
    auditor = _officer(engine, Role.AUDITOR, "Aldo Auditor")
    (waiting,) = appeal_service.inbox(engine, auditor)
    assert (waiting.id, waiting.status, waiting.household_ref) == (appeal_id, "open", "H2")
    opened = appeal_service.open_appeal(engine, officer, appeal_id, "Deciding the holder's appeal")
    assert opened.statement == "My mother lives with us now."
    with pytest.raises(Forbidden):
        appeal_service.decide(engine, auditor, appeal_id, "upheld", "Looks right to me.")
    with pytest.raises(InvalidInput, match="10 characters"):
        appeal_service.decide(engine, officer, appeal_id, "upheld", "ok")
    with pytest.raises(InvalidInput):
        appeal_service.decide(engine, officer, appeal_id, "maybe", "Looks right to me.")
    decided = appeal_service.decide(
        engine, officer, appeal_id, "upheld", "The record is corrected: five members."
    )
    assert (decided.status, decided.decided_by) == ("upheld", "Ana Officer")
    with pytest.raises(Conflict, match="already decided"):
        appeal_service.decide(engine, officer, appeal_id, "rejected", "Changed my mind about it.")
    (mine,) = appeal_service.appeals_of_holder(engine, world.household_cards["H2"])
    assert (mine.status, mine.reason) == ("upheld", "The record is corrected: five members.")
    assert appeal_service.appeals_of_holder(engine, world.household_cards["H3"]) == []
    assert appeal_service.inbox(engine, auditor) == []
    (seen,) = portal.access_log(engine, world.household_cards["H2"])
    assert (seen.what, seen.purpose) == ("appeal", "Deciding the holder's appeal")


def test_an_appeal_may_only_name_the_holders_own_entitlement_or_redemption(engine: sa.Engine) -> None:
    world = build_world(engine)
    mine, theirs = world.vehicle_cards["AB0001"], world.vehicle_cards["AB0002"]
    (their_entitlement,) = portal.entitlements(engine, theirs, "en")
    their_seq = _redeem(engine, theirs, "fuel", 1_000, "k1")
    my_seq = _redeem(engine, mine, "fuel", 1_000, "k2")
    with pytest.raises(NotFound):
        appeal_service.file_appeal(
            engine,
            mine,
            "entitlement",
            "Not enough fuel for work.",
            entitlement_id=their_entitlement.balance.entitlement_id,
        )
    with pytest.raises(NotFound):
        appeal_service.file_appeal(engine, mine, "redemption", "I never received this.", ledger_seq=their_seq)
    with pytest.raises(InvalidInput, match="choose the entitlement"):
        appeal_service.file_appeal(engine, mine, "entitlement", "Not enough fuel for work.")
    with pytest.raises(InvalidInput, match="about"):
        appeal_service.file_appeal(engine, mine, "politics", "Not enough fuel for work.")
    assert _count(engine, appeals) == 0
    filed = appeal_service.file_appeal(
        engine, mine, "redemption", "The pump gave me less.", ledger_seq=my_seq
    )
    assert (filed.ledger_seq, filed.entitlement_id) == (my_seq, None)
    refused = appeal_service.file_appeal(engine, mine, "redemption", "They refused my card today.")
    assert refused.ledger_seq is None


def test_a_burst_of_wrong_pins_gets_five_checks_before_the_lock(engine: sa.Engine) -> None:
    """Twenty guesses at once: each attempt is reserved before its PIN is checked, so no
    more than five are ever checked before the lock holds, on either database."""
    from concurrent.futures import ThreadPoolExecutor

    world = build_world(engine)
    card = world.household_cards["H2"]
    portal.set_pin(engine, card, "4826")

    def guess(n: int) -> str:
        try:
            portal.sign_in(engine, card, f"{1000 + n}")
        except SignInLocked:
            return "locked"
        except SignInRefused:
            return "refused"
        return "in"

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(guess, range(20)))
    assert outcomes.count("refused") == 5 and outcomes.count("locked") == 15
    with engine.connect() as conn:
        assert conn.scalar(sa.select(card_pins.c.failed_attempts)) == 5


def test_a_new_password_ends_the_accounts_sessions(engine: sa.Engine) -> None:
    account = staff.create_account(engine, "ana", "Ana", "auditor", PASSWORD)
    token, _ = sessions.start(engine, "staff", str(account.id))
    staff.set_password(engine, "ana", "another long password")
    assert sessions.find(engine, "staff", token) is None
    with pytest.raises(SignInRefused):
        staff.authenticate(engine, "ana", PASSWORD)
    assert staff.authenticate(engine, "ana", "another long password").id == account.id


def test_a_name_search_folds_accented_capitals_on_both_databases(engine: sa.Engine) -> None:
    build_world(engine)
    registrar = _officer(engine, Role.REGISTRAR, "Rita Registrar")
    with engine.begin() as conn:
        first = conn.scalar(
            sa.text(
                "SELECT min(p.id) FROM persons p JOIN households h ON h.id = p.household_id "
                "WHERE h.ref = 'H3'"
            )
        )
        conn.execute(
            sa.text(
                "UPDATE persons SET family_name = 'Álvarez', given_names = 'Ángela María' WHERE id = :id"
            ),
            {"id": first},
        )
    for query in ("álvarez", "ÁLVAREZ", "Álvarez ángela"):
        hits = records.search(engine, registrar, query, "Correcting the record")
        assert [h.household_ref for h in hits] == ["H3"], query
