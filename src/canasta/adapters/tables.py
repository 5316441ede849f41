"""The database tables, as SQLAlchemy Core. One definition serves SQLite and PostgreSQL.

Quantities are integers in thousandths of the programme's unit. Timestamps that are hashed
into the ledger are ISO 8601 strings, so they read back byte for byte on every database.
"""

from __future__ import annotations

import sqlalchemy as sa

from canasta.domain.ledger import GENESIS_HASH

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: An auto-incrementing 64-bit key (SQLite only auto-increments INTEGER PRIMARY KEY).
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.String(32)

households = sa.Table(
    "households",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("ref", sa.String(64), nullable=False, unique=True),
    sa.Column("region", sa.String(100), nullable=False),
    sa.Column("municipality", sa.String(100), nullable=False),
    sa.Column("address", sa.String(300), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

persons = sa.Table(
    "persons",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("household_id", Id, sa.ForeignKey("households.id"), nullable=False, index=True),
    sa.Column("registration_id", sa.String(64), nullable=False, unique=True),
    sa.Column("given_names", sa.String(200), nullable=False),
    sa.Column("family_name", sa.String(200), nullable=False),
    sa.Column("second_family_name", sa.String(200), nullable=False),
    sa.Column("sex", sa.String(1), nullable=False),
    sa.Column("date_of_birth", sa.Date, nullable=False),
    sa.Column("phone", sa.String(32), nullable=False),
    # Deduplication: the registration this one was found to duplicate (the person's first
    # registration, whose id is the person's id). A merged registration is not counted as a
    # member; NULL means it stands for itself.
    sa.Column("merged_into", Id, sa.ForeignKey("persons.id"), index=True),
    # The deduplication run that last matched this registration; NULL for registrations
    # imported since, which an incremental run matches against the rest.
    sa.Column("matched_by", Id),
)

vehicles = sa.Table(
    "vehicles",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("plate", sa.String(16), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("household_id", Id, sa.ForeignKey("households.id"), nullable=False, index=True),
)

outlets = sa.Table(
    "outlets",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("region", sa.String(100), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

programmes = sa.Table(
    "programmes",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("unit", sa.String(32), nullable=False),
    sa.Column("per", sa.String(16), nullable=False),
    sa.Column("cycle_days", sa.Integer, nullable=False),
    sa.Column("quota_fixed", sa.BigInteger, nullable=False),
    sa.Column("quota_per_member", sa.BigInteger, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    # The share of a card's entitlement that may be redeemed offline, in thousandths (0: no
    # offline redemption of this programme).
    sa.Column("offline_share_permille", sa.Integer, nullable=False, server_default="0"),
    sa.CheckConstraint("per IN ('household', 'vehicle')", name="per"),
)

cycles = sa.Table(
    "cycles",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("programme_id", Id, sa.ForeignKey("programmes.id"), nullable=False),
    sa.Column("starts_on", sa.Date, nullable=False),
    sa.Column("ends_on", sa.Date, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("opened_at", Timestamp, nullable=False),
    sa.Column("closed_at", Timestamp),
    sa.Column("policy_id", Id),
    sa.CheckConstraint("status IN ('open', 'closed')", name="status"),
    # At most one open cycle per programme.
    sa.Index(
        "uq_cycles_one_open",
        "programme_id",
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    ),
)

entitlements = sa.Table(
    "entitlements",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    # No foreign keys: a cycle run writes millions of rows in one statement, and checking
    # three keys per row cost PostgreSQL more than computing the rows. The cycle run is the
    # only writer of rows, and ``canasta audit`` checks every reference.
    sa.Column("cycle_id", Id, nullable=False, index=True),
    sa.Column("programme_id", Id, nullable=False),
    sa.Column("beneficiary_kind", sa.String(16), nullable=False),
    sa.Column("beneficiary_id", Id, nullable=False),
    # Kept on every hot table so a deployment can shard by household.
    sa.Column("household_id", Id, nullable=False, index=True),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("redeemed", sa.BigInteger, nullable=False),
    # The published policy that granted it, and the facts that policy read (a JSON array
    # in the order of ``Policy.facts``), so its explanation shows what was used.
    sa.Column("policy_id", Id),
    sa.Column("facts", sa.Text),
    # Leading with the beneficiary so a batch finds its rows with a plain IN list.
    sa.UniqueConstraint("beneficiary_id", "beneficiary_kind", "cycle_id"),
    # Invariant 1 again, in the database: whatever the code does, no overdraft is stored.
    sa.CheckConstraint("redeemed >= 0 AND redeemed <= quantity", name="no_overdraft"),
)

#: Every registry schema ever declared, kept whole: what may be stored was public.
registry_schemas = sa.Table(
    "registry_schemas",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("declared_at", Timestamp, nullable=False),
)

#: The attributes declared now. Values live in columns ``attr_<name>`` of households,
#: persons or vehicles, added when the attribute is declared.
declared_attributes = sa.Table(
    "declared_attributes",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("unit", sa.String(32), nullable=False),
    sa.Column("belongs_to", sa.String(16), nullable=False),
    sa.Column("category", sa.String(40), nullable=False),
    sa.Column("purpose", sa.String(300), nullable=False),
    sa.Column("label_en", sa.String(80), nullable=False),
    sa.Column("label_es", sa.String(80), nullable=False),
    sa.Column("schema_sha256", sa.String(64), sa.ForeignKey("registry_schemas.sha256"), nullable=False),
)

#: Published policies: stored under the SHA-256 of their text, never edited.
policies = sa.Table(
    "policies",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("programme_id", Id, sa.ForeignKey("programmes.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("published_at", Timestamp, nullable=False),
    sa.UniqueConstraint("programme_id", "version"),
)

cards = sa.Table(
    "cards",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("beneficiary_kind", sa.String(16), nullable=False),
    sa.Column("beneficiary_id", Id, nullable=False),
    sa.Column("household_id", Id, sa.ForeignKey("households.id"), nullable=False, index=True),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("issued_at", Timestamp, nullable=False),
    sa.Column("withdrawn_at", Timestamp),
    sa.Column("replaces", sa.String(16), sa.ForeignKey("cards.id")),
    sa.CheckConstraint("status IN ('active', 'lost', 'revoked')", name="status"),
    sa.Index("ix_cards_beneficiary", "beneficiary_kind", "beneficiary_id"),
    # At most one active card per household or vehicle.
    sa.Index(
        "uq_cards_one_active",
        "beneficiary_kind",
        "beneficiary_id",
        unique=True,
        sqlite_where=sa.text("status = 'active'"),
        postgresql_where=sa.text("status = 'active'"),
    ),
)

redemptions = sa.Table(
    "redemptions",
    metadata,
    # A redemption's id is the position of its ledger entry.
    sa.Column("ledger_seq", Id, primary_key=True, autoincrement=False),
    # No foreign keys on this, the hottest table: their per-row checks cost PostgreSQL more
    # than the insert. Rows are only written by a redemption batch that has just read the
    # card, programme, cycle and outlet under the ledger lock, those rows are never deleted,
    # and ``canasta audit`` checks every reference.
    sa.Column("card_id", sa.String(16), nullable=False),
    sa.Column("programme_id", Id, nullable=False),
    sa.Column("cycle_id", Id, nullable=False),
    sa.Column("outlet_code", sa.String(64), nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("balance_after", sa.BigInteger, nullable=False),
    # SHA-256 of outlet and idempotency key: the key itself is the outlet's free text and is
    # not kept (data minimisation), and the hash is unique per outlet on its own.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("recorded_at", Timestamp, nullable=False),
    sa.Index("ix_redemptions_card_cycle", "card_id", "cycle_id"),
    sa.CheckConstraint("quantity > 0", name="positive"),
)

ledger_entries = sa.Table(
    "ledger_entries",
    metadata,
    # INTEGER PRIMARY KEY on SQLite: the rowid itself, appended in order, no extra index.
    sa.Column("seq", Id, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("recorded_at", Timestamp, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
    # The transparency log: a fresh random salt per entry (private; a receipt carries it)
    # and the public leaf, SHA-256(salt ‖ canonical entry).
    sa.Column("salt", sa.LargeBinary(32), nullable=False),
    sa.Column("commitment", sa.LargeBinary(32), nullable=False),
)

#: One row: the last entry of the ledger. Writers lock it, which orders the chain.
ledger_head = sa.Table(
    "ledger_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
    # The Merkle tree's right edge after entry ``seq`` (its perfect subtrees' roots, largest
    # first): all a writer needs to extend the log and sign its new root.
    sa.Column("log_frontier", sa.LargeBinary, nullable=False),
    # SHA-256 of the last signed checkpoint's note, which the next checkpoint names.
    sa.Column("checkpoint_hash", sa.String(64), nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)

LEDGER_HEAD_SEED = {
    "id": 1,
    "seq": 0,
    "entry_hash": GENESIS_HASH,
    "log_frontier": b"",
    "checkpoint_hash": GENESIS_HASH,
}

#: Every checkpoint the log has signed: the tree's size and root, as a C2SP signed note.
log_checkpoints = sa.Table(
    "log_checkpoints",
    metadata,
    sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("root", sa.LargeBinary(32), nullable=False),
    sa.Column("signed_at", Timestamp, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)

#: Full tiles of the log's tree (tlog-tiles): tile ``idx`` at ``level`` holds the 256 hashes
#: at height 8·level, nodes idx·256 to idx·256+255, followed by the 255 nodes above them.
#: Derived from the leaves; kept so proofs are served without rehashing the log.
log_tiles = sa.Table(
    "log_tiles",
    metadata,
    sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("hashes", sa.LargeBinary, nullable=False),
)

#: The public keys this database was first used with; another key directory is refused.
signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("role", sa.String(16), primary_key=True),
    sa.Column("verifier", sa.Text, nullable=False),
    sa.Column("first_used_at", Timestamp, nullable=False),
)

#: Each run of deduplication: what it compared and decided, and the model it estimated (the
#: model of the last full run scores the registrations of incremental runs).
dedup_runs = sa.Table(
    "dedup_runs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp, nullable=False),
    sa.Column("registrations", sa.BigInteger, nullable=False),
    sa.Column("new_registrations", sa.BigInteger, nullable=False),
    # Pairs scored at or above the lower threshold.
    sa.Column("scored_pairs", sa.BigInteger, nullable=False),
    sa.Column("merges", sa.BigInteger, nullable=False),
    sa.Column("review_items", sa.BigInteger, nullable=False),
    # Match probabilities as decimal strings, so they read back exactly everywhere.
    sa.Column("upper", sa.String(16), nullable=False),
    sa.Column("lower", sa.String(16), nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.CheckConstraint("kind IN ('full', 'incremental')", name="kind"),
)

#: Every merge of one registration into another, automatic or a reviewer's, each recorded in
#: the ledger; an undone merge keeps its row with who undid it, when and why.
person_merges = sa.Table(
    "person_merges",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kept_id", Id, sa.ForeignKey("persons.id"), nullable=False),
    sa.Column("merged_id", Id, sa.ForeignKey("persons.id"), nullable=False, index=True),
    sa.Column("run_id", Id, sa.ForeignKey("dedup_runs.id")),
    sa.Column("review_id", Id),
    sa.Column("match_probability", sa.String(16), nullable=False),
    sa.Column("decided_by", sa.String(100), nullable=False),
    sa.Column("decided_at", Timestamp, nullable=False),
    sa.Column("ledger_seq", sa.BigInteger, nullable=False),
    sa.Column("undone_at", Timestamp),
    sa.Column("undone_by", sa.String(100)),
    sa.Column("undo_reason", sa.String(500)),
    sa.Column("undo_ledger_seq", sa.BigInteger),
)

#: Pairs of registrations a person must look at, with the evidence, and pairs a person has
#: decided (a pair decided distinct, or whose merge was undone, is never merged again).
review_items = sa.Table(
    "review_items",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    # left_id < right_id: one row per pair.
    sa.Column("left_id", Id, sa.ForeignKey("persons.id"), nullable=False),
    sa.Column("right_id", Id, sa.ForeignKey("persons.id"), nullable=False),
    sa.Column("run_id", Id, sa.ForeignKey("dedup_runs.id")),
    sa.Column("match_probability", sa.String(16), nullable=False),
    sa.Column("match_weight", sa.String(16), nullable=False),
    # Why it is here ("between the thresholds", "twin-like", "merge undone").
    sa.Column("reason", sa.String(100), nullable=False),
    # JSON: one object per compared field with the level it reached and its match weight
    # (the values are read from the registrations themselves when shown).
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("decided_by", sa.String(100)),
    sa.Column("decided_at", Timestamp),
    sa.Column("note", sa.String(500)),
    sa.UniqueConstraint("left_id", "right_id"),
    sa.Index("ix_review_items_status", "status", "match_probability"),
    sa.CheckConstraint("status IN ('open', 'merged', 'distinct')", name="status"),
    sa.CheckConstraint("left_id < right_id", name="ordered"),
)

#: The Ed25519 key each outlet signs its journal with (made by the outlet at enrolment).
outlet_keys = sa.Table(
    "outlet_keys",
    metadata,
    sa.Column("outlet_code", sa.String(64), sa.ForeignKey("outlets.code"), primary_key=True),
    sa.Column("public_key", sa.String(64), nullable=False),
    sa.Column("enrolled_at", Timestamp, nullable=False),
)

#: What an outlet may hand out offline of a programme in one UTC day (thousandths).
offline_caps = sa.Table(
    "offline_caps",
    metadata,
    sa.Column("outlet_code", sa.String(64), sa.ForeignKey("outlets.code"), primary_key=True),
    sa.Column("programme_id", Id, sa.ForeignKey("programmes.id"), primary_key=True),
    sa.Column("daily_cap", sa.BigInteger, nullable=False),
)

#: Every journal entry an outlet has synced: one row per (outlet, counter), never changed,
#: so a retried upload is recognised and a counter reused with other content refused.
outlet_journal = sa.Table(
    "outlet_journal",
    metadata,
    sa.Column("outlet_code", sa.String(64), primary_key=True),
    sa.Column("counter", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("signature", sa.String(100), nullable=False),
    sa.Column("card_id", sa.String(40), nullable=False),
    sa.Column("programme", sa.String(64), nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("void", sa.Boolean, nullable=False),
    sa.Column("recorded_at", Timestamp, nullable=False),
    sa.Column("received_at", Timestamp, nullable=False),
    # redeemed (a new redemption), replayed (already redeemed online), conflict (the rest
    # is in offline_conflicts), void (the outlet handed nothing out for it)
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("ledger_seq", sa.BigInteger),
    sa.CheckConstraint("outcome IN ('redeemed', 'replayed', 'conflict', 'void')", name="outcome"),
)

#: Offline redemptions the balance did not cover (or that no balance could: a withdrawn
#: card, a closed cycle): the goods were handed out, so they are kept for a person to settle.
offline_conflicts = sa.Table(
    "offline_conflicts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("outlet_code", sa.String(64), nullable=False),
    sa.Column("counter", sa.BigInteger, nullable=False),
    sa.Column("card_id", sa.String(40), nullable=False),
    sa.Column("programme", sa.String(64), nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    # What the balance allowed and was recorded as a redemption, and what is left over.
    sa.Column("applied", sa.BigInteger, nullable=False),
    sa.Column("shortfall", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(300), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("decided_by", sa.String(100)),
    sa.Column("decided_at", Timestamp),
    sa.Column("note", sa.String(500)),
    sa.UniqueConstraint("outlet_code", "counter"),
    sa.CheckConstraint("status IN ('open', 'settled')", name="status"),
)

# -- people's side: staff accounts, sessions, PINs, the access log, appeals -----------------

#: Staff who sign in to the staff pages. ``role`` is one of canasta.service.authz.Role.
staff_users = sa.Table(
    "staff_users",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(24), nullable=False),
    # argon2id, in the PHC string format.
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    # Failed sign-ins since the last success, and until when sign-in is refused.
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", Timestamp),
    sa.CheckConstraint(
        "role IN ('registrar', 'reviewer', 'programme_officer', 'outlet_manager', 'auditor', 'admin')",
        name="role",
    ),
)

#: The PIN a card holder signs in to the portal with, set when the card is issued.
card_pins = sa.Table(
    "card_pins",
    metadata,
    sa.Column("card_id", sa.String(16), sa.ForeignKey("cards.id"), primary_key=True),
    sa.Column("pin_hash", sa.String(200), nullable=False),
    sa.Column("set_at", Timestamp, nullable=False),
    sa.Column("failed_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", Timestamp),
)

#: Signed-in sessions of the staff pages and the portal. Only a hash of the session's
#: token is kept, so a copy of this table opens no session.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    # The staff user's id, or the card id for the portal.
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_seen_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.CheckConstraint("kind IN ('staff', 'portal')", name="kind"),
    sa.Index("ix_web_sessions_subject", "kind", "subject"),
)

#: Every read of a household's record by someone other than its members (DESIGN.md
#: invariant 6): who, in what role, when, and the purpose they stated. Rows are only ever
#: added; the household's members see them in the portal.
access_log = sa.Table(
    "access_log",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("household_id", Id, sa.ForeignKey("households.id"), nullable=False),
    # 'staff' (a staff user) or 'partner' (a system asking through the registry API).
    sa.Column("actor_kind", sa.String(8), nullable=False),
    sa.Column("actor_id", Id, nullable=False),
    sa.Column("actor_name", sa.String(100), nullable=False),
    sa.Column("actor_role", sa.String(32), nullable=False),
    sa.Column("purpose", sa.String(300), nullable=False),
    # What was read: the whole record, a search result, an appeal.
    sa.Column("what", sa.String(32), nullable=False),
    sa.Column("read_at", Timestamp, nullable=False),
    # Consent and authorisation the asking system sent with its request (JSON), if any.
    sa.Column("consent", sa.Text),
    sa.Index("ix_access_log_household", "household_id", "read_at"),
    sa.CheckConstraint("actor_kind IN ('staff', 'partner')", name="actor_kind"),
)

#: Appeals filed by card holders, and the decision a person made on each.
appeals = sa.Table(
    "appeals",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("card_id", sa.String(16), nullable=False),
    sa.Column("household_id", Id, sa.ForeignKey("households.id"), nullable=False, index=True),
    # entitlement (a decision), redemption (a refused or wrong redemption), data (a wrong record)
    sa.Column("subject", sa.String(16), nullable=False),
    sa.Column("entitlement_id", Id),
    sa.Column("ledger_seq", Id),
    sa.Column("statement", sa.Text, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("filed_at", Timestamp, nullable=False),
    sa.Column("decided_at", Timestamp),
    sa.Column("decided_by", Id, sa.ForeignKey("staff_users.id")),
    sa.Column("decided_by_name", sa.String(100)),
    sa.Column("reason", sa.Text),
    sa.Index("ix_appeals_status", "status", "filed_at"),
    sa.CheckConstraint("subject IN ('entitlement', 'redemption', 'data')", name="subject"),
    sa.CheckConstraint("status IN ('open', 'upheld', 'rejected')", name="status"),
)

# -- the registry API (DCI): partner systems, their transactions and subscriptions ----------

#: Systems allowed to ask the registry through the DCI Social Registry API, each registered by
#: an administrator with a bearer credential, the Ed25519 key it signs messages with, the
#: purpose it asks for (written in the access log of everyone it reads), and the fields it
#: may receive.
partners = sa.Table(
    "partners",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    # The ``sender_id`` its messages carry, and the first part of its key ids.
    sa.Column("sender_id", sa.String(64), nullable=False, unique=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    # The key it signs with: raw Ed25519 public key, base64url, under ``SENDER|KEY|ed25519``.
    sa.Column("key_name", sa.String(64), nullable=False),
    sa.Column("public_key", sa.String(64), nullable=False),
    sa.Column("purpose", sa.String(300), nullable=False),
    # JSON list of the record fields it may receive.
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("expires_at", Timestamp),
    sa.Column("created_at", Timestamp, nullable=False),
)

#: Each request a partner made (and each refusal), so an asynchronous search can be asked
#: about later (txn/status) and an auditor can see what was asked and refused.
partner_requests = sa.Table(
    "partner_requests",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("partner_id", Id, sa.ForeignKey("partners.id")),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("transaction_id", sa.String(99), nullable=False),
    sa.Column("correlation_id", sa.String(99), nullable=False, unique=True),
    # rcvd, pdng, succ, rjct (the DCI statuses)
    sa.Column("status", sa.String(4), nullable=False),
    # Why it was refused, if it was (a DCI reason code and a sentence).
    sa.Column("reason_code", sa.String(64)),
    sa.Column("reason", sa.String(500)),
    sa.Column("received_at", Timestamp, nullable=False),
    sa.Column("completed_at", Timestamp),
    # The message answered (JSON), kept for txn/status.
    sa.Column("response", sa.Text),
    sa.Index("ix_partner_requests_transaction", "partner_id", "transaction_id"),
    sa.CheckConstraint("status IN ('rcvd', 'pdng', 'succ', 'rjct')", name="status"),
)

#: Partners' subscriptions to changes in the registry (notify callbacks).
partner_subscriptions = sa.Table(
    "partner_subscriptions",
    metadata,
    sa.Column("code", sa.String(99), primary_key=True),
    sa.Column("partner_id", Id, sa.ForeignKey("partners.id"), nullable=False, index=True),
    sa.Column("reg_event_type", sa.String(32), nullable=False),
    sa.Column("filter", sa.Text, nullable=False),
    sa.Column("notify_uri", sa.String(500), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("ended_at", Timestamp),
    sa.CheckConstraint("status IN ('subscribe', 'unsubscribe')", name="status"),
)

#: Signed messages seen from partners, kept while their signatures are good: a message
#: replayed within that time (same sender, same message id) is refused.
partner_messages = sa.Table(
    "partner_messages",
    metadata,
    sa.Column("sender_id", sa.String(64), primary_key=True),
    sa.Column("message_id", sa.String(200), primary_key=True),
    sa.Column("seen_at", Timestamp, nullable=False, index=True),
)
