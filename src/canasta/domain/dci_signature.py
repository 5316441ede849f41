"""The body signature of SPDCI messages (DCI Social Registry API v1.0.0, ``MsgSignature``).

An envelope ``{"signature", "header", "message"}`` is signed over its header and message.
The standard gives the shape of the value (draft-cavage HTTP signature parameters, with
Ed25519) but not the digest or the canonical form; canasta follows what OpenSPP, the
reference implementation, does, so that the two can talk:

- ``digest`` = base64(SHA-256(JSON of ``{"header": …, "message": …}`` with sorted keys, no
  spaces, ASCII escapes));
- the signing string is ``(created): C\\n(expires): E\\ndigest: D``;
- the value is ``namespace="dci", kidId="SENDER|KEY|ed25519", algorithm="ed25519",
  created="C", expires="E", headers="(created) (expires) digest", signature="BASE64"``.

A verifier accepts ``keyId`` for ``kidId`` and a leading ``Signature:``, refuses a value past
its expiry or created more than ``SKEW`` seconds in the future, and checks the Ed25519
signature with the key the sender published under that key id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from canasta.domain.errors import CanastaError

ALGORITHM = "ed25519"
LIFETIME = 300
#: The longest a signature may be good for, whatever its ``expires`` says.
LONGEST = 3600
SKEW = 60
#: What test tools put in ``signature`` for "not signed"; accepted only where unsigned
#: messages are allowed at all.
PLACEHOLDERS = frozenset({"", "unsigned", "unsigned-stub"})
_PARAM = re.compile(r'(\w+)="([^"]*)"')
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class SignatureMissing(CanastaError):
    """The message is not signed, and this registry requires signed messages."""

    code = "err.signature.missing"


class SignatureInvalid(CanastaError):
    """The signature is malformed, expired, from an unknown key, or does not verify."""

    code = "err.signature.invalid"


def digest(header: Mapping[str, Any], message: Any) -> str:
    canonical = json.dumps({"header": header, "message": message}, sort_keys=True, separators=(",", ":"))
    return base64.b64encode(hashlib.sha256(canonical.encode()).digest()).decode()


def _signing_string(created: int, expires: int, body_digest: str) -> bytes:
    return f"(created): {created}\n(expires): {expires}\ndigest: {body_digest}".encode()


def key_id(sender_id: str, key_name: str) -> str:
    """The id a key is published and named under: ``SENDER|KEY|ed25519``."""
    if not _KEY_ID.fullmatch(key_name):
        raise ValueError(f"a key name is 1 to 64 letters, digits, '.', '_' or '-', not {key_name!r}")
    return f"{sender_id}|{key_name}|{ALGORITHM}"


def sign(
    header: Mapping[str, Any],
    message: Any,
    key: Ed25519PrivateKey,
    kid: str,
    now: int,
    lifetime: int = LIFETIME,
) -> str:
    """The ``signature`` value for an envelope sent at unix time ``now``."""
    created, expires = now, now + lifetime
    signature = key.sign(_signing_string(created, expires, digest(header, message)))
    return (
        f'namespace="dci", kidId="{kid}", algorithm="{ALGORITHM}", created="{created}", '
        f'expires="{expires}", headers="(created) (expires) digest", '
        f'signature="{base64.b64encode(signature).decode()}"'
    )


@dataclass(frozen=True, slots=True)
class Signed:
    """A verified signature: which key signed, and when."""

    kid: str
    sender_id: str
    created: int


def is_placeholder(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in PLACEHOLDERS)


def verify(
    value: object,
    header: Mapping[str, Any],
    message: Any,
    key_of: Callable[[str], Ed25519PublicKey | None],
    now: int,
) -> Signed:
    """Check an envelope's ``signature`` against its header and message. ``key_of`` finds
    the public key published under a key id (None: unknown)."""
    if is_placeholder(value):
        raise SignatureMissing("the message is not signed; sign it over its header and message")
    if not isinstance(value, str) or len(value) > 2000:
        raise SignatureInvalid("the signature is not a signature string")
    text = value.strip()
    if text.lower().startswith("signature:"):
        text = text[len("signature:") :]
    params = dict(_PARAM.findall(text))
    kid = params.get("kidId") or params.get("keyId")
    missing = [name for name in ("created", "expires", "signature") if not params.get(name)]
    if kid is None or missing:
        raise SignatureInvalid(f"the signature lacks {', '.join(missing or ['kidId'])}")
    if params.get("algorithm", ALGORITHM).lower() != ALGORITHM:
        raise SignatureInvalid(f"only {ALGORITHM} signatures are accepted, not {params['algorithm']!r}")
    try:
        created, expires = int(params["created"]), int(params["expires"])
        raw = base64.b64decode(params["signature"], validate=True)
    except (ValueError, binascii.Error):
        raise SignatureInvalid("the signature's created, expires or signature value is malformed") from None
    if expires < now:
        raise SignatureInvalid("the signature has expired")
    if expires - created > LONGEST or now - created > LONGEST + SKEW:
        raise SignatureInvalid(f"a signature is good for at most {LONGEST} seconds from when it was made")
    if created > now + SKEW or created > expires:
        raise SignatureInvalid("the signature was made in the future")
    public = key_of(kid)
    if public is None:
        raise SignatureInvalid(f"no key {kid!r} is known for this sender")
    sender = kid.split("|", 1)[0]
    if header.get("sender_id") not in (None, sender):
        raise SignatureInvalid(f"the key {kid!r} is not the sender {header.get('sender_id')!r}'s")
    try:
        public.verify(raw, _signing_string(created, expires, digest(header, message)))
    except InvalidSignature:
        raise SignatureInvalid("the signature does not match the header and message") from None
    return Signed(kid, sender, created)


def jwk(public: Ed25519PublicKey, kid: str) -> dict[str, str]:
    """A public key as a JSON Web Key (RFC 8037: OKP, Ed25519)."""
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
        "kid": kid,
        "use": "sig",
        "alg": "EdDSA",
    }


def public_key_from(text: str) -> Ed25519PublicKey:
    """A partner's Ed25519 public key, given as the 32 raw bytes in base64 or base64url (a
    JWK's ``x``), or as a JWK object in JSON."""
    value = text.strip()
    if value.startswith("{"):
        try:
            found = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError("the key is not valid JSON") from None
        if not isinstance(found, dict) or found.get("kty") != "OKP" or found.get("crv") != "Ed25519":
            raise ValueError("the key must be an Ed25519 JWK (kty OKP, crv Ed25519)")
        value = str(found.get("x", ""))
    try:
        raw = base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_") + "=" * (-len(value) % 4))
    except (ValueError, binascii.Error):
        raise ValueError("the key is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)
