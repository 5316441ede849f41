"""Offline outlets, the server's side: enrolment of an outlet's journal key, the offline
allowance it downloads, and the sync of its journal (docs/offline.md).

Sync is one transaction per batch. Entries already synced are acknowledged again (a retry);
new ones are redeemed in counter order with the idempotency key their redemption was (or
would have been) sent with online, so one that reached the server online is not counted
again; what the balance no longer covers is recorded up to the balance and the rest kept as
an offline conflict for a person to settle. Nothing the outlet handed out is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa

from canasta.adapters import ledger_repo, redemption_repo
from canasta.adapters.db import transaction
from canasta.adapters.tables import (
    cards,
    cycles,
    entitlements,
    offline_caps,
    offline_conflicts,
    outlet_journal,
    outlet_keys,
    outlets,
    programmes,
    redemptions,
)
from canasta.domain.errors import CanastaError, Conflict, InvalidInput, NotFound
from canasta.domain.model import normalise_card_id
from canasta.domain.offline import (
    Allowance,
    SignedEntry,
    entry_signature_ok,
    public_key_from_text,
)
from canasta.domain.quantity import to_milli
from canasta.domain.redemption import Receipt, RedeemQuota
from canasta.domain.text import typed
from canasta.service.authz import Permission, Staff, require
from canasta.service.clock import utc_now_iso

BEYOND_BALANCE = "offline redemption beyond the balance left at sync"
REDEEMED_NOT_HANDED_OUT = (
    "redeemed from an online attempt whose answer the outlet never got; the outlet handed nothing out"
)

#: Entries one sync request may carry.
MAX_BATCH = 1000


def _programme_id(conn: sa.Connection, name: str) -> int:
    found = conn.scalar(sa.select(programmes.c.id).where(programmes.c.name == name))
    if found is None:
        raise NotFound(f"there is no programme {name!r}")
    return int(found)


def _require_outlet(conn: sa.Connection, code: str) -> None:
    if conn.scalar(sa.select(outlets.c.code).where(outlets.c.code == code)) is None:
        raise NotFound(f"there is no outlet {code!r}")


def set_offline_share(engine: sa.Engine, programme: str, share: str) -> int:
    """Set the share (0 to 1, e.g. "0.25") of a card's entitlement that may be redeemed
    offline; returns it in thousandths."""
    try:
        value = Decimal(share)
    except InvalidOperation:
        raise InvalidInput(f"the offline share {share!r} is not a number between 0 and 1") from None
    if not Decimal(0) <= value <= Decimal(1):
        raise InvalidInput(f"the offline share {share} is not between 0 and 1")
    permille = int(value * 1000)
    with transaction(engine) as conn:
        pid = _programme_id(conn, programme)
        conn.execute(
            programmes.update().where(programmes.c.id == pid).values(offline_share_permille=permille)
        )
    return permille


def set_daily_cap(engine: sa.Engine, outlet: str, programme: str, quantity: str) -> int:
    """Set what ``outlet`` may hand out of ``programme`` offline in one UTC day."""
    milli = to_milli(quantity)
    if milli < 0:
        raise InvalidInput("the daily offline cap must not be negative")
    with transaction(engine) as conn:
        _require_outlet(conn, outlet)
        pid = _programme_id(conn, programme)
        updated = conn.execute(
            offline_caps.update()
            .where(offline_caps.c.outlet_code == outlet, offline_caps.c.programme_id == pid)
            .values(daily_cap=milli)
        ).rowcount
        if not updated:
            conn.execute(offline_caps.insert().values(outlet_code=outlet, programme_id=pid, daily_cap=milli))
    return milli


def enrol(engine: sa.Engine, outlet: str, public_key: str) -> None:
    """Record the key ``outlet`` signs its journal with. Enrolling again with the same key
    is harmless; another key is refused (a journal signed by two keys could not be told
    from a forged one)."""
    public_key_from_text(public_key)  # refuses what is not an Ed25519 key
    with transaction(engine) as conn:
        _require_outlet(conn, outlet)
        known = conn.scalar(sa.select(outlet_keys.c.public_key).where(outlet_keys.c.outlet_code == outlet))
        if known == public_key:
            return
        if known is not None:
            raise Conflict(f"outlet {outlet!r} is already enrolled with another journal key")
        conn.execute(
            outlet_keys.insert().values(outlet_code=outlet, public_key=public_key, enrolled_at=utc_now_iso())
        )


def allowances(engine: sa.Engine, outlet: str) -> list[Allowance]:
    """What ``outlet`` may hand out offline, per programme with an open cycle, an offline
    share and a daily cap for it."""
    with transaction(engine, write=False) as conn:
        _require_outlet(conn, outlet)
        rows = conn.execute(
            sa.select(
                programmes.c.name,
                programmes.c.unit,
                programmes.c.offline_share_permille,
                cycles.c.id,
                cycles.c.starts_on,
                cycles.c.ends_on,
                offline_caps.c.daily_cap,
            )
            .join(cycles, sa.and_(cycles.c.programme_id == programmes.c.id, cycles.c.status == "open"))
            .join(
                offline_caps,
                sa.and_(offline_caps.c.programme_id == programmes.c.id, offline_caps.c.outlet_code == outlet),
            )
            .where(programmes.c.offline_share_permille > 0)
            .order_by(programmes.c.name)
        ).all()
        found = []
        for r in rows:
            reference = conn.scalar(
                sa.select(sa.func.min(entitlements.c.quantity)).where(
                    entitlements.c.cycle_id == r.id, entitlements.c.quantity > 0
                )
            )
            found.append(
                Allowance(
                    programme=r.name,
                    unit=r.unit,
                    cycle_id=int(r.id),
                    starts_on=str(r.starts_on),
                    ends_on=str(r.ends_on),
                    share_permille=int(r.offline_share_permille),
                    reference=int(reference or 0),
                    daily_cap=int(r.daily_cap),
                )
            )
        return found


@dataclass(frozen=True, slots=True)
class EntryOutcome:
    counter: int
    #: redeemed, replayed (it had reached the server online), conflict, or already (synced before)
    outcome: str
    ledger_seq: int | None = None
    applied: int = 0
    shortfall: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SyncReport:
    outlet: str
    outcomes: list[EntryOutcome]
    #: Counters this outlet has never synced below its highest synced counter.
    gaps: list[tuple[int, int]] = field(default_factory=list)
    highest: int = 0


def sync(
    engine: sa.Engine,
    outlet: str,
    entries: Sequence[SignedEntry],
    clock: Callable[[], str] = utc_now_iso,
) -> SyncReport:
    """Take a batch of the outlet's journal, all or nothing (see the module docstring)."""
    if len(entries) > MAX_BATCH:
        raise InvalidInput(f"a sync carries at most {MAX_BATCH} journal entries, not {len(entries)}")
    with transaction(engine) as conn:
        # The ledger lock first: a retried sync that overlaps one still running then sees
        # what the first one stored, instead of taking the same counters for new.
        ledger_repo.lock_head(conn)
        key_text = conn.scalar(sa.select(outlet_keys.c.public_key).where(outlet_keys.c.outlet_code == outlet))
        if key_text is None:
            raise Conflict(f"outlet {outlet!r} has not enrolled a journal key; run 'canasta outlet enrol'")
        key = public_key_from_text(key_text)
        seen: dict[int, SignedEntry] = {}
        for signed in entries:
            e = signed.entry
            if e.outlet != outlet:
                raise InvalidInput(f"journal entry {e.counter} is outlet {e.outlet!r}'s, not {outlet!r}'s")
            if not entry_signature_ok(signed, key):
                raise InvalidInput(
                    f"journal entry {e.counter}: the signature does not verify with the outlet's key"
                )
            twin = seen.get(e.counter)
            if twin is not None and twin.entry != e:
                raise InvalidInput(f"journal entry {e.counter} appears twice with different content")
            seen[e.counter] = signed
        stored = {
            int(r.counter): str(r.fingerprint)
            for r in conn.execute(
                sa.select(outlet_journal.c.counter, outlet_journal.c.fingerprint).where(
                    outlet_journal.c.outlet_code == outlet, outlet_journal.c.counter.in_(list(seen))
                )
            )
        }
        outcomes: dict[int, EntryOutcome] = {}
        for counter, fingerprint in stored.items():
            if fingerprint != seen[counter].entry.fingerprint():
                raise Conflict(
                    f"journal entry {counter} was synced before with other content: a counter is never reused"
                )
            outcomes[counter] = EntryOutcome(counter, "already")
        fresh = [seen[c] for c in sorted(seen) if c not in stored]
        now = clock()
        if fresh:
            outcomes.update(_apply(conn, outlet, fresh, clock, now))
        gaps, highest = _gaps(conn, outlet)
    return SyncReport(outlet, [outcomes[c] for c in sorted(outcomes)], gaps, highest)


