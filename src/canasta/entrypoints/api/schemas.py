"""API shapes, kept apart from domain objects."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

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

    card: str = Field(min_length=1, max_length=64, description="Card id as printed or scanned")
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


class BalanceLine(BaseModel):
    programme: str
    unit: str
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
