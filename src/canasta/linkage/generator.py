"""Synthetic Latin American registries with known truth, for measuring deduplication.

``generate_registry`` builds people living in households, registers them in the
registration format (``REGISTRATION_COLUMNS``) and registers some of them more than once,
with the noise that clerks and forms add. It returns the rows and, for every registration,
the person it really is, so a linker's accuracy can be measured (``canasta.linkage.metrics``).
Everything is drawn from one ``random.Random(seed)``: the same arguments give the same rows.

The population
--------------
Households are drawn with the shares in ``Population`` (defaults in parentheses): a person
living alone (0.15), a couple without children (0.12), a couple with children (0.45), a
single parent with children (0.15; the mother in 85% of them) and three generations (0.13:
a couple with children and one or two of one partner's parents). Families have 1 to 5
children (weights 0.35, 0.35, 0.18, 0.08, 0.04; fewer when the mother is young), born when
the mother is 18 to 44 and at least eleven months apart.

Naming follows the Spanish and Portuguese custom of the region: one or two given names
(55% compound, such as "María José", "Juan Carlos" or "Ana Paula") and two family names.
A child carries the father's first family name and then the mother's first family name
(also in Portuguese-speaking families, 15% of them: the registry records the paternal name
first); spouses keep their own names. Names are drawn with Zipf-like frequencies, so that
common ones ("González", "María") recur as they do in real registries. Members of a
household share its address and phone; a third of households have no phone.

Hard negatives (different people who look alike) are built in and listed in
``GeneratedRegistry.relations``: spouses (same address and phone), siblings (same family
names and address), twins (4% of families with children: same family names, birth date and
address, other given names) and namesakes (12% of families with children: a child carries the same-sex
parent's given names, born when that parent was 25 to 40; "José Luis" senior and junior).

Duplicate registrations
-----------------------
``round(duplicate_share × people)`` people are registered more than once: twice, or three
times with the ``Duplication.third_registration`` probability (0.15). Each extra
registration either lists the person again in their own household's registration (0.5), or
in another household's after moving (``Duplication.moved`` 0.5): into an existing household
(``Duplication.joins_existing`` 0.4) or a new registration at a new address and phone,
in the same region 70% of the time (and then the same municipality half of the time).

Noise
-----
``Noise`` holds the probability of each kind of error, applied independently to every
extra registration and, multiplied by ``Noise.original_scale`` (0.2), to every first one.
Errors in names, birth date and a missing phone apply per registration; errors in the
region, municipality, address and the phone's format per household registration (a form
states its address and phone once, so the members listed on it always agree).
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from datetime import date, timedelta
from typing import Literal

from canasta.registry.registrations import REGISTRATION_COLUMNS

_YEAR = 365.25


@dataclass(frozen=True, slots=True)
class Noise:
    """Probability of each kind of error in one registration (or, for address and phone
    errors, in one household registration). Every field is a probability in [0, 1]."""

    #: One-character substitution, insertion, deletion or transposition in a name; drawn
    #: separately for the given names, each family name and the address.
    typo: float = 0.08
    #: Accents and tildes dropped ("Núñez" → "Nunez"), in the names of a registration, and
    #: separately in the region, municipality and address of a form.
    drop_accents: float = 0.25
    #: Names written in upper case; separately, the address of a form.
    upper_case: float = 0.15
    #: A doubled space between words, or a trailing space, in one name.
    extra_space: float = 0.05
    #: First and second family names written the other way round.
    swap_family_names: float = 0.04
    #: Second family name left out.
    missing_second_family_name: float = 0.08
    #: Day and month of birth exchanged (only possible when the day is 12 or less).
    day_month_swap: float = 0.04
    #: Compound given names shortened to the first one ("María José" → "María").
    shortened_given_names: float = 0.15
    #: The phone left out of a registration though the household has one.
    missing_phone: float = 0.15
    #: The household's phone written in another format ("912345678", "+56912345678").
    phone_format: float = 0.3
    #: Street kinds abbreviated or dropped ("Avenida" → "Av.", "Pasaje" → "Pje.").
    abbreviated_address: float = 0.2
    #: Factor applied to every probability above for first registrations (originals).
    original_scale: float = 0.2

    def __post_init__(self) -> None:
        _check_probabilities(self)

    def scaled(self, factor: float) -> Noise:
        """The same noise with every error probability multiplied by ``factor``."""
        changes = {f.name: getattr(self, f.name) * factor for f in fields(self) if f.name != "original_scale"}
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Population:
    """Shares of household kinds (weights, need not sum to 1) and of family features."""

    single: float = 0.15
    couple: float = 0.12
    couple_with_children: float = 0.45
    single_parent: float = 0.15
    three_generations: float = 0.13
    #: Weights of 1, 2, 3, ... children in a family.
    children: tuple[float, ...] = (0.35, 0.35, 0.18, 0.08, 0.04)
    #: Share of single parents who are the mother.
    single_mother: float = 0.85
    #: Share of families with children that have twins.
    twins: float = 0.04
    #: Share of families where a child carries the same-sex parent's given names.
    namesake: float = 0.12
    #: Share of people with two given names.
    compound_given_names: float = 0.55
    #: Share of households with Portuguese names (the rest Spanish).
    portuguese: float = 0.15
    #: Share of households without a phone.
    no_phone: float = 0.33
    #: Share of people registered with sex X.
    sex_x: float = 0.002

    def __post_init__(self) -> None:
        _check_probabilities(self, skip=("children", *_KINDS))
        weights = [getattr(self, kind) for kind in _KINDS]
        for name, values in (("household kind", weights), ("children", list(self.children))):
            if any(w < 0 for w in values) or sum(values) <= 0:
                raise ValueError(f"{name} weights must be non-negative and not all zero")


@dataclass(frozen=True, slots=True)
class Duplication:
    """Where the extra registrations of a duplicated person go."""

    #: Probability that a duplicated person is registered a third time.
    third_registration: float = 0.15
    #: Probability that an extra registration is made after moving (else in the same home).
    moved: float = 0.5
    #: Probability that someone who moved joined an existing household (else a new home).
    joins_existing: float = 0.4

    def __post_init__(self) -> None:
        _check_probabilities(self)


@dataclass(frozen=True, slots=True)
class Home:
    """A household as it really is: where it lives and its phone ("" when it has none)."""

    home_id: int
    region: str
    municipality: str
    address: str
    phone: str


@dataclass(frozen=True, slots=True)
class TruePerson:
    """A person as they really are. ``sex`` is the registered one (F, M or X); ``father``
    and ``mother`` are person ids when that parent is in the registry."""

    person_id: int
    given_names: str
    family_name: str
    second_family_name: str
    sex: str
    date_of_birth: date
    home: int
    father: int | None = None
    mother: int | None = None


RelationKind = Literal["spouses", "siblings", "twins", "parent_child", "namesake"]


@dataclass(frozen=True, slots=True)
class Relation:
    """Two different people who are easy to confuse. Twins are not also listed as siblings,
    nor namesakes as parent_child."""

    kind: RelationKind
    a: int
    b: int


@dataclass(frozen=True, slots=True)
class GeneratedRegistry:
    #: Registrations in the registration format, all values strings ("" when missing).
    rows: list[dict[str, str]]
    #: registration_id → person_id.
    truth: dict[str, int]
    #: person_id → the registration_id of their first registration (in their true home,
    #: with the noise of originals); the others are the duplicates.
    first_registration: dict[int, str]
    people: dict[int, TruePerson]
    homes: dict[int, Home]
    relations: tuple[Relation, ...]


@dataclass(frozen=True, slots=True)
class _Naming:
    female: tuple[str, ...]
    male: tuple[str, ...]
    #: Compound given names used as one ("María José"), besides free pairs of names.
    female_compound: tuple[str, ...]
    male_compound: tuple[str, ...]
    family: tuple[str, ...]


SPANISH = _Naming(
    female=(
        "María", "Ana", "Camila", "Valentina", "Javiera", "Catalina", "Constanza", "Francisca",
        "Daniela", "Carmen", "Rosa", "Sofía", "Isabel", "Fernanda", "Paula", "Gabriela", "Lucía",
        "Elena", "Patricia", "Verónica", "Marcela", "Claudia", "Ximena", "Inés", "Josefa",
        "Antonia", "Florencia", "Martina", "Soledad", "Andrea",
    ),
    male=(
        "José", "Juan", "Luis", "Carlos", "Jorge", "Pedro", "Miguel", "Manuel", "Francisco",
        "Diego", "Rafael", "Cristián", "Sebastián", "Matías", "Benjamín", "Vicente", "Tomás",
        "Felipe", "Héctor", "Raúl", "Andrés", "Gonzalo", "Rodrigo", "Patricio", "Ignacio",
        "Alberto", "Alejandro", "Hugo", "Óscar", "Agustín",
    ),
    female_compound=(
        "María José", "María Paz", "María Fernanda", "Ana María", "María Ignacia",
        "María de los Ángeles", "María Jesús", "María Teresa",
    ),
    male_compound=(
        "Juan Carlos", "José Luis", "Juan Pablo", "Luis Alberto", "José Miguel", "Juan José",
        "José Manuel", "Juan Ignacio", "Luis Felipe",
    ),
    family=(
        "González", "Muñoz", "Rojas", "Díaz", "Pérez", "Soto", "Contreras", "Silva", "Martínez",
        "Sepúlveda", "Morales", "Rodríguez", "López", "Araya", "Fuentes", "Hernández", "Torres",
        "Espinoza", "Flores", "Castillo", "Valenzuela", "Ramírez", "Reyes", "Gutiérrez",
        "Castro", "Vargas", "Álvarez", "Vásquez", "Tapia", "Fernández", "Sánchez", "Carrasco",
        "Gómez", "Cortés", "Herrera", "Núñez", "Jara", "Vergara", "Rivera", "Figueroa",
        "Riquelme", "García", "Miranda", "Bravo", "Vera", "Molina", "Vega", "Sandoval", "Campos",
        "Ortiz", "Orellana", "Zúñiga", "Gallardo", "Olivares", "Alarcón", "Garrido", "Salazar",
        "Peña", "Cáceres", "de la Fuente", "San Martín",
    ),
)  # fmt: skip

PORTUGUESE = _Naming(
    female=(
        "Maria", "Ana", "Juliana", "Fernanda", "Beatriz", "Larissa", "Camila", "Letícia", "Aline",
        "Patrícia", "Adriana", "Vitória", "Luana", "Conceição", "Júlia", "Mariana", "Gabriela",
    ),
    male=(
        "João", "José", "Antônio", "Francisco", "Paulo", "Pedro", "Lucas", "Gabriel", "Rafael",
        "Thiago", "Gustavo", "Felipe", "Marcos", "Bruno", "Luiz", "Sebastião", "André",
    ),
    female_compound=("Ana Paula", "Maria Eduarda", "Maria Clara", "Ana Luísa", "Maria Luiza"),
    male_compound=("João Pedro", "José Carlos", "Luiz Henrique", "João Paulo", "Carlos Eduardo"),
    family=(
        "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira",
        "Lima", "Gomes", "Ribeiro", "Carvalho", "Almeida", "Lopes", "Soares", "Fernandes",
        "Vieira", "Barbosa", "Rocha", "Dias", "Nascimento", "Araújo", "Moreira", "Cardoso",
        "Conceição", "Gonçalves",
    ),
)  # fmt: skip

#: Chilean regions, their weight in the population and some of their municipalities.
REGIONS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("Metropolitana", 0.40, ("Santiago", "Puente Alto", "Maipú", "La Florida", "Ñuñoa", "Peñalolén")),
    ("Valparaíso", 0.11, ("Valparaíso", "Viña del Mar", "Quilpué", "San Antonio")),
    ("Biobío", 0.10, ("Concepción", "Talcahuano", "Los Ángeles", "Chiguayante")),
    ("Maule", 0.07, ("Talca", "Curicó", "Linares")),
    ("La Araucanía", 0.07, ("Temuco", "Padre Las Casas", "Villarrica", "Angol")),
    ("Los Lagos", 0.06, ("Puerto Montt", "Osorno", "Castro", "Ancud")),
    ("Coquimbo", 0.06, ("La Serena", "Coquimbo", "Ovalle")),
    ("Antofagasta", 0.05, ("Antofagasta", "Calama", "Tocopilla")),
    ("Ñuble", 0.03, ("Chillán", "San Carlos")),
    ("Tarapacá", 0.02, ("Iquique", "Alto Hospicio")),
)  # fmt: skip
STREETS = (
    "Los Aromos", "Las Acacias", "Bernardo O'Higgins", "Arturo Prat", "Los Carrera",
    "Manuel Rodríguez", "Gabriela Mistral", "Pedro de Valdivia", "Lautaro", "Caupolicán",
    "Colón", "Libertad", "Esmeralda", "San Martín", "Independencia", "Los Álamos", "El Roble",
    "Baquedano", "Freire", "Maipú", "Yungay", "Los Copihues", "Las Araucarias", "Pablo Neruda",
)  # fmt: skip
STREET_KINDS = ("Calle", "Avenida", "Pasaje", "Camino")
_ABBREVIATIONS = (("Avenida ", "Av. "), ("Pasaje ", "Pje. "), ("Camino ", "Cno. "), ("Calle ", ""))

_KINDS = ("single", "couple", "couple_with_children", "single_parent", "three_generations")


def generate_registry(
    people: int,
    seed: int,
    duplicate_share: float = 0.2,
    *,
    noise: Noise | None = None,
    population: Population | None = None,
    duplication: Duplication | None = None,
    today: date = date(2025, 1, 1),
) -> GeneratedRegistry:
    """Registrations of ``people`` distinct people, ``duplicate_share`` of them registered
    more than once (see the module docstring for the model). Registration ids are
    ``R0000001``, ..., household refs ``H000001``, ..., in the (shuffled) order of the rows."""
    if people < 0:
        raise ValueError("people must not be negative")
    if not 0.0 <= duplicate_share <= 1.0:
        raise ValueError("duplicate_share must be between 0 and 1")
    rng = random.Random(seed)
    builder = _Population(rng, population or Population(), today)
    while len(builder.people) < people:
        builder.household()
    builder.truncate(people)
    return _register(builder, rng, duplicate_share, noise or Noise(), duplication or Duplication())


@dataclass(slots=True)
class _Form:
    """One household registration: the home it states and who is listed on it."""

    home: Home
    noise: Noise
    #: (person id, noise of that registration, whether it is the person's first).
    entries: list[tuple[int, Noise, bool]]


def _register(
    population: _Population, rng: random.Random, share: float, noise: Noise, duplication: Duplication
) -> GeneratedRegistry:
    original = noise.scaled(noise.original_scale)
    forms = {
        home_id: _Form(home, original, [(p, original, True) for p in population.members[home_id]])
        for home_id, home in population.homes.items()
    }
    home_ids = list(forms)
    extra_forms: list[_Form] = []
    people = sorted(population.people)
    for person_id in rng.sample(people, round(share * len(people))):
        person = population.people[person_id]
        extra = 2 if rng.random() < duplication.third_registration else 1
        for _ in range(extra):
            if rng.random() >= duplication.moved:
                form = forms[person.home]
            elif rng.random() < duplication.joins_existing and len(home_ids) > 1:
                other = person.home
                while other == person.home:
                    other = rng.choice(home_ids)
                form = forms[other]
            else:
                form = _Form(population.moved_home(population.homes[person.home]), noise, [])
                extra_forms.append(form)
            form.entries.insert(rng.randint(0, len(form.entries)), (person_id, noise, False))
    every_form = [*forms.values(), *extra_forms]
    rng.shuffle(every_form)
    rows: list[dict[str, str]] = []
    truth: dict[str, int] = {}
    first: dict[int, str] = {}
    for number, form in enumerate(every_form, start=1):
        place = _noisy_home(form.home, form.noise, rng)
        for person_id, row_noise, is_first in form.entries:
            registration_id = f"R{len(rows) + 1:07d}"
            written = _noisy_person(population.people[person_id], row_noise, rng)
            phone = "" if rng.random() < row_noise.missing_phone else place["phone"]
            row = {
                "registration_id": registration_id,
                **written,
                **place,
                "phone": phone,
                "household_ref": f"H{number:06d}",
            }
            rows.append({column: row[column] for column in REGISTRATION_COLUMNS})
            truth[registration_id] = person_id
            if is_first:
                first[person_id] = registration_id
    return GeneratedRegistry(
        rows=rows,
        truth=truth,
        first_registration=first,
        people=dict(population.people),
        homes=dict(population.homes),
        relations=tuple(population.relations),
    )


class _Population:
    """Draws households and their members; person ids increase in the order people are
    made, and anyone referring to another person (a child to a parent) is made after them."""

    def __init__(self, rng: random.Random, shares: Population, today: date) -> None:
        self.rng = rng
        self.shares = shares
        self.today = today
        self.people: dict[int, TruePerson] = {}
        self.homes: dict[int, Home] = {}
        self.members: dict[int, list[int]] = {}
        self.relations: list[Relation] = []
        self._weights = {naming.family: _zipf(len(naming.family)) for naming in (SPANISH, PORTUGUESE)}

    # Households -------------------------------------------------------------------------

    def household(self) -> None:
        rng, shares = self.rng, self.shares
        kind = rng.choices(_KINDS, weights=[getattr(shares, k) for k in _KINDS])[0]
        naming = PORTUGUESE if rng.random() < shares.portuguese else SPANISH
        home = self.new_home()
        if kind == "single":
            sex = rng.choice("FM")
            self.adult(naming, sex, self.born(18, 90), home)
        elif kind == "couple":
            ages = (20, 35) if rng.random() < 0.4 else (45, 85)
            self.couple(naming, home, self.born(*ages))
        elif kind == "couple_with_children":
            father, mother = self.couple(naming, home, self.born(20, 60))
            self.children(naming, home, father, mother)
        elif kind == "single_parent":
            if rng.random() < shares.single_mother:
                mother = self.adult(naming, "F", self.born(20, 60), home)
                self.children(naming, home, None, mother)
            else:
                father = self.adult(naming, "M", self.born(22, 60), home)
                self.children(naming, home, father, None)
        else:
            self.three_generations(naming, home)

    def couple(
        self,
        naming: _Naming,
        home: Home,
        woman_born: date,
        man_born: date | None = None,
        woman_parents: tuple[TruePerson | None, TruePerson | None] | None = None,
        man_parents: tuple[TruePerson | None, TruePerson | None] | None = None,
    ) -> tuple[TruePerson, TruePerson]:
        """A man and a woman (unless given, he is 2 years younger to 8 older); either may be
        the child of people already made (``(father, mother)``), whose names they carry."""
        if man_born is None:
            man_born = self.partner_born(woman_born)
        man = self.adult(naming, "M", man_born, home, parents=man_parents)
        woman = self.adult(naming, "F", woman_born, home, parents=woman_parents)
        self.relate("spouses", man, woman)
        return man, woman

    def partner_born(self, woman_born: date) -> date:
        """A man's birth date, 2 years after to 8 years before hers, and 18 or older."""
        born = woman_born - timedelta(days=self.rng.randint(-2 * 365, 8 * 365))
        return min(born, self.today - timedelta(days=round(18 * _YEAR)))

    def three_generations(self, naming: _Naming, home: Home) -> None:
        """A couple with their children and one or two parents of one of the partners."""
        rng = self.rng
        woman_born = self.born(22, 45)
        man_born = self.partner_born(woman_born)
        her_parents = rng.random() < 0.6
        elder_born = (woman_born if her_parents else man_born) - timedelta(
            days=rng.randint(20 * 365, 38 * 365)
        )
        grandfather: TruePerson | None = None
        grandmother: TruePerson | None = None
        if rng.random() < 0.4:
            grandfather, grandmother = self.couple(naming, home, elder_born)
        elif rng.random() < 0.75:
            grandmother = self.adult(naming, "F", elder_born, home)
        else:
            grandfather = self.adult(naming, "M", elder_born, home)
        elders = (grandfather, grandmother)
        if her_parents:
            man, woman = self.couple(naming, home, woman_born, man_born, woman_parents=elders)
        else:
            man, woman = self.couple(naming, home, woman_born, man_born, man_parents=elders)
        for elder in elders:
            if elder is not None:
                self.relate("parent_child", elder, woman if her_parents else man)
        self.children(naming, home, man, woman)

    def children(
        self, naming: _Naming, home: Home, father: TruePerson | None, mother: TruePerson | None
    ) -> None:
        """Children of the parents present; an absent parent still gave a family name."""
        rng, shares = self.rng, self.shares
        parent = mother or father
        assert parent is not None
        count = rng.choices(range(1, len(shares.children) + 1), weights=shares.children)[0]
        births = self.births(parent.date_of_birth, count)
        if not births:
            return
        sexes = [rng.choice("FM") for _ in births]
        twin = None
        if rng.random() < shares.twins:
            twin = rng.randrange(len(births))
            births.insert(twin + 1, births[twin])
            sexes.insert(twin + 1, rng.choice("FM"))
        namesake = None
        if rng.random() < shares.namesake:
            namesake = self.namesake(births, sexes, father, mother)
        family = father.family_name if father else self.family_name(naming)
        second = mother.family_name if mother else self.family_name(naming)
        avoid = {p.given_names for p in (father, mother) if p is not None}
        made: list[TruePerson] = []
        for i, (born, sex) in enumerate(zip(births, sexes, strict=True)):
            given = None
            if namesake is not None and i == namesake[0]:
                given = namesake[1].given_names
            child = self.person(
                naming, sex, born, home, family, second, father, mother, avoid=avoid, given=given
            )
            avoid.add(child.given_names)
            made.append(child)
        for i, child in enumerate(made):
            for j in range(i):
                kind: RelationKind = (
                    "twins" if twin is not None and (j, i) == (twin, twin + 1) else "siblings"
                )
                self.relate(kind, made[j], child)
            for p in (father, mother):
                if p is not None:
                    same = namesake is not None and namesake[0] == i and namesake[1] is p
                    self.relate("namesake" if same else "parent_child", p, child)

    def namesake(
        self, births: list[date], sexes: list[str], father: TruePerson | None, mother: TruePerson | None
    ) -> tuple[int, TruePerson] | None:
        """The eldest child born when the same-sex parent was 25 to 40, with that parent."""
        for i, (born, sex) in enumerate(zip(births, sexes, strict=True)):
            parent = father if sex == "M" else mother
            if parent is not None and 25 <= (born - parent.date_of_birth).days / _YEAR <= 40:
                return i, parent
        return None

    def births(self, parent_born: date, count: int) -> list[date]:
        """Up to ``count`` birth dates: the first when the parent was 18 to 30, then every
        eleven months to five years, while the parent is under 45 and not after today."""
        rng = self.rng
        earliest = parent_born + timedelta(days=round(18 * _YEAR))
        latest = min(parent_born + timedelta(days=round(44 * _YEAR)), self.today)
        if earliest > latest:
            return []
        born = earliest + timedelta(days=rng.randint(0, min((latest - earliest).days, 12 * 365)))
        births: list[date] = []
        while len(births) < count and born <= latest:
            births.append(born)
            born += timedelta(days=rng.randint(335, 5 * 365))
        return births

    # People -----------------------------------------------------------------------------

    def adult(
        self,
        naming: _Naming,
        sex: str,
        born: date,
        home: Home,
        parents: tuple[TruePerson | None, TruePerson | None] | None = None,
        avoid: set[str] | None = None,
    ) -> TruePerson:
        father, mother = parents or (None, None)
        family = father.family_name if father else self.family_name(naming)
        second = mother.family_name if mother else self.family_name(naming)
        return self.person(naming, sex, born, home, family, second, father, mother, avoid=avoid or set())

    def person(
        self,
        naming: _Naming,
        sex: str,
        born: date,
        home: Home,
        family: str,
        second: str,
        father: TruePerson | None,
        mother: TruePerson | None,
        avoid: set[str],
        given: str | None = None,
    ) -> TruePerson:
        person = TruePerson(
            person_id=len(self.people),
            given_names=given or self.given_names(naming, sex, avoid),
            family_name=family,
            second_family_name=second,
            sex="X" if self.rng.random() < self.shares.sex_x else sex,
            date_of_birth=born,
            home=home.home_id,
            father=father.person_id if father else None,
            mother=mother.person_id if mother else None,
        )
        self.people[person.person_id] = person
        self.members[home.home_id].append(person.person_id)
        return person

    def given_names(self, naming: _Naming, sex: str, avoid: set[str]) -> str:
        """One or two given names, not among ``avoid`` (a sibling's or parent's)."""
        rng = self.rng
        single = naming.female if sex == "F" else naming.male
        compound = naming.female_compound if sex == "F" else naming.male_compound
        weights = _zipf(len(single))
        name = ""
        for _ in range(100):
            if rng.random() >= self.shares.compound_given_names:
                name = rng.choices(single, weights=weights)[0]
            elif rng.random() < 0.5:
                name = rng.choice(compound)
            else:
                first, second = rng.choices(single, weights=weights, k=2)
                name = first if first == second else f"{first} {second}"
            if name not in avoid:
                break
        return name

    def family_name(self, naming: _Naming) -> str:
        return self.rng.choices(naming.family, weights=self._weights[naming.family])[0]

    def born(self, youngest: int, oldest: int) -> date:
        """A birth date for someone aged ``youngest`` to ``oldest`` years today."""
        days = self.rng.randint(round(youngest * _YEAR), round((oldest + 1) * _YEAR) - 1)
        return self.today - timedelta(days=days)

    def relate(self, kind: RelationKind, a: TruePerson, b: TruePerson) -> None:
        self.relations.append(Relation(kind, a.person_id, b.person_id))

    # Homes ------------------------------------------------------------------------------

    def new_home(self) -> Home:
        """A true home, with its members to come."""
        home = self.draw_home(len(self.homes))
        self.homes[home.home_id] = home
        self.members[home.home_id] = []
        return home

    def moved_home(self, old: Home) -> Home:
        """Where someone moved, for their registrations only (nobody's true home, id -1):
        the same region 70% of the time, and then the same municipality half of the time."""
        if self.rng.random() >= 0.7:
            return self.draw_home(-1)
        municipality = old.municipality if self.rng.random() < 0.5 else None
        return self.draw_home(-1, old.region, municipality)

    def draw_home(self, home_id: int, region: str | None = None, municipality: str | None = None) -> Home:
        rng = self.rng
        if region is None:
            region = rng.choices([r[0] for r in REGIONS], weights=[r[1] for r in REGIONS])[0]
        if municipality is None:
            municipality = rng.choice(next(r[2] for r in REGIONS if r[0] == region))
        address = f"{rng.choice(STREET_KINDS)} {rng.choice(STREETS)} {rng.randint(1, 3999)}"
        if rng.random() < 0.15:
            address += f", depto {rng.randint(1, 20)}{rng.randint(1, 12):02d}"
        phone = ""
        if rng.random() >= self.shares.no_phone:
            phone = f"+56 9 {rng.randint(2000, 9999)} {rng.randint(0, 9999):04d}"
        return Home(home_id, region, municipality, address, phone)

    def truncate(self, people: int) -> None:
        """Keep the first ``people`` people: the last household loses its youngest members
        (made last); references only point to earlier people, so none dangles."""
        for person_id in [p for p in self.people if p >= people]:
            del self.people[person_id]
        for home_id, members in list(self.members.items()):
            self.members[home_id] = [p for p in members if p < people]
            if not self.members[home_id]:
                del self.members[home_id], self.homes[home_id]
        self.relations = [r for r in self.relations if r.a < people and r.b < people]