def _card(card_id: str) -> str:
    """The canonical card id (the outlet recorded what it scanned or was typed); a malformed
    one is passed on as it is, to be refused as an unknown card and kept as a conflict."""
    try:
        return normalise_card_id(card_id)
    except CanastaError:
        return card_id


def _command(signed: SignedEntry, quantity: int | None = None) -> RedeemQuota:
    e = signed.entry
    return RedeemQuota(
        _card(e.card_id),
        e.programme,
        e.quantity if quantity is None else quantity,
        e.outlet,
        e.idempotency_key,
    )


def _apply(
    conn: sa.Connection, outlet: str, fresh: list[SignedEntry], clock: Callable[[], str], now: str
) -> dict[int, EntryOutcome]:
    """Redeem ``fresh`` (in counter order) in one batch under the ledger lock: each entry
    gets what its balance still allows after the entries before it, and the rest of it is a
    conflict. An entry whose key was already redeemed online is sent as it was (a retry)."""
    # Under the ledger lock (taken by ``sync``): balances cannot move between reading and redeeming.
    commands = {s.entry.counter: _command(s) for s in fresh}
    known = _redeemed_keys(conn, [c.key_hash() for c in commands.values()])
    outcomes: dict[int, EntryOutcome] = {}
    for signed in [s for s in fresh if s.entry.void]:
        counter = signed.entry.counter
        if commands[counter].key_hash() in known:
            # The server redeemed it from an online attempt whose answer the outlet never
            # got, and the outlet handed nothing out: a person must set it right.
            outcomes[counter] = EntryOutcome(
                counter,
                "conflict",
                known[commands[counter].key_hash()],
                signed.entry.quantity,
                0,
                REDEEMED_NOT_HANDED_OUT,
            )
        else:
            outcomes[counter] = EntryOutcome(counter, "void")
    left = _balances(conn, fresh)
    planned: dict[int, int] = {}  # counter → the quantity sent
    for signed in fresh:
        e = signed.entry
        if e.void:
            planned[e.counter] = 0
            continue
        if commands[e.counter].key_hash() in known:
            planned[e.counter] = e.quantity  # already redeemed online: answered as a retry
            continue
        slot = (_card(e.card_id), e.programme)
        balance = left.get(slot)
        if balance is None:  # no entitlement found: let the redemption say why
            planned[e.counter] = e.quantity
            continue
        applied = min(balance, e.quantity)
        left[slot] = balance - applied
        planned[e.counter] = applied
    sending = [s for s in fresh if planned[s.entry.counter] > 0]
    results = redemption_repo.redeem_in(conn, [_command(s, planned[s.entry.counter]) for s in sending], clock)
    answered = {s.entry.counter: r for s, r in zip(sending, results, strict=True)}
    for signed in fresh:
        counter, quantity = signed.entry.counter, signed.entry.quantity
        if signed.entry.void:
            continue
        result = answered.get(counter)
        if isinstance(result, Receipt):
            short = quantity - result.quantity if not result.replayed else 0
            if short <= 0:
                outcome = "replayed" if result.replayed else "redeemed"
                outcomes[counter] = EntryOutcome(counter, outcome, result.ledger_seq, result.quantity)
            else:
                outcomes[counter] = EntryOutcome(
                    counter, "conflict", result.ledger_seq, result.quantity, short, BEYOND_BALANCE
                )
        elif result is None:  # nothing was left to apply
            outcomes[counter] = EntryOutcome(counter, "conflict", None, 0, quantity, BEYOND_BALANCE)
        else:
            outcomes[counter] = EntryOutcome(counter, "conflict", None, 0, quantity, result.message)
    conn.execute(
        outlet_journal.insert(),
        [
            {
                "outlet_code": outlet,
                "counter": s.entry.counter,
                "fingerprint": s.entry.fingerprint(),
                "signature": s.as_dict()["signature"],
                "card_id": _card(s.entry.card_id),
                "programme": s.entry.programme,
                "quantity": s.entry.quantity,
                "void": s.entry.void,
                "recorded_at": s.entry.recorded_at,
                "received_at": now,
                "outcome": outcomes[s.entry.counter].outcome,
                "ledger_seq": outcomes[s.entry.counter].ledger_seq,
            }
            for s in fresh
        ],
    )
    conflicts = [o for o in outcomes.values() if o.outcome == "conflict"]
    if conflicts:
        by_counter = {s.entry.counter: s.entry for s in fresh}
        conn.execute(
            offline_conflicts.insert(),
            [
                {
                    "outlet_code": outlet,
                    "counter": o.counter,
                    "card_id": _card(by_counter[o.counter].card_id),
                    "programme": by_counter[o.counter].programme,
                    "quantity": by_counter[o.counter].quantity,
                    "applied": o.applied,
                    "shortfall": o.shortfall,
                    "reason": o.reason[:300],
                    "status": "open",
                    "created_at": now,
                }
                for o in conflicts
            ],
        )
    return outcomes


