"""The API over a small world, as an outlet and a card holder reach it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from canasta.entrypoints.api.app import create_server
from canasta.service.bootstrap import bootstrap
from canasta.service.settings import Settings
from tests.helpers import World, build_world


@pytest.fixture
def world(engine: sa.Engine) -> World:
    return build_world(engine)


@pytest.fixture
def client(world: World, database_url: str) -> Iterator[TestClient]:
    canasta = bootstrap(Settings.load(database_url))
    with TestClient(create_server(canasta), raise_server_exceptions=False) as client:
        yield client
    canasta.close()
