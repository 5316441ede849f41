"""``canasta audit``: recompute the ledger chain and reconcile it with the stored redemptions
and balances. Reports every problem it finds, naming the entry, redemption or entitlement."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa

from canasta.adapters import ledger_repo, log_repo
from canasta.adapters.log_repo import StoredCheckpoint
from canasta.adapters.tables import (
    cards,
    cycles,
    entitlements,
    households,
    ledger_entries,
    offline_conflicts,
    outlet_journal,
    outlets,
    person_merges,
    persons,
    policies,
    programmes,
    redemptions,
    vehicles,
)
from canasta.domain.ledger import EntryKind, LedgerEntry, LedgerProblem, verify_chain
from canasta.domain.merkle import Frontier, leaf_hash
from canasta.domain.receipt import SALT_BYTES, commitment
from canasta.domain.redemption import NewRedemption, key_hash, redemption_body
from canasta.domain.signed_note import BadNote, Checkpoint, Verifier, open_note
from canasta.domain.transparency import (
    NO_CHECKPOINT,
    checkpoint_prev,
    checkpoint_time,
    expand_tile,
    note_hash,
)
from canasta.policy.document import policy_hash
from canasta.service.keys import KeyProblem
from canasta.service.transparency import TILE_WIDTH, keyring_of

CHUNK = 5000


@dataclass(slots=True)
class AuditReport:
    entries: int = 0
    redemptions: int = 0
    entitlements: int = 0
    checkpoints: int = 0
    ledger: list[LedgerProblem] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.ledger and not self.log and not self.records

    @property
    def problems(self) -> list[str]:
        return [str(p) for p in self.ledger] + self.log + self.records

    @property
    def first(self) -> str | None:
        problems = self.problems
        return problems[0] if problems else None


def run_audit(engine: sa.Engine, progress: Callable[[int, int], None] | None = None) -> AuditReport:
    """Audit everything on one snapshot; ``progress(done, total)`` hears of the entries."""
    report = AuditReport()
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():  # one snapshot: a running server's new entries are not half-seen
            head = ledger_repo.read_head(conn)
            redemption_entries: dict[int, LedgerEntry] = {}
            other_entries: list[LedgerEntry] = []  # cycles and card withdrawals: few

            log = LogAudit(conn, _log_verifiers(engine, conn), report)

            def counted() -> Iterator[LedgerEntry]:
                total = head[0] if head else 0
                for entry, salt, leaf in ledger_repo.iter_logged_entries(conn, CHUNK):
                    log.add(entry, salt, leaf)
                    report.entries += 1
                    if progress and report.entries % CHUNK == 0:
                        progress(report.entries, max(total, report.entries))
                    if entry.kind == EntryKind.REDEMPTION:
                        redemption_entries[entry.seq] = entry
                        if len(redemption_entries) >= CHUNK:
                            _check_redemptions(conn, redemption_entries, report)
                            redemption_entries.clear()
                    else:
                        other_entries.append(entry)
                    yield entry

            report.ledger.extend(verify_chain(counted(), head))
            log.finish()
            _check_redemptions(conn, redemption_entries, report)
            _check_orphans(conn, report)
            _check_balances(conn, report)
            _check_cycles(conn, other_entries, report)
            _check_cards(conn, other_entries, report)
            _check_policies(conn, other_entries, report)
            _check_merges(conn, other_entries, report)
            _check_outlet_journals(conn, report)
    return report


def _check_outlet_journals(conn: sa.Connection, report: AuditReport) -> None:
    """Each synced journal entry is what its outcome says: a redemption under the journal's
    own key at the position it names (redeemed, replayed, or the part a conflict recorded),
    nothing for a void one, and every conflict has its journal entry."""
    journal = conn.execute(
        sa.select(
            outlet_journal.c.outlet_code,
            outlet_journal.c.counter,
            outlet_journal.c.outcome,
            outlet_journal.c.ledger_seq,
            redemptions.c.key_hash,
            redemptions.c.outlet_code.label("redeemed_at"),
        )
        .select_from(
            outlet_journal.outerjoin(redemptions, redemptions.c.ledger_seq == outlet_journal.c.ledger_seq)
        )
        .order_by(outlet_journal.c.outlet_code, outlet_journal.c.counter)
    ).all()
    for r in journal:
        where = f"outlet {r.outlet_code} journal entry {r.counter}"
        if r.outcome in ("redeemed", "replayed") and r.ledger_seq is None:
            report.records.append(f"{where} is {r.outcome} but names no ledger entry")
        if r.outcome == "void" and r.ledger_seq is not None:
            report.records.append(f"{where} is void but names ledger entry {r.ledger_seq}")
        if r.ledger_seq is None:
            continue
        if r.key_hash != key_hash(r.outlet_code, f"journal-{r.counter}") or r.redeemed_at != r.outlet_code:
            report.records.append(f"{where} names ledger entry {r.ledger_seq}, which is not its redemption")
    # An online request that arrived after its entry was synced as void (a late answer the
    # outlet had given up on) would count goods never handed out.
    void_keys = {key_hash(r.outlet_code, f"journal-{r.counter}"): r for r in journal if r.outcome == "void"}
    wanted = sorted(void_keys)
    for start in range(0, len(wanted), CHUNK):
        for late in conn.scalars(
            sa.select(redemptions.c.key_hash).where(redemptions.c.key_hash.in_(wanted[start : start + CHUNK]))
        ):
            r = void_keys[str(late)]
            report.records.append(
                f"outlet {r.outlet_code} journal entry {r.counter} was synced as void, but a redemption "
                "under its key was recorded"
            )
    outcomes = {(r.outlet_code, int(r.counter)): r.outcome for r in journal}
    for c in conn.execute(sa.select(offline_conflicts.c.outlet_code, offline_conflicts.c.counter)):
        if outcomes.get((c.outlet_code, int(c.counter))) != "conflict":
            report.records.append(
                f"offline conflict of outlet {c.outlet_code} entry {c.counter} has no journal entry "
                "in conflict"
            )


def _check_merges(conn: sa.Connection, entries: list[LedgerEntry], report: AuditReport) -> None:
    """Every merge of registrations, and every undo, is the ledger entry that records it; a
    registration counts as merged only by a merge that stands. (A registration quietly
    marked merged would take a person off their household's entitlement unseen.)"""
    merged_entries = {e.seq: e for e in entries if e.kind == EntryKind.REGISTRATIONS_MERGED}
    undo_entries = {e.seq: e for e in entries if e.kind == EntryKind.REGISTRATIONS_UNMERGED}
    rows = conn.execute(
        sa.select(
            person_merges.c.id,
            person_merges.c.kept_id,
            person_merges.c.merged_id,
            person_merges.c.ledger_seq,
            person_merges.c.undone_at,
            person_merges.c.undo_ledger_seq,
        ).order_by(person_merges.c.id)
    ).all()
    standing: set[int] = set()
    for r in rows:
        entry = merged_entries.pop(int(r.ledger_seq), None)
        if entry is None or (entry.body.get("kept"), entry.body.get("merged")) != (r.kept_id, r.merged_id):
            report.records.append(
                f"merge {r.id} (registration {r.merged_id} into {r.kept_id}) is not what ledger entry "
                f"{r.ledger_seq} records"
            )
        if r.undone_at is None:
            standing.add(int(r.merged_id))
            continue
        undo = undo_entries.pop(int(r.undo_ledger_seq or 0), None)
        if undo is None or undo.body.get("merge") != r.ledger_seq:
            report.records.append(f"merge {r.id} is marked undone but no ledger entry undid it")
    for seq in sorted(merged_entries):
        report.records.append(f"entry {seq}: a merge of registrations that the registry does not hold")
    for seq in sorted(undo_entries):
        report.records.append(f"entry {seq}: an undone merge that the registry does not hold")
    # Where each registration should point: the top of its chain of standing merges.
    into: dict[int, int] = {}
    for r in rows:
        if r.undone_at is None:
            if int(r.merged_id) in into:
                report.records.append(f"registration {r.merged_id} has two standing merges")
            into[int(r.merged_id)] = int(r.kept_id)

    def top(person: int) -> int:
        seen = {person}
        while person in into:
            person = into[person]
            if person in seen:
                report.records.append(f"registration {person}: standing merges form a cycle")
                return person
            seen.add(person)
        return person

    marked = {
        int(r.id): int(r.merged_into)
        for r in conn.execute(
            sa.select(persons.c.id, persons.c.merged_into).where(persons.c.merged_into.is_not(None))
        )
    }
    for person in sorted(set(marked) - standing):
        report.records.append(f"registration {person} is marked merged but no standing merge merged it")
    for person in sorted(standing - set(marked)):
        report.records.append(f"registration {person} was merged but counts on its own")
    for person in sorted(set(marked) & standing):
        expected = top(person)
        if marked[person] != expected:
            report.records.append(
                f"registration {person} is counted as {marked[person]}, but its merges make it {expected}"
            )


def _log_verifiers(engine: sa.Engine, conn: sa.Connection) -> list[Verifier]:
    """The log's key as the key directory holds it; without one loaded, as the database
    recorded it (which whoever can write the database could replace; ``canasta audit``
    always loads the key directory, so only a caller without keys falls back)."""
    try:
        return [keyring_of(engine).log.verifier]
    except KeyProblem:
        recorded = log_repo.recorded_keys(conn).get("log")
        return [Verifier.parse(recorded)] if recorded else []


class LogAudit:
    """Walks the entries beside the transparency log: every entry's commitment opens with its
    salt; the tree rebuilt from the leaves has, at every stored checkpoint's size, the root
    the checkpoint signs; the checkpoints chain (each names the one before) up to the one
    the ledger head names; the head's frontier and the stored tiles are those of the tree."""

    def __init__(self, conn: sa.Connection, verifiers: list[Verifier], report: AuditReport) -> None:
        self.conn = conn
        self.verifiers = verifiers
        self.report = report
        self.frontier = Frontier()
        self.block: list[bytes] = []
        self.blocks: list[list[bytes]] = [[]]  # per level above 0: roots of its full tiles
        self.tiles_done: list[int] = [0]  # per level: full tiles checked
        self.checkpoints = log_repo.iter_checkpoints(conn)
        self.next: StoredCheckpoint | None = None
        self.previous_note: str | None = None
        self._advance()
        if not verifiers:
            report.log.append("log: no log key is known, so no checkpoint signature could be checked")

    def _problem(self, text: str) -> None:
        if len(self.report.log) < 200:
            self.report.log.append(text)

    def _advance(self) -> None:
        self.next = next(self.checkpoints, None)

    def add(self, entry: LedgerEntry, salt: bytes, leaf_data: bytes) -> None:
        try:
            opened = len(salt) == SALT_BYTES and commitment(entry, salt) == leaf_data
        except (TypeError, ValueError):
            opened = False
        if not opened:
            self._problem(
                f"entry {entry.seq}: its commitment in the public log does not open to it (the entry, "
                "its salt or its commitment was changed after it was logged)"
            )
        leaf = leaf_hash(leaf_data)
        self.frontier.append(leaf)
        self.block.append(leaf)
        if len(self.block) == TILE_WIDTH:
            done, self.block = self.block, []
            self._check_tile(0, done)
        while self.next is not None and self.next.size <= self.frontier.size:
            self._check_checkpoint(
                self.next, self.frontier.root() if self.next.size == self.frontier.size else None
            )
            self._advance()

    def _check_tile(self, level: int, block: list[bytes]) -> None:
        """A block of 256 hashes at height 8·level is complete: the stored tile, if any, must
        be it with the nodes above it; its root joins the block of the level above."""
        index = self.tiles_done[level] if level < len(self.tiles_done) else 0
        if level == len(self.tiles_done):
            self.tiles_done.append(0)
            self.blocks.append([])
        expanded, _ = expand_tile(block)
        stored = log_repo.tile(self.conn, level, index)
        if stored is not None and stored != expanded:
            first, last = index * TILE_WIDTH, index * TILE_WIDTH + TILE_WIDTH - 1
            self._problem(
                f"log tile {level}/{index} does not hold the hashes of "
                + (f"leaves {first} to {last}" if level == 0 else f"the tiles {level - 1}/{first} to {last}")
                + " and the nodes above them"
            )
        self.tiles_done[level] += 1
        if level + 1 == len(self.blocks):
            self.blocks.append([])
        self.blocks[level + 1].append(expanded[-32:])
        if len(self.blocks[level + 1]) == TILE_WIDTH:
            done, self.blocks[level + 1] = self.blocks[level + 1], []
            self._check_tile(level + 1, done)

    def _check_checkpoint(self, stored: StoredCheckpoint, root: bytes | None) -> None:
        self.report.checkpoints += 1
        name = f"checkpoint of size {stored.size}"
        try:
            note = Checkpoint.parse(open_note(stored.note, self.verifiers)) if self.verifiers else None
        except BadNote as bad:
            self._problem(f"{name}: its signed note does not verify ({bad.message})")
            note = None
        if note is not None:
            if note.size != stored.size:
                self._problem(f"{name}: holds the note of a tree of {note.size} (checkpoints were moved)")
            if note.root != stored.root:
                self._problem(f"{name}: its stored root is not the root its note signs")
            if checkpoint_time(note) != stored.signed_at:
                self._problem(f"{name}: its stored time is not the time its note signs")
            expected = NO_CHECKPOINT if self.previous_note is None else note_hash(self.previous_note)
            if checkpoint_prev(note) != expected:
                self._problem(
                    f"{name}: the checkpoint before it is missing, was changed or moved "
                    "(its link does not match)"
                )
        if root is None:
            self._problem(
                f"{name}: a checkpoint at a size between two entries cannot exist (checkpoints moved)"
            )
        elif root != stored.root:
            self._problem(
                f"{name}: the leaves no longer hash to the root it signs: an entry at or before "
                f"{stored.size} was changed, added, removed or moved after it was signed"
            )
        self.previous_note = stored.note

    def _check_stored_tiles(self) -> None:
        """Tiles are stored from 0 without gaps and only where the tree has full tiles: a
        gap would leave proofs unservable, a tile beyond the tree was never the log's."""
        stored: dict[int, list[int]] = {}
        for level, index in log_repo.tile_indexes(self.conn):
            stored.setdefault(level, []).append(index)
        for level, indexes in sorted(stored.items()):
            full = self.tiles_done[level] if level < len(self.tiles_done) else 0
            beyond = [i for i in indexes if i >= full]
            if beyond:
                self._problem(f"log tile {level}/{beyond[0]} is stored but the log has no such full tile")
            kept = sorted(i for i in indexes if i < full)
            missing = [i for i, found in zip(range(len(kept)), kept, strict=False) if i != found]
            if missing:
                self._problem(f"log tile {level}/{missing[0]} is missing while later tiles are stored")

    def finish(self) -> None:
        self._check_stored_tiles()
        while self.next is not None:
            self._problem(
                f"checkpoint of size {self.next.size}: the ledger holds only {self.frontier.size} entries; "
                "entries it signed were removed"
            )
            self.report.checkpoints += 1
            self.previous_note = self.next.note
            self._advance()
        head = ledger_repo.read_head_row(self.conn)
        if head is not None:
            frontier, checkpoint_hash = head
            if frontier != self.frontier.to_bytes():
                self._problem(
                    "ledger head: its record of the log's tree is not the tree of the stored entries"
                )
            expected = NO_CHECKPOINT if self.previous_note is None else note_hash(self.previous_note)
            if checkpoint_hash != expected:
                self._problem(
                    "ledger head: the last checkpoint it names is not the last stored "
                    "(the latest checkpoint was removed or replaced)"
                )


def _check_policies(conn: sa.Connection, entries: list[LedgerEntry], report: AuditReport) -> None:
    """Each published policy's text still hashes to its SHA-256, and each has the one
    ledger entry that published it; each cycle and entitlement names a policy that exists."""
    stored = {
        str(row.sha256): row
        for row in conn.execute(
            sa.select(
                policies.c.id, policies.c.sha256, policies.c.version, policies.c.text, programmes.c.name
            )
            .join(programmes, programmes.c.id == policies.c.programme_id)
            .order_by(policies.c.id)
        )
    }
    published: set[str] = set()
    for entry in entries:
        if entry.kind != EntryKind.POLICY_PUBLISHED:
            continue
        sha = str(entry.body.get("sha256"))
        published.add(sha)
        row = stored.get(sha)
        if row is None:
            report.records.append(f"entry {entry.seq}: the policy it published ({sha[:12]}) is missing")
        elif (row.name, row.version) != (entry.body.get("programme"), entry.body.get("version")):
            report.records.append(
                f"entry {entry.seq}: published {entry.body.get('programme')} version "
                f"{entry.body.get('version')}, but that policy is stored as {row.name} version {row.version}"
            )
    for sha, row in stored.items():
        if policy_hash(row.text) != sha:
            report.records.append(
                f"policy {row.name} version {row.version}: its text no longer hashes to {sha[:12]}; "
                "a published policy was edited"
            )
        if sha not in published:
            report.records.append(
                f"policy {row.name} version {row.version} has no ledger entry that published it"
            )
    ids = {int(row.id) for row in stored.values()}
    for table, label in ((cycles, "cycle"), (entitlements, "entitlement")):
        for found in conn.execute(
            sa.select(table.c.id, table.c.policy_id)
            .where(table.c.policy_id.is_not(None), table.c.policy_id.not_in(ids or {0}))
            .order_by(table.c.id)
            .limit(20)
        ):
            report.records.append(f"{label} {found.id} names policy {found.policy_id}, which does not exist")
    # Entitlements have no foreign keys (a cycle run writes millions at once): every
    # reference is checked here instead.
    references = [
        ("cycle", entitlements.c.cycle_id, cycles.c.id, None),
        ("programme", entitlements.c.programme_id, programmes.c.id, None),
        ("household", entitlements.c.household_id, households.c.id, None),
        ("household", entitlements.c.beneficiary_id, households.c.id, "household"),
        ("vehicle", entitlements.c.beneficiary_id, vehicles.c.id, "vehicle"),
    ]
    for name, column, target, kind in references:
        query = (
            sa.select(entitlements.c.id, column)
            .outerjoin(target.table, target == column)
            .where(target.is_(None))
            .order_by(entitlements.c.id)
            .limit(20)
        )
        if kind is not None:
            query = query.where(entitlements.c.beneficiary_kind == kind)
        for found in conn.execute(query):
            report.records.append(f"entitlement {found[0]} names {name} {found[1]}, which does not exist")
    # Every entitlement was granted by its cycle's last run, under that run's policy.
    for stamped in conn.execute(
        sa.select(
            entitlements.c.id,
            entitlements.c.policy_id,
            cycles.c.id.label("cycle"),
            cycles.c.policy_id.label("ran"),
        )
        .join(cycles, cycles.c.id == entitlements.c.cycle_id)
        .where(entitlements.c.policy_id.is_distinct_from(cycles.c.policy_id))
        .order_by(entitlements.c.id)
        .limit(20)
    ):
        report.records.append(
            f"entitlement {stamped.id} names policy {stamped.policy_id}, "
            f"but cycle {stamped.cycle} ran under {stamped.ran}"
        )


def _check_cycles(conn: sa.Connection, entries: list[LedgerEntry], report: AuditReport) -> None:
    """Each cycle as its opening entry recorded it (entitlements granted, their total,
    dates), and closed exactly when a closing entry says so."""
    stored = {
        int(row.id): row
        for row in conn.execute(
            sa.select(
                cycles.c.id,
                cycles.c.starts_on,
                cycles.c.ends_on,
                cycles.c.status,
                policies.c.sha256.label("policy"),
                sa.func.count(entitlements.c.id).label("granted"),
                sa.func.coalesce(sa.func.sum(entitlements.c.quantity), 0).label("total"),
            )
            .outerjoin(entitlements, entitlements.c.cycle_id == cycles.c.id)
            .outerjoin(policies, policies.c.id == cycles.c.policy_id)
            .group_by(cycles.c.id, cycles.c.starts_on, cycles.c.ends_on, cycles.c.status, policies.c.sha256)
        )
    }
    opened: dict[int, LedgerEntry] = {}
    closed: set[int] = set()
    for entry in entries:
        body = entry.body
        cycle = body.get("cycle")
        if entry.kind not in (EntryKind.CYCLE_OPENED, EntryKind.CYCLE_CLOSED):
            continue
        if not isinstance(cycle, int):
            report.records.append(f"entry {entry.seq}: names no cycle")
            continue
        if entry.kind == EntryKind.CYCLE_OPENED:
            # A cycle re-run before any redemption opens it again: the last entry counts.
            opened[cycle] = entry
        elif entry.kind == EntryKind.CYCLE_CLOSED:
            closed.add(cycle)
            row = stored.get(cycle)
            if row is not None and row.status != "closed":
                report.records.append(
                    f"entry {entry.seq}: cycle {cycle} was closed but is {row.status} again"
                )
    for cycle, entry in sorted(opened.items()):
        body = entry.body
        row = stored.get(cycle)
        if row is None:
            report.records.append(f"entry {entry.seq}: cycle {cycle} it opened is missing")
            continue
        recorded = (
            body.get("entitlements"),
            body.get("total"),
            body.get("starts_on"),
            body.get("ends_on"),
            body.get("policy"),
        )
        now = (int(row.granted), int(row.total), str(row.starts_on), str(row.ends_on), row.policy)
        if recorded != now:
            report.records.append(
                f"entry {entry.seq}: cycle {cycle} was opened with {recorded[0]} entitlements "
                f"totalling {recorded[1]} ({recorded[2]} to {recorded[3]}, policy "
                f"{str(recorded[4])[:12]}), but now has {now[0]} totalling {now[1]} ({now[2]} to "
                f"{now[3]}, policy {str(now[4])[:12]})"
            )
    for cycle_id, row in sorted(stored.items()):
        if cycle_id not in opened:
            report.records.append(f"cycle {cycle_id} has no ledger entry that opened it")
        if row.status == "closed" and cycle_id not in closed:
            report.records.append(f"cycle {cycle_id} is closed but no ledger entry closed it")


def _check_cards(conn: sa.Connection, entries: list[LedgerEntry], report: AuditReport) -> None:
    """A withdrawn card stays withdrawn, as its entry says; no card is withdrawn without one."""
    recorded = {
        e.body.get("card"): (e.seq, e.body.get("status"))
        for e in entries
        if e.kind == EntryKind.CARD_WITHDRAWN
    }
    statuses = dict(
        conn.execute(sa.select(cards.c.id, cards.c.status).where(cards.c.status != "active")).all()
    )
    named = [c for c in recorded if isinstance(c, str)]
    for start in range(0, len(named), CHUNK):  # a statement holds at most 65,535 parameters
        chunk = named[start : start + CHUNK]
        statuses.update(
            conn.execute(sa.select(cards.c.id, cards.c.status).where(cards.c.id.in_(chunk))).all()
        )
    for card, (seq, status) in sorted(recorded.items(), key=lambda item: item[1][0]):
        if statuses.get(card) != status:
            report.records.append(
                f"entry {seq}: card {card} was withdrawn as {status} but is {statuses.get(card, 'missing')}"
            )
    for card, status in sorted(statuses.items()):
        if status != "active" and card not in recorded:
            report.records.append(f"card {card} is {status} but no ledger entry withdrew it")


def _check_redemptions(conn: sa.Connection, entries: dict[int, LedgerEntry], report: AuditReport) -> None:
    """Each redemption entry must match its stored redemption field for field."""
    if not entries:
        return
    rows = {
        int(row.ledger_seq): row
        for row in conn.execute(
            sa.select(redemptions, programmes.c.name.label("programme"))
            .outerjoin(programmes, programmes.c.id == redemptions.c.programme_id)
            .where(redemptions.c.ledger_seq.in_(list(entries)))
        )
    }
    for seq, entry in sorted(entries.items()):
        row = rows.get(seq)
        if row is None:
            report.records.append(f"entry {seq}: its redemption is missing from the redemptions table")
            continue
        stored = NewRedemption(
            card_id=row.card_id,
            programme_id=row.programme_id,
            cycle_id=int(row.cycle_id),
            outlet=row.outlet_code,
            quantity=int(row.quantity),
            balance_after=int(row.balance_after),
            key_hash=row.key_hash,
            fingerprint=row.fingerprint,
            recorded_at=row.recorded_at,
            ledger_seq=seq,
        )
        if redemption_body(stored, row.programme) != dict(entry.body) or row.recorded_at != entry.recorded_at:
            report.records.append(f"entry {seq}: redemption {seq} no longer matches its ledger entry")


def _check_orphans(conn: sa.Connection, report: AuditReport) -> None:
    """Redemptions with no ledger entry of their own."""
    orphans = conn.execute(
        sa.select(redemptions.c.ledger_seq)
        .outerjoin(
            ledger_entries,
            sa.and_(
                ledger_entries.c.seq == redemptions.c.ledger_seq,
                ledger_entries.c.kind == EntryKind.REDEMPTION.value,
            ),
        )
        .where(ledger_entries.c.seq.is_(None))
        .order_by(redemptions.c.ledger_seq)
    )
    for row in orphans:
        report.records.append(f"redemption {row.ledger_seq} has no ledger entry of its own")
    # The redemptions table has no foreign keys (they are too dear on the hot path), so
    # every reference is checked here instead.
    references = [
        ("card", redemptions.c.card_id, cards.c.id),
        ("programme", redemptions.c.programme_id, programmes.c.id),
        ("cycle", redemptions.c.cycle_id, cycles.c.id),
        ("outlet", redemptions.c.outlet_code, outlets.c.code),
    ]
    for name, column, target in references:
        dangling = conn.execute(
            sa.select(redemptions.c.ledger_seq, column)
            .outerjoin(target.table, target == column)
            .where(target.is_(None))
            .order_by(redemptions.c.ledger_seq)
        )
        for seq, value in dangling:
            report.records.append(f"redemption {seq} names {name} {value!r}, which does not exist")
    report.redemptions = conn.scalar(sa.select(sa.func.count()).select_from(redemptions)) or 0


def _check_balances(conn: sa.Connection, report: AuditReport) -> None:
    """Every entitlement's ``redeemed`` equals the sum of its holder's redemptions."""
    sums = (
        sa.select(
            redemptions.c.cycle_id,
            cards.c.beneficiary_kind,
            cards.c.beneficiary_id,
            sa.func.sum(redemptions.c.quantity).label("taken"),
        )
        .join(cards, cards.c.id == redemptions.c.card_id)
        .group_by(redemptions.c.cycle_id, cards.c.beneficiary_kind, cards.c.beneficiary_id)
        .subquery()
    )
    taken = sa.func.coalesce(sums.c.taken, 0)
    query = (
        sa.select(
            entitlements.c.id,
            entitlements.c.quantity,
            entitlements.c.redeemed,
            taken.label("taken"),
        )
        .outerjoin(
            sums,
            sa.and_(
                sums.c.cycle_id == entitlements.c.cycle_id,
                sums.c.beneficiary_kind == entitlements.c.beneficiary_kind,
                sums.c.beneficiary_id == entitlements.c.beneficiary_id,
            ),
        )
        .where(
            sa.or_(
                entitlements.c.redeemed != taken,
                entitlements.c.redeemed > entitlements.c.quantity,
                entitlements.c.redeemed < 0,
            )
        )
        .order_by(entitlements.c.id)
    )
    for row in conn.execute(query):
        if row.redeemed > row.quantity:
            report.records.append(
                f"entitlement {row.id}: redeemed {row.redeemed} exceeds the entitlement {row.quantity}"
            )
        if row.redeemed != row.taken:
            report.records.append(
                f"entitlement {row.id}: redeemed is {row.redeemed} but its redemptions add up to {row.taken}"
            )
    # Redemptions whose holder has no entitlement at all in that cycle.
    strays = conn.execute(
        sa.select(sums.c.cycle_id, sums.c.beneficiary_kind, sums.c.beneficiary_id)
        .outerjoin(
            entitlements,
            sa.and_(
                sums.c.cycle_id == entitlements.c.cycle_id,
                sums.c.beneficiary_kind == entitlements.c.beneficiary_kind,
                sums.c.beneficiary_id == entitlements.c.beneficiary_id,
            ),
        )
        .where(entitlements.c.id.is_(None))
    )
    for stray in strays:
        report.records.append(
            f"cycle {stray.cycle_id}: redemptions for {stray.beneficiary_kind} {stray.beneficiary_id}, "
            "who has no entitlement in it"
        )
    report.entitlements = conn.scalar(sa.select(sa.func.count()).select_from(entitlements)) or 0
