"""The synthetic registry: its shape, its households, its hard negatives and its noise."""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import date

import pytest

from canasta.linkage.generator import (
    GeneratedRegistry,
    Noise,
    Population,
    TruePerson,
    generate_registry,
)
from canasta.registry.csvfile import CsvRow
from canasta.registry.registrations import REGISTRATION_COLUMNS, parse_registrations

TODAY = date(2025, 1, 1)
PEOPLE = 3000


@pytest.fixture(scope="module")
def registry() -> GeneratedRegistry:
    return generate_registry(PEOPLE, seed=7)


def registrations_of(registry: GeneratedRegistry) -> dict[int, list[dict[str, str]]]:
    by_person: dict[int, list[dict[str, str]]] = defaultdict(list)
    for row in registry.rows:
        by_person[registry.truth[row["registration_id"]]].append(row)
    return by_person


def duplicates(registry: GeneratedRegistry) -> list[tuple[dict[str, str], TruePerson]]:
    """Every registration that is not its person's first, with the person."""
    firsts = set(registry.first_registration.values())
    return [
        (row, registry.people[registry.truth[row["registration_id"]]])
        for row in registry.rows
        if row["registration_id"] not in firsts
    ]


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def one_edit_apart(a: str, b: str) -> bool:
    """Whether one substitution, insertion, deletion or adjacent transposition turns a into b."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long = sorted((a, b), key=len)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


# Shape ----------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_registry() -> None:
    first, again = generate_registry(500, seed=3), generate_registry(500, seed=3)
    assert first.rows == again.rows
    assert first.truth == again.truth
    assert generate_registry(500, seed=4).rows != first.rows


@pytest.mark.parametrize("people", [0, 1, 2, 57, 500])
def test_it_makes_exactly_the_people_asked_for(people: int) -> None:
    registry = generate_registry(people, seed=1)
    assert len(registry.people) == people
    assert set(registry.truth.values()) == set(registry.people)


def test_rows_are_in_the_registration_format(registry: GeneratedRegistry) -> None:
    for row in registry.rows:
        assert tuple(row) == REGISTRATION_COLUMNS
        assert all(isinstance(value, str) for value in row.values())
        assert row["sex"] in {"F", "M", "X"}
        assert date(1900, 1, 1) <= date.fromisoformat(row["date_of_birth"]) <= TODAY
        assert row["given_names"].strip()
        assert row["family_name"].strip()
    ids = [row["registration_id"] for row in registry.rows]
    assert len(set(ids)) == len(ids)
    assert set(registry.truth) == set(ids)


def test_rows_pass_the_registration_checks(registry: GeneratedRegistry) -> None:
    rows = [CsvRow(n, n + 1, row) for n, row in enumerate(registry.rows, start=1)]
    parsed = parse_registrations(rows, "people.csv", TODAY)
    assert parsed.problems == []
    assert parsed.people == len(registry.rows)


def test_each_household_registration_has_its_own_ref_and_one_address(registry: GeneratedRegistry) -> None:
    refs = [row["household_ref"] for row in registry.rows]
    # A household registration's rows are together, so a ref never comes back later.
    runs = [ref for i, ref in enumerate(refs) if i == 0 or refs[i - 1] != ref]
    assert len(runs) == len(set(runs))
    homes: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    phones: dict[str, set[str]] = defaultdict(set)
    for row in registry.rows:
        homes[row["household_ref"]].add((row["region"], row["municipality"], row["address"]))
        phones[row["household_ref"]].add(row["phone"])
    assert all(len(place) == 1 for place in homes.values())
    assert all(len(phone - {""}) <= 1 for phone in phones.values())


def test_a_household_is_first_registered_together(registry: GeneratedRegistry) -> None:
    ref_of = {row["registration_id"]: row["household_ref"] for row in registry.rows}
    members: dict[int, set[str]] = defaultdict(set)
    for person in registry.people.values():
        members[person.home].add(ref_of[registry.first_registration[person.person_id]])
    assert all(len(refs) == 1 for refs in members.values())
    assert set(members) == set(registry.homes)


def test_households_have_latin_american_sizes(registry: GeneratedRegistry) -> None:
    sizes = Counter(Counter(p.home for p in registry.people.values()).values())
    homes = sum(sizes.values())
    assert 0.1 < sizes[1] / homes < 0.3
    assert 2.6 < PEOPLE / homes < 4.0
    assert max(sizes) >= 6


# Duplicates -----------------------------------------------------------------------------


def test_about_the_duplicate_share_is_registered_more_than_once(registry: GeneratedRegistry) -> None:
    counts = Counter(len(rows) for rows in registrations_of(registry).values())
    assert abs((counts[2] + counts[3]) / PEOPLE - 0.2) < 0.01
    assert set(counts) == {1, 2, 3}
    assert counts[3] < counts[2]


def test_without_duplicates_everyone_is_registered_once() -> None:
    registry = generate_registry(400, seed=2, duplicate_share=0.0)
    assert len(registry.rows) == 400


def test_duplicates_are_in_the_same_household_or_after_moving(registry: GeneratedRegistry) -> None:
    ref_of = {row["registration_id"]: row["household_ref"] for row in registry.rows}
    same = moved = 0
    for row, person in duplicates(registry):
        first = ref_of[registry.first_registration[person.person_id]]
        if row["household_ref"] == first:
            same += 1
        else:
            moved += 1
            assert row["address"] != registry.homes[person.home].address
    assert same > 0.3 * (same + moved)
    assert moved > 0.3 * (same + moved)


# Families and hard negatives ------------------------------------------------------------


def test_children_carry_the_first_family_names_of_father_and_mother(registry: GeneratedRegistry) -> None:
    people = registry.people
    with_both = 0
    for person in people.values():
        if person.father is not None:
            assert person.family_name == people[person.father].family_name
        if person.mother is not None:
            assert person.second_family_name == people[person.mother].family_name
        with_both += person.father is not None and person.mother is not None
    assert with_both > 0.2 * PEOPLE


def test_spouses_keep_their_own_names_and_share_a_home(registry: GeneratedRegistry) -> None:
    spouses = [r for r in registry.relations if r.kind == "spouses"]
    assert len(spouses) > 0.1 * PEOPLE
    same_family_name = 0
    for relation in spouses:
        a, b = registry.people[relation.a], registry.people[relation.b]
        assert a.home == b.home
        same_family_name += a.family_name == b.family_name
    assert same_family_name < 0.2 * len(spouses)


def test_siblings_share_family_names_and_home_but_not_given_names(registry: GeneratedRegistry) -> None:
    siblings = [r for r in registry.relations if r.kind in ("siblings", "twins")]
    assert siblings
    for relation in siblings:
        a, b = registry.people[relation.a], registry.people[relation.b]
        assert (a.family_name, a.second_family_name, a.home) == (b.family_name, b.second_family_name, b.home)
        assert a.given_names != b.given_names


def test_twins_share_everything_but_their_given_names(registry: GeneratedRegistry) -> None:
    twins = [r for r in registry.relations if r.kind == "twins"]
    assert len(twins) >= 5
    for relation in twins:
        a, b = registry.people[relation.a], registry.people[relation.b]
        assert a.date_of_birth == b.date_of_birth
        assert (a.father, a.mother) == (b.father, b.mother)


def test_namesakes_are_a_parent_and_child_25_to_40_years_apart(registry: GeneratedRegistry) -> None:
    namesakes = [r for r in registry.relations if r.kind == "namesake"]
    assert len(namesakes) >= 5
    for relation in namesakes:
        parent, child = registry.people[relation.a], registry.people[relation.b]
        assert child.given_names == parent.given_names
        assert parent.person_id in (child.father, child.mother)
        assert parent.home == child.home
        assert 25 <= (child.date_of_birth - parent.date_of_birth).days / 365.25 <= 40
    assert any(" " in registry.people[r.a].given_names for r in namesakes)


def test_compound_given_names_and_both_languages_occur(registry: GeneratedRegistry) -> None:
    given = [p.given_names for p in registry.people.values()]
    assert 0.4 < sum(" " in g for g in given) / len(given) < 0.7
    assert "María José" in given
    assert any(g.startswith(("João", "Maria ")) for g in given)


# Noise ----------------------------------------------------------------------------------

SILENT = Noise(**{f.name: 0.0 for f in fields(Noise)})

Check = Callable[[dict[str, str], TruePerson], bool]


def names(row: dict[str, str]) -> tuple[str, str, str]:
    return row["given_names"], row["family_name"], row["second_family_name"]


def true_names(person: TruePerson) -> tuple[str, str, str]:
    return person.given_names, person.family_name, person.second_family_name


def swapped(born: date) -> str:
    return date(born.year, born.day, born.month).isoformat()


#: For each kind of noise: when it can show on a registration, and whether it does.
NOISE_CHECKS: dict[str, tuple[Check, Check]] = {
    "typo": (
        lambda row, p: True,
        lambda row, p: all(one_edit_apart(a, b) for a, b in zip(names(row), true_names(p), strict=True) if b),
    ),
    "drop_accents": (
        lambda row, p: strip_accents("".join(true_names(p))) != "".join(true_names(p)),
        lambda row, p: names(row) == tuple(strip_accents(n) for n in true_names(p)),
    ),
    "upper_case": (
        lambda row, p: True,
        lambda row, p: names(row) == tuple(n.upper() for n in true_names(p)),
    ),
    "extra_space": (
        lambda row, p: True,
        lambda row, p: any("  " in n or n.endswith(" ") for n in names(row)),
    ),
    "swap_family_names": (
        lambda row, p: bool(p.second_family_name),
        lambda row, p: names(row) == (p.given_names, p.second_family_name, p.family_name),
    ),
    "missing_second_family_name": (
        lambda row, p: True,
        lambda row, p: row["second_family_name"] == "",
    ),
    "day_month_swap": (
        lambda row, p: p.date_of_birth.day <= 12 and p.date_of_birth.day != p.date_of_birth.month,
        lambda row, p: row["date_of_birth"] == swapped(p.date_of_birth),
    ),
    "shortened_given_names": (
        lambda row, p: " " in p.given_names,
        lambda row, p: row["given_names"] == p.given_names.split(" ")[0],
    ),
    "missing_phone": (lambda row, p: True, lambda row, p: row["phone"] == ""),
}


@pytest.mark.parametrize("kind", sorted(NOISE_CHECKS))
def test_each_kind_of_noise_shows_on_duplicates_and_spares_originals(kind: str) -> None:
    registry = generate_registry(600, seed=5, noise=replace(SILENT, **{kind: 1.0}))
    can_show, shows = NOISE_CHECKS[kind]
    extras = [(row, person) for row, person in duplicates(registry) if can_show(row, person)]
    assert extras
    assert all(shows(row, person) for row, person in extras)
    for person_id, registration_id in registry.first_registration.items():
        row = next(r for r in registry.rows if r["registration_id"] == registration_id)
        person = registry.people[person_id]
        assert names(row) == true_names(person)
        assert row["date_of_birth"] == person.date_of_birth.isoformat()


def test_address_and_phone_noise_rewrite_the_forms() -> None:
    noise = replace(SILENT, abbreviated_address=1.0, phone_format=1.0, original_scale=1.0)
    registry = generate_registry(600, seed=5, noise=noise)
    for row in registry.rows:
        assert not row["address"].startswith(("Calle ", "Avenida ", "Pasaje ", "Camino "))
        assert "depto" not in row["address"]
        if row["phone"]:
            assert not row["phone"].startswith("+56 9 ")
            digits = "".join(c for c in row["phone"] if c.isdigit())
            assert digits in (digits[-9:], "56" + digits[-9:])
            assert digits[-9:].startswith("9")


def test_default_noise_is_heavier_on_duplicates_than_on_originals(registry: GeneratedRegistry) -> None:
    def written_as_is(row: dict[str, str], person: TruePerson) -> bool:
        return names(row) == true_names(person) and row["date_of_birth"] == person.date_of_birth.isoformat()

    extras = duplicates(registry)
    firsts = set(registry.first_registration.values())
    originals = [
        (row, registry.people[registry.truth[row["registration_id"]]])
        for row in registry.rows
        if row["registration_id"] in firsts
    ]
    changed_extras = sum(not written_as_is(row, p) for row, p in extras) / len(extras)
    changed_originals = sum(not written_as_is(row, p) for row, p in originals) / len(originals)
    assert changed_extras > 0.5
    assert 0.02 < changed_originals < 0.25


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Noise(typo=1.5), "Noise.typo"),
        (lambda: Population(twins=-0.1), "Population.twins"),
        (lambda: Population(single=-1.0), "household kind"),
        (lambda: generate_registry(10, seed=1, duplicate_share=2.0), "duplicate_share"),
    ],
)
def test_impossible_settings_are_refused(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()