# Noise ----------------------------------------------------------------------------------


def _noisy_person(person: TruePerson, noise: Noise, rng: random.Random) -> dict[str, str]:
    """The person's own columns as one registration writes them."""
    given, family, second = person.given_names, person.family_name, person.second_family_name
    if " " in given and rng.random() < noise.shortened_given_names:
        given = given.split(" ")[0]
    if second and rng.random() < noise.swap_family_names:
        family, second = second, family
    if rng.random() < noise.missing_second_family_name:
        second = ""
    names = [_typo(n, rng) if n and rng.random() < noise.typo else n for n in (given, family, second)]
    if rng.random() < noise.drop_accents:
        names = [_strip_accents(n) for n in names]
    if rng.random() < noise.upper_case:
        names = [n.upper() for n in names]
    if rng.random() < noise.extra_space:
        which = rng.choice([i for i, n in enumerate(names) if n])
        name = names[which]
        names[which] = name.replace(" ", "  ", 1) if " " in name else name + " "
    born = person.date_of_birth
    if born.day <= 12 and born.day != born.month and rng.random() < noise.day_month_swap:
        born = date(born.year, born.day, born.month)
    return {
        "given_names": names[0],
        "family_name": names[1],
        "second_family_name": names[2],
        "sex": person.sex,
        "date_of_birth": born.isoformat(),
    }