def _balances(conn: sa.Connection, entries: list[SignedEntry]) -> dict[tuple[str, str], int | None]:
    """(card, programme) → what its entitlement in the programme's open cycle has left, or
    None when there is no such entitlement (an unknown card, no open cycle, …)."""
    found: dict[tuple[str, str], int | None] = {}
    for signed in entries:
        e = signed.entry
        card_id = _card(e.card_id)
        slot = (card_id, e.programme)
        if slot in found:
            continue
        row = conn.execute(
            sa.select(entitlements.c.quantity, entitlements.c.redeemed)
            .select_from(
                cards.join(
                    entitlements,
                    sa.and_(
                        entitlements.c.beneficiary_kind == cards.c.beneficiary_kind,
                        entitlements.c.beneficiary_id == cards.c.beneficiary_id,
                    ),
                )
                .join(cycles, sa.and_(cycles.c.id == entitlements.c.cycle_id, cycles.c.status == "open"))
                .join(
                    programmes,
                    sa.and_(programmes.c.id == cycles.c.programme_id, programmes.c.name == e.programme),
                )
            )
            .where(cards.c.id == card_id)
        ).first()
        found[slot] = None if row is None else int(row.quantity) - int(row.redeemed)
    return found


def _redeemed_keys(conn: sa.Connection, key_hashes: list[str]) -> dict[str, int]:
    """Idempotency key hash → ledger position of the redemptions already recorded."""
    found: dict[str, int] = {}
    for start in range(0, len(key_hashes), 1000):
        chunk = key_hashes[start : start + 1000]
        found.update(
            (str(k), int(seq))
            for k, seq in conn.execute(
                sa.select(redemptions.c.key_hash, redemptions.c.ledger_seq).where(
                    redemptions.c.key_hash.in_(chunk)
                )
            )
        )
    return found


