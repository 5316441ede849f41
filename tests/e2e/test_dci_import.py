"""Two canastas: one imports from the other over the DCI registry API, signed both ways,
through the same validation as a file, and the source's households see the read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from canasta.adapters import migrate
from canasta.adapters.db import make_engine
from canasta.adapters.tables import households, persons
from canasta.domain import dci_signature
from canasta.domain.errors import ImportRejected
from canasta.entrypoints.api.app import create_server
from canasta.service import partners, portal
from canasta.service.bootstrap import bootstrap
from canasta.service.dci_client import DEFAULT_QUERY, Client, DciUnreachable, import_from_dci
from canasta.service.keys import load_keyring
from canasta.service.settings import Settings
from canasta.service.transparency import bind_keys, keyring_of
from tests.helpers import World, build_world

FIELDS = [
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
]


@pytest.fixture
def other(tmp_path: Path) -> Iterator[sa.Engine]:
    """The importing canasta: its own SQLite database and keys."""
    engine = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    migrate.upgrade(engine)
    bind_keys(engine, load_keyring(tmp_path / "other-keys"))
    yield engine
    engine.dispose()


def _source(
    engine: sa.Engine, database_url: str, other: sa.Engine, fields: list[str]
) -> tuple[World, str, Any]:
    world = build_world(engine)
    ours = dci_signature.jwk(keyring_of(other).dci.private.public_key(), "")["x"]
    _, token = partners.register(
        engine,
        None,
        "Canasta B",
        "canasta-b",
        ours,
        "dci",
        "Enrolling people already registered elsewhere",
        fields,
    )
    canasta = bootstrap(Settings.load(database_url))
    return world, token, canasta


def _people(engine: sa.Engine) -> list[tuple[str, str, str, str]]:
    with engine.connect() as conn:
        return [
            (r.registration_id, r.family_name, r.second_family_name, r.ref)
            for r in conn.execute(
                sa.select(
                    persons.c.registration_id,
                    persons.c.family_name,
                    persons.c.second_family_name,
                    households.c.ref,
                )
                .join(households, households.c.id == persons.c.household_id)
                .order_by(persons.c.registration_id)
            )
        ]


def test_one_canasta_imports_another_page_by_page(
    engine: sa.Engine, database_url: str, other: sa.Engine, tmp_path: Path
) -> None:
    world, token, canasta = _source(engine, database_url, other, FIELDS)
    try:
        with TestClient(create_server(canasta), base_url="http://registry-a") as http:
            client = Client(
                "http://registry-a/", token, "canasta-b", keyring_of(other).dci.private, http=http
            )
            kept = tmp_path / "from-a.csv"
            summary, written = import_from_dci(other, client, keep=kept)
            assert (summary.people, summary.households) == (10, 4)
            assert written == kept and kept.exists()
            assert _people(other) == _people(engine)  # both family names kept apart
            # Small pages give the same: the client walks them all.
            pages = list(client.records(DEFAULT_QUERY, page_size=3))
            assert len(pages) == 10
    finally:
        canasta.close()
    (seen, *_) = portal.access_log(engine, world.household_cards["H2"])
    assert (seen.actor_name, seen.purpose) == ("Canasta B", "Enrolling people already registered elsewhere")


def test_records_without_the_fields_a_registration_needs_are_refused_row_by_row(
    engine: sa.Engine, database_url: str, other: sa.Engine
) -> None:
    _, token, canasta = _source(engine, database_url, other, ["registration_id", "given_names", "household"])
    try:
        with TestClient(create_server(canasta), base_url="http://registry-a") as http:
            client = Client(
                "http://registry-a/", token, "canasta-b", keyring_of(other).dci.private, http=http
            )
            with pytest.raises(ImportRejected) as refused:
                import_from_dci(other, client)
    finally:
        canasta.close()
    assert "10 rows; nothing was imported" in refused.value.message
    assert {p.field for p in refused.value.problems} >= {"family_name", "date_of_birth", "sex", "region"}
    assert all(p.file.endswith(".csv") and p.row >= 1 for p in refused.value.problems)
    assert _people(other) == []


def test_a_registry_that_does_not_know_canasta_or_forges_its_answer_is_refused(
    engine: sa.Engine, database_url: str, other: sa.Engine, tmp_path: Path
) -> None:
    _, token, canasta = _source(engine, database_url, other, FIELDS)
    try:
        with TestClient(create_server(canasta), base_url="http://registry-a") as http:
            stranger = load_keyring(tmp_path / "stranger").dci.private
            with pytest.raises(DciUnreachable, match=r"err\.signature\.invalid"):
                import_from_dci(other, Client("http://registry-a/", token, "canasta-b", stranger, http=http))
            with pytest.raises(DciUnreachable, match=r"err\.request\.unauthorized"):
                import_from_dci(
                    other,
                    Client(
                        "http://registry-a/",
                        "dci_nope",
                        "canasta-b",
                        keyring_of(other).dci.private,
                        http=http,
                    ),
                )

            class Forger(TestClient):
                """Publishes a key that did not sign the answers."""

                def get(self, url: Any, **kwargs: Any) -> Any:
                    answer = super().get(url, **kwargs)
                    if str(url).endswith("jwks.json"):
                        key = dci_signature.jwk(stranger.public_key(), "canasta|dci|ed25519")
                        return httpx.Response(200, json={"keys": [key]}, request=answer.request)
                    return answer

            with Forger(create_server(canasta), base_url="http://registry-a") as forged:
                client = Client(
                    "http://registry-a/", token, "canasta-b", keyring_of(other).dci.private, http=forged
                )
                with pytest.raises(DciUnreachable, match="not signed by its published key"):
                    import_from_dci(other, client)
    finally:
        canasta.close()
    assert _people(other) == []
