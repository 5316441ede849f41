"""Prepare a canasta database for the public SPDCI compliance suite (OpenSPP/spdci-compliance),
which is run from its own checkout, never from this repository:

    python tests/conformance/prepare_dci_suite.py sqlite:////tmp/dci/canasta.db   # prints a token
    CANASTA_DCI_ALLOW_UNSIGNED=1 CANASTA_DCI_PRIVATE_CALLBACKS=1 \\
        canasta serve --db sqlite:////tmp/dci/canasta.db --port 8765
    # in the suite's checkout, after npm install:
    API_BASE_URL=http://127.0.0.1:8765/ DCI_AUTH_TOKEN=<token> CALLBACK_SERVER_ENABLED=true \\
        npm run test:social          # and test:smoke, test:core (docs/dci.md)

It declares a ``poverty_score`` (a proxy means test score: income and assets), registers the
households the suite's queries expect (the person ``TEST-001``; households in
``central_region`` with ``poverty_score`` under 5 and fewer than 5 members; young members),
and the suite's partner, ``test-client``. The suite signs nothing (its ``signature`` is a
placeholder), hence ``CANASTA_DCI_ALLOW_UNSIGNED=1``; its callback receiver listens on
127.0.0.1, hence ``CANASTA_DCI_PRIVATE_CALLBACKS=1``. Neither is for a real deployment.
"""

from __future__ import annotations

import sys
from datetime import date

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from canasta.domain import dci_signature
from canasta.domain.model import Household, Person
from canasta.service import partners, registry, rules
from canasta.service.bootstrap import open_database
from canasta.service.settings import Settings

SCHEMA = """
[attributes.poverty_score]
type = "decimal"
unit = "score"
belongs_to = "household"
category = "income and assets"
purpose = "Proxy means test score, for targeting."
"""
FIELDS = [
    "registration_id",
    "given_names",
    "family_names",
    "sex",
    "birth_date",
    "household",
    "group_size",
    "region",
    "poverty_score",
]


def main(url: str) -> str:
    engine = open_database(Settings.load(url))
    rules.declare_schema(engine, SCHEMA, "schema.toml")
    homes = []
    for n, (region, score, size, born) in enumerate(
        [
            ("central_region", 3.0, 3, date(2004, 5, 1)),
            ("central_region", 2.0, 2, date(2010, 2, 2)),
            ("north_region", 7.5, 5, date(1970, 3, 3)),
        ]
    ):
        home = Household(
            f"HH-{n}", region, "central_district", f"Street {n}", attributes={"poverty_score": score}
        )
        for m in range(size):
            registration = "TEST-001" if (n, m) == (0, 0) else f"P-{n}-{m}"
            home.members.append(Person(registration, "Ana", "Quispe", "Mamani", "FM"[m % 2], born))
        homes.append(home)
    registry.import_households(engine, homes)
    # The suite signs nothing: the key is registered because every partner has one.
    key = dci_signature.jwk(Ed25519PrivateKey.generate().public_key(), "")["x"]
    _, token = partners.register(
        engine,
        None,
        "Compliance suite",
        "test-client",
        key,
        "k1",
        "Checking conformance with the SPDCI Social Registry API",
        FIELDS,
    )
    engine.dispose()
    return token


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(main(sys.argv[1]))
