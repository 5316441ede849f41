"""Shared set-up for the page tests: a small world with PINs, a redemption, and one staff
account per role; and the steps of signing in and posting forms as a browser does."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlalchemy as sa
from fastapi.testclient import TestClient

from canasta.domain.model import format_card_id
from canasta.service import portal, staff
from canasta.service.authz import Role
from tests.helpers import World, build_world

PIN = "4826"
PASSWORD = "correct horse battery"
_HIDDEN = re.compile(r'<input type="hidden" name="(csrf|pre)" value="([^"]+)">')


@dataclass
class People:
    world: World
    #: Card ids (formatted) with a PIN set: household H2's card and vehicle AB0001's.
    household_card: str = ""
    vehicle_card: str = ""
    other_household_card: str = ""
    accounts: dict[Role, str] = field(default_factory=dict)


def build_people(engine: sa.Engine) -> People:
    world = build_world(engine)
    people = People(world)
    people.household_card = format_card_id(portal.set_pin(engine, world.household_cards["H2"], PIN))
    people.vehicle_card = format_card_id(portal.set_pin(engine, world.vehicle_cards["AB0001"], PIN))
    people.other_household_card = format_card_id(portal.set_pin(engine, world.household_cards["H3"], "7391"))
    for role in Role:
        account = staff.create_account(
            engine, role.value.replace("_", "-"), f"Demo {role.value}", role.value, PASSWORD
        )
        people.accounts[role] = account.username
    return people


def hidden(html: str, name: str = "csrf") -> str:
    for found_name, value in _HIDDEN.findall(html):
        if found_name == name:
            return str(value)
    raise AssertionError(f"no hidden {name} field in the page")


def portal_sign_in(client: TestClient, card: str, pin: str = PIN) -> None:
    form = client.get("/portal/login")
    answer = client.post(
        "/portal/login",
        data={"card": card, "pin": pin, "pre": hidden(form.text, "pre")},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


def staff_sign_in(client: TestClient, username: str, password: str = PASSWORD) -> None:
    form = client.get("/staff/login")
    answer = client.post(
        "/staff/login",
        data={"username": username, "password": password, "pre": hidden(form.text, "pre")},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
