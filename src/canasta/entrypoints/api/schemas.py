"""API shapes, kept apart from domain objects."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from canasta.domain.quantity import MAX_UNITS

#: Printable ASCII without spaces: what fits in a header and in every database unchanged.
KEY_PATTERN = r"^[\x21-\x7e]{1,128}$"

Quantity = Annotated[
    Decimal,
    Field(
        gt=0,
        le=MAX_UNITS,
        decimal_places=3,
        description="In the programme's unit; up to 3 decimals",
    ),
]


class RedemptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    card: str = Field(
        min_length=1, max_length=200, description="Card id as printed, or the card's scanned QR code (CN1.…)"
    )
    programme: str = Field(min_length=1, max_length=64)
    quantity: Quantity
    outlet: str = Field(min_length=1, max_length=64, description="Must be the calling outlet")
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=KEY_PATTERN,
        description="Chosen by the outlet, unique per redemption; may instead be sent as the "
        "Idempotency-Key header",
    )


class LedgerEntryOut(BaseModel):
    seq: int
    kind: str
    recorded_at: str
    body: dict[str, Any]
    prev: str
    hash: str


class LogReceiptOut(BaseModel):
    """Proof that the redemption is in the public transparency log. Save it as a file and
    check it with ``canasta verify receipt FILE --key KEY`` (the key from GET /log/v1/key)."""

    format: str = Field(description="canasta-receipt/1")
    entry: LedgerEntryOut = Field(description="The ledger entry, as its hash covers it")
    salt: str = Field(description="Base64; opens the entry's commitment in the public log")
    leaf_index: int = Field(description="The entry's leaf in the log (its ledger position - 1)")
    inclusion_proof: list[str] = Field(description="RFC 9162 inclusion proof, base64 hashes")
    checkpoint: str = Field(description="A signed checkpoint (C2SP signed note) of a tree holding the leaf")


class ReceiptOut(BaseModel):
    redemption_id: int = Field(description="The redemption's ledger position")
    card: str
    programme: str
    unit: str
    quantity: str
    remaining: str
    outlet: str
    time: str
    ledger_position: int
    entry_hash: str
    log_receipt: LogReceiptOut | None = Field(
        description="The receipt the public log verifies (null only if the log could not sign yet)"
    )


class BalanceLine(BaseModel):
    programme: str
    unit: str
    entitlement: int = Field(description="Why this much: GET /api/v1/entitlements/{entitlement}/explanation")
    cycle: int
    starts_on: str
    ends_on: str
    entitled: str
    redeemed: str
    remaining: str


class BalanceOut(BaseModel):
    card: str
    status: str
    balances: list[BalanceLine]


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


class FactUsed(BaseModel):
    what: str = Field(description="The fact, in plain language")
    value: str = Field(description="Its value as the cycle run read it")


class ClauseOut(BaseModel):
    text: str = Field(description="The clause of the eligibility rule, in plain language")
    used: list[FactUsed]
    holds: bool | None = Field(description="true, false, or null when a value it needs is not known")
    result: str


class QuotaOut(BaseModel):
    text: str = Field(description="The quota rule, in plain language")
    used: list[FactUsed]
    computed: str = Field(description="What the rule computed, before rounding and cap")
    adjustments: list[str]
    quantity: str = Field(description="What is granted, in the programme's unit")
    unit: str


class PolicyRef(BaseModel):
    programme: str
    version: int
    sha256: str = Field(description="SHA-256 of the published policy text (canasta policy show)")


class ExplanationOut(BaseModel):
    entitlement: int
    language: str = Field(description="en or es")
    cycle: int
    starts_on: str
    ends_on: str
    policy: PolicyRef
    eligible: bool | None
    summary: str
    combine: str = Field(description="'and': every clause must hold; 'or': at least one")
    clauses: list[ClauseOut]
    quota: QuotaOut | None = Field(description="How the quantity was computed, when eligible")
    appeal: str = Field(description="How to appeal the decision to a person")


class EnrolRequest(BaseModel):
    public_key: str = Field(
        min_length=40, max_length=64, description="The outlet's Ed25519 journal key: 32 raw bytes, base64"
    )


class AllowanceOut(BaseModel):
    programme: str
    unit: str
    cycle_id: int
    starts_on: str
    ends_on: str
    share_permille: int = Field(
        description="Share of a card's entitlement that may be redeemed offline, in 1/1000"
    )
    reference: int = Field(
        description="Entitlement assumed for a card not seen online this cycle (1/1000 unit)"
    )
    daily_cap: int = Field(description="What this outlet may hand out offline in one UTC day (1/1000 unit)")


class OfflineOut(BaseModel):
    outlet: str
    allowances: list[AllowanceOut]
    issuer_key: str = Field(description="The card issuer's verifier key (C2SP note verifier)")


class SyncRequest(BaseModel):
    entries: list[dict[str, Any]] = Field(
        max_length=1000,
        description="Signed journal entries: outlet, counter, card, programme, quantity (1/1000 unit), "
        "recorded_at, signature (base64 Ed25519 over the entry's canonical JSON)",
    )


class EntryOutcomeOut(BaseModel):
    counter: int
    outcome: str = Field(
        description="redeemed, replayed (it had reached the server online), conflict, already"
    )
    ledger_position: int | None
    applied: int = Field(description="What was recorded as a redemption (1/1000 unit)")
    shortfall: int = Field(description="What the balance did not cover, kept as a conflict (1/1000 unit)")
    reason: str


class SyncOut(BaseModel):
    outlet: str
    outcomes: list[EntryOutcomeOut]
    gaps: list[list[int]] = Field(description="Counters never synced below the highest: [first, last] ranges")
    highest: int