def _noisy_home(home: Home, noise: Noise, rng: random.Random) -> dict[str, str]:
    """The household columns as one household registration (form) writes them."""
    region, municipality, address = home.region, home.municipality, home.address
    if rng.random() < noise.abbreviated_address:
        for long, short in _ABBREVIATIONS:
            address = address.replace(long, short, 1)
        address = address.replace("depto", "dpto.")
    if rng.random() < noise.typo:
        address = _typo(address, rng)
    if rng.random() < noise.drop_accents:
        region, municipality, address = (_strip_accents(t) for t in (region, municipality, address))
    if rng.random() < noise.upper_case:
        address = address.upper()
    phone = home.phone
    if phone and rng.random() < noise.phone_format:
        phone = _phone_format(phone, rng)
    return {"region": region, "municipality": municipality, "address": address, "phone": phone}


def _phone_format(phone: str, rng: random.Random) -> str:
    """The same Chilean mobile number ("+56 9 1234 5678") written another way."""
    digits = "".join(c for c in phone if c.isdigit())[-9:]
    styles = (
        digits,
        f"+56{digits}",
        f"{digits[0]} {digits[1:5]} {digits[5:]}",
        f"{digits[0]} {digits[1:5]}-{digits[5:]}",
        f"56 {digits}",
    )
    return rng.choice(styles)


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _typo(text: str, rng: random.Random) -> str:
    """One substitution, insertion, deletion or transposition of letters in ``text``;
    the result always differs and, for names of three letters or more, keeps a letter."""
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    if not letters:
        return text
    i = rng.choice(letters)
    kind = rng.choice(("substitution", "insertion", "deletion", "transposition"))
    if kind == "transposition" and i + 1 < len(text) and text[i + 1].isalpha() and text[i] != text[i + 1]:
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if kind == "deletion" and len(letters) >= 3:
        return text[:i] + text[i + 1 :]
    if kind == "insertion":
        # Doubling a letter is the commonest slip ("Gonzalles"); otherwise a random one.
        extra = text[i] if rng.random() < 0.5 else _cased(rng.choice(_LETTERS), text[i])
        return text[:i] + extra + text[i:]
    replacement = _cased(rng.choice([c for c in _LETTERS if c != text[i].lower()]), text[i])
    return text[:i] + replacement + text[i + 1 :]


def _cased(letter: str, like: str) -> str:
    return letter.upper() if like.isupper() else letter


def _strip_accents(text: str) -> str:
    """ "Núñez" → "Nunez", "Conceição" → "Conceicao"."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _zipf(n: int) -> list[float]:
    """Weights for ``n`` names listed from the commonest: rank r weighs 1 / r^0.8."""
    return [1 / (rank**0.8) for rank in range(1, n + 1)]


def _check_probabilities(settings: object, skip: Sequence[str] = ()) -> None:
    for f in fields(settings):  # type: ignore[arg-type]
        value = getattr(settings, f.name)
        if f.name not in skip and not 0.0 <= value <= 1.0:
            raise ValueError(f"{type(settings).__name__}.{f.name} must be between 0 and 1, not {value}")
