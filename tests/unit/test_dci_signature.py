"""The body signature of DCI messages: sign, verify, and every way a signature is refused."""

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from canasta.domain import dci_signature as sig

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
KID = sig.key_id("civil-registry", "k1")
HEADER = {"message_id": "m1", "sender_id": "civil-registry", "action": "search", "total_count": 1}
MESSAGE = {"transaction_id": "t1", "search_request": [{"reference_id": "r1", "name": "Ñandú"}]}
NOW = 1_764_400_000


def _keys(kid: str) -> object:
    return KEY.public_key() if kid == KID else None


def test_a_signed_message_verifies_and_names_its_key() -> None:
    value = sig.sign(HEADER, MESSAGE, KEY, KID, NOW)
    assert value.startswith('namespace="dci", kidId="civil-registry|k1|ed25519", algorithm="ed25519"')
    signed = sig.verify(value, HEADER, MESSAGE, _keys, NOW + 10)  # type: ignore[arg-type]
    assert (signed.kid, signed.sender_id, signed.created) == (KID, "civil-registry", NOW)
    # The same, written the Beckn way.
    beckn = "Signature: " + value.replace("kidId", "keyId")
    assert sig.verify(beckn, HEADER, MESSAGE, _keys, NOW).kid == KID  # type: ignore[arg-type]


def test_the_digest_is_over_sorted_compact_json_of_header_and_message() -> None:
    # Key order does not matter; any change of content does.
    shuffled = dict(reversed(list(HEADER.items())))
    assert sig.digest(shuffled, MESSAGE) == sig.digest(HEADER, MESSAGE)
    assert sig.digest(HEADER | {"total_count": 2}, MESSAGE) != sig.digest(HEADER, MESSAGE)


@pytest.mark.parametrize("value", [None, "", "unsigned", "unsigned-stub", "  "])
def test_placeholders_are_missing_signatures(value: object) -> None:
    assert sig.is_placeholder(value)
    with pytest.raises(sig.SignatureMissing):
        sig.verify(value, HEADER, MESSAGE, _keys, NOW)  # type: ignore[arg-type]


def test_every_way_a_signature_is_refused() -> None:
    good = sig.sign(HEADER, MESSAGE, KEY, KID, NOW)
    cases = {
        "invalid-signature": "lacks",
        good.replace('algorithm="ed25519"', 'algorithm="rsa-sha256"'): "only ed25519",
        good.replace(f'created="{NOW}"', 'created="soon"'): "malformed",
        sig.sign(HEADER, MESSAGE, OTHER, KID, NOW): "does not match",
        sig.sign(HEADER, MESSAGE, KEY, sig.key_id("civil-registry", "k9"), NOW): "no key",
        sig.sign(HEADER, MESSAGE, KEY, KID, NOW - 400): "expired",
        sig.sign(HEADER, MESSAGE, KEY, KID, NOW + 120): "future",
    }
    for value, reason in cases.items():
        with pytest.raises(sig.SignatureInvalid, match=reason):
            sig.verify(value, HEADER, MESSAGE, _keys, NOW)  # type: ignore[arg-type]
    with pytest.raises(sig.SignatureInvalid, match="does not match"):
        sig.verify(good, HEADER, MESSAGE | {"transaction_id": "t2"}, _keys, NOW)  # type: ignore[arg-type]
    with pytest.raises(sig.SignatureInvalid, match="not the sender"):
        sig.verify(good, HEADER | {"sender_id": "someone-else"}, MESSAGE, _keys, NOW)  # type: ignore[arg-type]


def test_keys_travel_as_jwk_or_base64() -> None:
    public = KEY.public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = sig.jwk(public, KID)
    assert (key["kty"], key["crv"], key["alg"], key["kid"]) == ("OKP", "Ed25519", "EdDSA", KID)
    for text in (
        key["x"],
        base64.b64encode(raw).decode(),
        json.dumps({"kty": "OKP", "crv": "Ed25519", "x": key["x"]}),
    ):
        assert sig.public_key_from(text).public_bytes(Encoding.Raw, PublicFormat.Raw) == raw
    refusals = {
        "not base64 !": "32 bytes|base64",
        base64.b64encode(b"short").decode(): "32 bytes",
        '{"kty": "RSA"}': "Ed25519 JWK",
        "{nope": "JSON",
    }
    for bad, reason in refusals.items():
        with pytest.raises(ValueError, match=reason):
            sig.public_key_from(bad)
    with pytest.raises(ValueError, match="key name"):
        sig.key_id("s", "bad key")


def test_a_signature_may_not_be_made_to_last() -> None:
    lasting = sig.sign(HEADER, MESSAGE, KEY, KID, NOW, lifetime=10 * 365 * 86400)
    with pytest.raises(sig.SignatureInvalid, match="at most 3600 seconds"):
        sig.verify(lasting, HEADER, MESSAGE, _keys, NOW + 60)  # type: ignore[arg-type]
    old = sig.sign(HEADER, MESSAGE, KEY, KID, NOW - 4000, lifetime=3600)
    with pytest.raises(sig.SignatureInvalid):
        sig.verify(old, HEADER, MESSAGE, _keys, NOW)  # type: ignore[arg-type]
