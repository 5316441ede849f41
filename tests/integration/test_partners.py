"""Partner systems of the registry API: registration, credentials, keys, expiry."""

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canasta.adapters.tables import partners
from canasta.domain import dci_signature
from canasta.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from canasta.domain.firewall import ProtectedAttribute
from canasta.service import partners as partner_service
from canasta.service.authz import Role, Staff
from canasta.service.partners import PartnerUnauthenticated

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = dci_signature.jwk(KEY.public_key(), "")["x"]
PURPOSE = "Checking eligibility for the school meals programme"


def _register(engine: sa.Engine, **changes: object) -> tuple[partner_service.Partner, str]:
    args: dict[str, object] = {
        "name": "Civil registry",
        "sender_id": "civil-registry",
        "public_key": PUBLIC,
        "key_name": "k1",
        "purpose": PURPOSE,
        "fields": ["given_names", "family_names", "birth_date"],
        "expires_on": None,
    } | changes
    return partner_service.register(engine, None, **args)  # type: ignore[arg-type]


def test_a_partner_is_registered_and_its_token_and_key_work(engine: sa.Engine) -> None:
    partner, token = _register(engine)
    assert token.startswith("dci_") and partner.kid == "civil-registry|k1|ed25519"
    with engine.connect() as conn:
        stored = conn.execute(sa.select(partners.c.token_hash)).scalar_one()
    assert token not in stored and len(stored) == 64
    assert partner_service.authenticate(engine, token).name == "Civil registry"
    assert dci_signature.jwk(partner_service.authenticate(engine, token).public_key, "")["x"] == PUBLIC
    for wrong in (None, "", "dci_wrong", "x" * 300):
        with pytest.raises(PartnerUnauthenticated):
            partner_service.authenticate(engine, wrong)


def test_a_disabled_or_expired_partner_is_refused(engine: sa.Engine) -> None:
    _, token = _register(engine)
    partner_service.set_active(engine, None, "civil-registry", False)
    with pytest.raises(PartnerUnauthenticated, match="not a registered"):
        partner_service.authenticate(engine, token)
    partner_service.set_active(engine, None, "civil-registry", True)
    _, old = _register(engine, name="Old agency", sender_id="old-agency", expires_on="2020-01-31")
    with pytest.raises(PartnerUnauthenticated, match="ended on 2020-01-31"):
        partner_service.authenticate(engine, old)
    with pytest.raises(NotFound):
        partner_service.set_active(engine, None, "nobody", False)


def test_bad_registrations_are_refused_and_nothing_is_stored(engine: sa.Engine) -> None:
    cases: dict[str, dict[str, object]] = {
        "32 bytes": {"public_key": "c2hvcnQ"},
        "sender id": {"sender_id": "has space"},
        "key name": {"key_name": "bad key"},
        "purpose": {"purpose": "x"},
        "at least one field": {"fields": []},
        "declared attribute": {"fields": ["salary_history"]},
        "YYYY-MM-DD": {"expires_on": "next year"},
    }
    for reason, change in cases.items():
        with pytest.raises(InvalidInput, match=reason):
            _register(engine, **change)
    with pytest.raises(ProtectedAttribute):
        _register(engine, fields=["given_names", "religion"])
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(partners)) == 0
    _register(engine)
    with pytest.raises(Conflict):
        _register(engine, name="Another name")


def test_only_an_administrator_registers_partners(engine: sa.Engine) -> None:
    officer = Staff(1, "ana", "Ana", Role.PROGRAMME_OFFICER)
    with pytest.raises(Forbidden):
        partner_service.register(engine, officer, "X", "x", PUBLIC, "k1", PURPOSE, ["sex"])
    with pytest.raises(Forbidden):
        partner_service.list_partners(engine, officer)
