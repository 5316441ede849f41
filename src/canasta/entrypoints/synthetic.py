"""A synthetic country for the demo and the benchmarks: households with members, vehicles
and outlets, generated from a seed. Names are common Spanish and Portuguese ones; nothing
here describes a real person.

``registrations`` is the demo's registry as a registry would hand it over: the rows of a
registrations file, people in households (``canasta.linkage.generator``), about a fifth of
them registered more than once with the typing errors of real forms, and the declared
attributes' columns, for ``canasta registry import`` and ``canasta registry dedup``."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from canasta.domain.model import Outlet, OutletKind, Vehicle
from canasta.registry.registrations import REGISTRATION_COLUMNS

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


#: Columns of the demo's registrations file: the registration format and the declared
#: attributes of households (monthly_income) and people (disabled).
REGISTRATION_FILE_COLUMNS = (*REGISTRATION_COLUMNS, "monthly_income", "disabled")


@dataclass(frozen=True, slots=True)
class Registrations:
    rows: list[dict[str, str]]
    #: Household refs, in order of first appearance.
    households: list[str]
    #: Registrations beyond the first of each person (what deduplication should find).
    repeated: int


def registrations(households: int, seed: int, today: date) -> Registrations:
    """About ``households`` households' registrations (people are generated, not homes, so
    the count is near it), with re-registrations, as rows of a registrations file."""
    from canasta.linkage.generator import generate_registry

    rng = random.Random(seed)
    registry = generate_registry(households * 27 // 10, seed, today=today)  # about 2.7 a home
    income: dict[str, str] = {}
    rows: list[dict[str, str]] = []
    for row in registry.rows:
        ref = row["household_ref"]
        if ref not in income:
            # Declared income in thousands, roughly log-normal; one in twenty not declared.
            income[ref] = "" if rng.random() < 0.05 else f"{rng.lognormvariate(6.8, 0.6):.1f}"
        rows.append(
            {
                **{c: row.get(c, "") for c in REGISTRATION_COLUMNS},
                "monthly_income": income[ref],
                "disabled": "true" if rng.random() < 0.04 else "false",
            }
        )
    return Registrations(rows, list(income), len(registry.rows) - len(registry.first_registration))


def write_registrations(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, REGISTRATION_FILE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def vehicles_and_outlets(
    refs: list[str], vehicles: int, outlets: int, seed: int
) -> tuple[list[Vehicle], list[Outlet]]:
    """Vehicles owned by the households ``refs`` and outlets across the regions."""
    rng = random.Random(seed + 1)
    cars: list[Vehicle] = []
    letters = "BCDFGHJKLPRSTVWXYZ"
    for n in range(vehicles):
        kind = rng.choices(["car", "motorcycle", "truck", "van"], weights=[70, 20, 5, 5])[0]
        plate = "".join(rng.choice(letters) for _ in range(4)) + f"{n % 100:02d}"
        cars.append(
            Vehicle(
                plate=f"{plate}{n // 100:04d}",
                kind=kind,
                household_ref=refs[rng.randrange(len(refs))],
                attributes={"commercial_use": rng.random() < (0.6 if kind in ("truck", "van") else 0.08)},
            )
        )
    from canasta.linkage.generator import REGIONS as COUNTRY

    places: list[Outlet] = []
    for n in range(1, outlets + 1):
        kind = OutletKind.FUEL_STATION if n % 5 in (1, 3) else OutletKind.SHOP
        region, _, towns = COUNTRY[n % len(COUNTRY)]
        prefix = "fs" if kind is OutletKind.FUEL_STATION else "shop"
        places.append(
            Outlet(
                code=f"{prefix}-{n:04d}",
                name=f"{'Estación' if prefix == 'fs' else 'Almacén'} {rng.choice(towns)} {n}",
                kind=kind,
                region=region,
            )
        )
    return cars, places