def _gaps(conn: sa.Connection, outlet: str) -> tuple[list[tuple[int, int]], int]:
    counters = list(
        conn.scalars(
            sa.select(outlet_journal.c.counter)
            .where(outlet_journal.c.outlet_code == outlet)
            .order_by(outlet_journal.c.counter)
        )
    )
    gaps: list[tuple[int, int]] = []
    expected = 1
    for c in counters:
        if c > expected:
            gaps.append((expected, int(c) - 1))
        expected = int(c) + 1
    return gaps, int(counters[-1]) if counters else 0


def open_conflicts(engine: sa.Engine, outlet: str | None = None, limit: int | None = None) -> list[sa.Row]:  # type: ignore[type-arg]
    with transaction(engine, write=False) as conn:
        query = (
            sa.select(offline_conflicts)
            .where(offline_conflicts.c.status == "open")
            .order_by(offline_conflicts.c.id)
            .limit(limit)
        )
        if outlet is not None:
            query = query.where(offline_conflicts.c.outlet_code == outlet)
        return list(conn.execute(query))


def settle_conflict(engine: sa.Engine, conflict_id: int, by: str, note: str) -> None:
    """A person's settlement of an offline conflict (recovered, written off, …): recorded with
    who and why; what was handed out and recorded does not change."""
    who, why = typed(by, "name").strip(), typed(note, "note").strip()
    if not who or len(who) > 100:
        raise InvalidInput("settling a conflict needs the name of who settles it (at most 100 characters)")
    if not why or len(why) > 500:
        raise InvalidInput("settling a conflict needs a note of at most 500 characters saying how")
    with transaction(engine) as conn:
        settled = conn.execute(
            offline_conflicts.update()
            .where(offline_conflicts.c.id == conflict_id, offline_conflicts.c.status == "open")
            .values(status="settled", decided_by=who, decided_at=utc_now_iso(), note=why)
        ).rowcount
        if not settled:
            exists = conn.scalar(
                sa.select(offline_conflicts.c.id).where(offline_conflicts.c.id == conflict_id)
            )
            if exists is None:
                raise NotFound(f"there is no offline conflict {conflict_id}")
            raise Conflict(f"offline conflict {conflict_id} is already settled")


def settle_conflict_for(engine: sa.Engine, actor: Staff, conflict_id: int, note: str) -> None:
    """An outlet manager settles a conflict from the staff pages, under their user name."""
    require(actor, Permission.MANAGE_OUTLETS)
    settle_conflict(engine, conflict_id, actor.username, note)
