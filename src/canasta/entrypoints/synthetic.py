"""A synthetic country for the demo and the benchmarks: households with members, vehicles
and outlets, generated from a seed. Names are common Spanish and Portuguese ones; nothing
here describes a real person."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from canasta.domain.model import Household, Outlet, OutletKind, Person, Vehicle

GIVEN_F = [
    "María",
    "Ana",
    "Lucía",
    "Carmen",
    "Rosa",
    "Sofía",
    "Isabel",
    "Fernanda",
    "Juana",
    "Beatriz",
    "Luz",
    "Elena",
]
GIVEN_M = [
    "José",
    "Juan",
    "Luis",
    "Carlos",
    "Jorge",
    "Pedro",
    "Miguel",
    "João",
    "Antonio",
    "Manuel",
    "Diego",
    "Rafael",
]
FAMILY = [
    "García",
    "Rodríguez",
    "González",
    "Fernández",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Díaz",
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Ramírez",
    "Torres",
    "Flores",
    "Rivera",
    "Castro",
    "Morales",
    "Ortiz",
    "Rojas",
    "Vargas",
    "Mendoza",
]
REGIONS = {
    "Norte": ["Alameda", "Bellavista", "Cerro Alto"],
    "Sur": ["Dos Ríos", "El Puerto", "Las Flores"],
    "Centro": ["Capital", "San Pedro", "Villanueva"],
    "Oriente": ["La Sierra", "Monte Verde", "Río Claro"],
    "Costa": ["Bahía", "Playa Ancha", "Puerto Nuevo"],
}
STREETS = ["Calle", "Avenida", "Pasaje", "Rua", "Camino"]

#: What the synthetic registry declares: each attribute with its need category and purpose.
SCHEMA = """\
# The demo country's registry schema: every attribute a rule may use, and why it is held.

[attributes.monthly_income]
type = "decimal"
unit = "CLP thousand"
belongs_to = "household"
category = "income and assets"
purpose = "Income the household declared at registration, for means-tested programmes."
label_en = "monthly income"
label_es = "ingreso mensual"

[attributes.disabled]
type = "boolean"
unit = ""
belongs_to = "person"
category = "disability and care needs"
purpose = "Whether the member lives with a disability that needs daily care."
label_en = "a disability that needs care"
label_es = "una discapacidad que requiere cuidado"

[attributes.commercial_use]
type = "boolean"
unit = ""
belongs_to = "vehicle"
category = "vehicle"
purpose = "Whether the vehicle earns the household's living (taxi, delivery, small haulage)."
label_en = "used for work"
label_es = "de uso laboral"
"""

#: The published policies the demo runs its cycles under (version 1 of each programme is
#: the fixed quota it was created with).
FUEL_POLICY = """\
programme = "fuel"
version = 2
description = "Fuel for households' vehicles: more for vehicles that earn a living, none above a high income."
eligible = "COALESCE(household.monthly_income, 0) < 3000"
quota = \"\"\"
CASE kind WHEN 'motorcycle' THEN 20 WHEN 'truck' THEN 100 ELSE 50 END
  + CASE WHEN commercial_use THEN 40 ELSE 0 END
\"\"\"
cap = 120
rounding = "down"
step = 5
"""

FOOD_POLICY = """\
programme = "food-basket"
version = 2
description = "A food basket for low-income households and those caring for a disabled or older member."
eligible = \"\"\"
monthly_income < 900
  OR COUNT(*) FILTER (WHERE disabled) > 0
  OR COUNT(*) FILTER (WHERE age >= 65) > 0
\"\"\"
quota = "4 + 2.5 * members + 2 * COUNT(*) FILTER (WHERE age < 5)"
cap = 30
rounding = "down"
step = 0.5
"""


@dataclass(frozen=True, slots=True)
class Country:
    households: list[Household]
    vehicles: list[Vehicle]
    outlets: list[Outlet]


def generate(households: int, vehicles: int, outlets: int, seed: int, today: date) -> Country:
    rng = random.Random(seed)
    regions = list(REGIONS)
    homes: list[Household] = []
    reg = 0
    for n in range(1, households + 1):
        region = rng.choice(regions)
        municipality = rng.choice(REGIONS[region])
        family = rng.choice(FAMILY)
        second = rng.choice(FAMILY)
        home = Household(
            ref=f"H{n:07d}",
            region=region,
            municipality=municipality,
            address=f"{rng.choice(STREETS)} {rng.choice(FAMILY)} {rng.randint(1, 2999)}",
        )
        # Declared income in thousands, roughly log-normal; one in twenty not declared.
        income = None if rng.random() < 0.05 else round(rng.lognormvariate(6.8, 0.6), 1)
        home.attributes = {"monthly_income": income}
        size = min(1 + int(rng.expovariate(1 / 2.2)), 9)
        phone = f"+56 9 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"
        for m in range(size):
            reg += 1
            female = rng.random() < 0.5
            adult = m < 2
            age_days = rng.randint(18 * 365, 80 * 365) if adult else rng.randint(0, 17 * 365)
            home.members.append(
                Person(
                    registration_id=f"R{reg:08d}",
                    given_names=rng.choice(GIVEN_F if female else GIVEN_M),
                    family_name=family if m != 1 else rng.choice(FAMILY),
                    second_family_name=second,
                    sex="F" if female else "M",
                    date_of_birth=today - timedelta(days=age_days),
                    phone=phone if adult else "",
                    attributes={"disabled": rng.random() < 0.04},
                )
            )
        homes.append(home)
    cars: list[Vehicle] = []
    letters = "BCDFGHJKLPRSTVWXYZ"
    for n in range(vehicles):
        owner = homes[rng.randrange(len(homes))]
        kind = rng.choices(["car", "motorcycle", "truck", "van"], weights=[70, 20, 5, 5])[0]
        plate = "".join(rng.choice(letters) for _ in range(4)) + f"{n % 100:02d}"
        cars.append(
            Vehicle(
                plate=f"{plate}{n // 100:04d}",
                kind=kind,
                household_ref=owner.ref,
                attributes={"commercial_use": rng.random() < (0.6 if kind in ("truck", "van") else 0.08)},
            )
        )
    places: list[Outlet] = []
    for n in range(1, outlets + 1):
        kind = OutletKind.FUEL_STATION if n % 5 in (1, 3) else OutletKind.SHOP
        region = regions[n % len(regions)]
        prefix = "fs" if kind is OutletKind.FUEL_STATION else "shop"
        places.append(
            Outlet(
                code=f"{prefix}-{n:04d}",
                name=f"{'Estación' if prefix == 'fs' else 'Almacén'} {rng.choice(REGIONS[region])} {n}",
                kind=kind,
                region=region,
            )
        )
    return Country(homes, cars, places)
