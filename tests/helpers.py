"""A small world for integration and end-to-end tests, built through the service layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlalchemy as sa

from canasta.domain.model import (
    BeneficiaryKind,
    Household,
    Outlet,
    OutletKind,
    Person,
    Programme,
    Vehicle,
)
from canasta.domain.quantity import to_milli
from canasta.service import cards as card_service
from canasta.service import outlets as outlet_service
from canasta.service import programmes as programme_service
from canasta.service import registry as registry_service


@dataclass
class World:
    household_cards: dict[str, str] = field(default_factory=dict)  # household ref → card
    vehicle_cards: dict[str, str] = field(default_factory=dict)  # plate → card
    tokens: dict[str, str] = field(default_factory=dict)  # outlet code → token


def household(ref: str, members: int, region: str = "Norte") -> Household:
    home = Household(ref, region, "Alameda", f"Calle {ref}")
    for n in range(members):
        home.members.append(Person(f"{ref}-{n}", "Ana", "Pérez", "Soto", "F", date(1980, 1, 1 + n), ""))
    return home


def build_world(engine: sa.Engine, households: int = 4, vehicles: int = 3) -> World:
    """Households H1..Hn with 1..n members, vehicles owned by H1.., a fuel programme (40 L
    per vehicle), a food programme (2 kg + 1.5 kg per member), open cycles for both, cards
    for everyone, and two outlets."""
    registry_service.import_households(engine, [household(f"H{n}", n) for n in range(1, households + 1)])
    registry_service.import_vehicles(
        engine,
        [Vehicle(f"AB{n:04d}", "car", f"H{1 + n % households}") for n in range(1, vehicles + 1)],
    )
    programme_service.create_programme(
        engine, Programme("fuel", "litre", BeneficiaryKind.VEHICLE, 30, quota_fixed=to_milli(40))
    )
    programme_service.create_programme(
        engine,
        Programme(
            "food",
            "kg",
            BeneficiaryKind.HOUSEHOLD,
            30,
            quota_fixed=to_milli(2),
            quota_per_member=to_milli("1.5"),
        ),
    )
    programme_service.open_cycle(engine, "fuel", date(2026, 11, 1))
    programme_service.open_cycle(engine, "food", date(2026, 11, 1))
    world = World()
    for card in card_service.issue_missing_cards(engine):
        if card.kind is BeneficiaryKind.HOUSEHOLD:
            world.household_cards[card.holder] = card.card_id
        else:
            world.vehicle_cards[card.holder] = card.card_id
    world.tokens = outlet_service.create_outlets(
        engine,
        [
            Outlet("fs-1", "Estación Uno", OutletKind.FUEL_STATION, "Norte"),
            Outlet("shop-1", "Almacén Uno", OutletKind.SHOP, "Norte"),
        ],
    )
    return world


def fuel_cycle_around_today(engine: sa.Engine) -> None:
    """Close the world's fuel cycle and open one that began yesterday, so an outlet's clock
    (skewed by up to half a day in the simulation) is inside it whatever the date."""
    programme_service.close_cycle(engine, "fuel")
    programme_service.open_cycle(engine, "fuel", date.today() - timedelta(days=1))
