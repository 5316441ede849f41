"""Partner systems of the registry API (DCI): who may ask, how they prove it, why they ask,
and what they may receive.

An administrator registers each partner with:
- a bearer credential (shown once; only its SHA-256 is kept);
- the Ed25519 key it signs its messages with, under ``SENDER|KEY|ed25519``;
- its purpose, a sentence written into the access log of every household it reads;
- the record fields it may receive (each through the protected-attribute firewall);
- optionally, the date its access ends.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from canasta.adapters.db import transaction
from canasta.adapters.tables import partners
from canasta.domain import dci_signature
from canasta.domain.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from canasta.domain.firewall import refuse_protected
from canasta.domain.text import typed
from canasta.service.access import check_purpose
from canasta.service.authz import Permission, Staff, require
from canasta.service.outlets import hash_token

#: What a partner may be given of a person's record. Declared attributes are given by name.
BASE_FIELDS = (
    "registration_id",
    "given_names",
    "family_names",
    "sex",
    "birth_date",
    "household",
    "region",
    "municipality",
    "address",
    "phone",
    "group_size",
)
_SENDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
TOKEN_PREFIX = "dci_"  # noqa: S105 - a prefix that says what a token is for, not a secret


class PartnerUnauthenticated(Unauthenticated):
    """A request without a valid partner credential."""

    code = "err.request.unauthorized"


@dataclass(frozen=True, slots=True)
class Partner:
    id: int
    name: str
    sender_id: str
    key_name: str
    public_key: Ed25519PublicKey
    purpose: str
    fields: tuple[str, ...]
    active: bool
    expires_at: str | None

    @property
    def kid(self) -> str:
        return dci_signature.key_id(self.sender_id, self.key_name)


def _row(r: sa.Row) -> Partner:  # type: ignore[type-arg]
    return Partner(
        int(r.id),
        r.name,
        r.sender_id,
        r.key_name,
        dci_signature.public_key_from(r.public_key),
        r.purpose,
        tuple(json.loads(r.fields)),
        bool(r.active),
        r.expires_at,
    )


def _fields(names: Sequence[str], declared: Sequence[str]) -> tuple[str, ...]:
    chosen = []
    for name in names:
        clean = name.strip()
        refuse_protected(clean, "a field given to a partner system")
        if clean not in BASE_FIELDS and clean not in declared:
            raise InvalidInput(
                f"a partner may be given {', '.join(BASE_FIELDS)} or a declared attribute, not {clean!r}"
            )
        if clean not in chosen:
            chosen.append(clean)
    if not chosen:
        raise InvalidInput("name at least one field the partner may receive")
    return tuple(chosen)


def register(
    engine: sa.Engine,
    actor: Staff | None,
    name: str,
    sender_id: str,
    public_key: str,
    key_name: str,
    purpose: str,
    fields: Sequence[str],
    expires_on: str | None = None,
) -> tuple[Partner, str]:
    """A new partner and its bearer token (shown this once). ``actor`` None is the operator
    at the command line."""
    from canasta.service.registry import declared_attributes

    if actor is not None:
        require(actor, Permission.MANAGE_PARTNERS)
    display = " ".join(typed(name, "partner name").split())
    if not 1 <= len(display) <= 100:
        raise InvalidInput("a partner's name has 1 to 100 characters")
    if not _SENDER.fullmatch(sender_id):
        raise InvalidInput(f"a sender id is 1 to 64 letters, digits, '.', '_', ':' or '-', not {sender_id!r}")
    try:
        key = dci_signature.public_key_from(public_key)
        dci_signature.key_id(sender_id, key_name)
    except ValueError as bad:
        raise InvalidInput(str(bad)) from None
    why = check_purpose(purpose)
    chosen = _fields(fields, list(declared_attributes(engine)))
    expires = None
    if expires_on:
        try:
            expires = datetime.fromisoformat(expires_on).replace(tzinfo=UTC).isoformat(timespec="seconds")
        except ValueError:
            raise InvalidInput(f"the expiry date must be YYYY-MM-DD, not {expires_on!r}") from None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with transaction(engine) as conn:
        taken = conn.execute(
            sa.select(partners.c.name, partners.c.sender_id).where(
                sa.or_(partners.c.name == display, partners.c.sender_id == sender_id)
            )
        ).first()
        if taken is not None:
            raise Conflict(f"a partner named {taken.name!r} or sending as {taken.sender_id!r} is registered")
        new = conn.execute(
            partners.insert()
            .values(
                name=display,
                sender_id=sender_id,
                token_hash=hash_token(token),
                key_name=key_name,
                public_key=dci_signature.jwk(key, "")["x"],
                purpose=why,
                fields=json.dumps(list(chosen)),
                active=True,
                expires_at=expires,
                created_at=now,
            )
            .returning(partners.c.id)
        ).scalar_one()
    return Partner(int(new), display, sender_id, key_name, key, why, chosen, True, expires), token


def authenticate(engine: sa.Engine, token: str | None) -> Partner:
    """The active, unexpired partner this bearer token belongs to."""
    if not token or len(token) > 200:
        raise PartnerUnauthenticated("send the partner's token as 'Authorization: Bearer <token>'")
    with transaction(engine, write=False) as conn:
        row = conn.execute(
            sa.select(partners).where(partners.c.token_hash == hash_token(token))
        ).one_or_none()
    if row is None or not row.active:
        raise PartnerUnauthenticated("the bearer token is not a registered partner's")
    partner = _row(row)
    if not may_ask(partner):
        raise PartnerUnauthenticated(f"the partner's access ended on {str(partner.expires_at)[:10]}")
    return partner


def may_ask(partner: Partner) -> bool:
    """Whether the partner may be answered (or notified) now: active and not expired."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return partner.active and (partner.expires_at is None or partner.expires_at > now)


def partner_by_id(engine: sa.Engine, partner_id: int) -> Partner | None:
    with transaction(engine, write=False) as conn:
        row = conn.execute(sa.select(partners).where(partners.c.id == partner_id)).one_or_none()
    return None if row is None else _row(row)


def list_partners(engine: sa.Engine, actor: Staff | None = None) -> list[Partner]:
    if actor is not None:
        require(actor, Permission.MANAGE_PARTNERS)
    with transaction(engine, write=False) as conn:
        return [_row(r) for r in conn.execute(sa.select(partners).order_by(partners.c.name))]


def set_active(engine: sa.Engine, actor: Staff | None, sender_id: str, active: bool) -> None:
    if actor is not None:
        require(actor, Permission.MANAGE_PARTNERS)
    with transaction(engine) as conn:
        changed = conn.execute(
            sa.update(partners).where(partners.c.sender_id == sender_id).values(active=active)
        ).rowcount
    if not changed:
        raise NotFound(f"there is no partner sending as {sender_id!r}")
