"""The protected-attribute firewall (DESIGN.md, invariant 4).

No attribute of a protected category may be declared, imported, or referenced by a rule, a
report or a check: political opinion, voting or turnout, party or movement membership,
religion or belief, ethnicity, race or national origin, union membership, sexual life or
orientation, and health beyond the declared need categories (a diagnosis, a medical
record). This module recognises such names, in English, Spanish, Portuguese and French,
whatever their case, accents, separators or camelCase, including common abbreviations and
synonyms, and says which category a name belongs to.

What it cannot do: recognise an attribute deliberately given an innocent name (``x7``,
``flag_b``). That is caught only by publication and review, which is why schemas and rules
are public. The lists err on the side of refusing: a name that merely looks protected must
be renamed, which costs a registrar a minute and costs nobody their ration.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from canasta.domain.errors import InvalidInput


class ProtectedAttribute(InvalidInput):
    """A name that refers to a protected category."""

    code = "protected-attribute"


#: Category → (words that alone name it, word stems that alone name it, word pairs that
#: together name it). Words are compared after folding case and accents.
_CATEGORIES: dict[str, tuple[frozenset[str], tuple[str, ...], frozenset[tuple[str, str]]]] = {
    "political opinion": (
        frozenset(
            {
                "ideology",
                "ideologia",
                "ideologie",
                "leftist",
                "rightist",
                "opposition",
                "oposicion",
                "oposicao",
                "oppositionist",
                "loyalty",
                "loyal",
                "lealtad",
                "lealdade",
                "loyaute",
                "dissident",
                "disidente",
                "dissidente",
                "chavista",
                "peronista",
                "sandinista",
                "communist",
                "comunista",
                "communiste",
                "socialist",
                "socialista",
                "socialiste",
                "liberal",
                "conservative",
                "conservador",
                "conservateur",
                "polop",
                "polaff",
            }
        ),
        ("politic", "politiq", "polit"),
        frozenset(
            {
                ("political", "opinion"),
                ("opinion", "politica"),
                ("opiniao", "politica"),
                ("opinion", "politique"),
                ("political", "view"),
                ("political", "views"),
                ("social", "credit"),
                ("credito", "social"),
                ("credit", "score"),
            }
        ),
    ),
    "voting or turnout": (
        frozenset(
            {
                "vote",
                "voted",
                "voter",
                "voters",
                "votes",
                "voting",
                "voto",
                "votos",
                "votou",
                "votante",
                "votantes",
                "votar",
                "votacion",
                "votacao",
                "voteur",
                "votant",
                "ballot",
                "ballots",
                "boleta",
                "turnout",
                "sufragio",
                "sufragou",
                "suffrage",
                "suffrages",
                "elector",
                "electoral",
                "eleitor",
                "eleitoral",
                "electeur",
                "electorat",
                "election",
                "elections",
                "eleccion",
                "elecciones",
                "eleicao",
                "eleicoes",
                "poll",
                "polls",
                "polling",
                "abstention",
                "abstencion",
                "abstencao",
                "scrutin",
                "comicios",
                "carnetdelapatria",
            }
        ),
        ("vot", "elector", "eleitor", "electeur", "sufrag", "suffrag"),
        frozenset(
            {
                ("voter", "turnout"),
                ("voted", "last"),
                ("did", "vote"),
                ("has", "voted"),
                ("carnet", "patria"),
            }
        ),
    ),
    "party or movement membership": (
        frozenset(
            {
                "partido",
                "partidos",
                "partidario",
                "partidaria",
                "partisan",
                "parti",
                "militante",
                "militantes",
                "militant",
                "militancia",
                "militancy",
                "adherent",
                "adherente",
                "partymember",
                "partyid",
            }
        ),
        ("militan", "partidar", "partisan"),
        frozenset(
            {
                ("party", "member"),
                ("party", "membership"),
                ("party", "affiliation"),
                ("political", "party"),
                ("party", "id"),
                ("party", "card"),
                ("party", "name"),
                ("member", "party"),
                ("afiliacion", "partido"),
                ("afiliacion", "politica"),
                ("movement", "member"),
                ("miembro", "movimiento"),
                ("membre", "parti"),
            }
        ),
    ),
    "religion or belief": (
        frozenset(
            {
                "religion",
                "religions",
                "religious",
                "religiao",
                "religieux",
                "religieuse",
                "faith",
                "credo",
                "creed",
                "croyance",
                "crenca",
                "creencia",
                "belief",
                "beliefs",
                "church",
                "iglesia",
                "igreja",
                "eglise",
                "mosque",
                "mezquita",
                "mesquita",
                "mosquee",
                "synagogue",
                "sinagoga",
                "temple",
                "templo",
                "denomination",
                "denominacion",
                "confession",
                "confesion",
                "catholic",
                "catolico",
                "catholique",
                "protestant",
                "protestante",
                "evangelical",
                "evangelico",
                "muslim",
                "musulman",
                "muculmano",
                "islam",
                "islamic",
                "jewish",
                "judio",
                "judeu",
                "juif",
                "hindu",
                "buddhist",
                "budista",
                "atheist",
                "ateo",
                "ateu",
                "athee",
                "agnostic",
                "caste",
                "casta",
                "sect",
                "secta",
                "seita",
                "secte",
            }
        ),
        ("relig", "confession", "confesion", "evangel"),
        frozenset({("belief", "system"), ("sistema", "creencias")}),
    ),
    "ethnicity, race or national origin": (
        frozenset(
            {
                "ethnicity",
                "ethnic",
                "ethnie",
                "etnia",
                "etnias",
                "etnico",
                "etnica",
                "ethnique",
                "race",
                "races",
                "racial",
                "raza",
                "razas",
                "raca",
                "tribe",
                "tribal",
                "tribu",
                "tribo",
                "indigenous",
                "indigena",
                "indigene",
                "autochtone",
                "aboriginal",
                "afro",
                "afrodescendiente",
                "afrodescendente",
                "mestizo",
                "mestico",
                "nationality",
                "nacionalidad",
                "nacionalidade",
                "nationalite",
                "citizenship",
                "ciudadania",
                "cidadania",
                "citoyennete",
                "migrant",
                "migrante",
                "immigrant",
                "inmigrante",
                "imigrante",
                "foreigner",
                "extranjero",
                "estrangeiro",
                "etranger",
                "ancestry",
                "ascendencia",
                "descent",
            }
        ),
        ("ethn", "etni", "racial"),
        frozenset(
            {
                ("national", "origin"),
                ("country", "birth"),
                ("pais", "nacimiento"),
                ("pais", "origen"),
                ("country", "origin"),
                ("lugar", "origen"),
                ("skin", "colour"),
                ("skin", "color"),
                ("color", "piel"),
                ("cor", "pele"),
                ("pays", "origine"),
            }
        ),
    ),
    "union membership": (
        frozenset(
            {
                "sindicato",
                "sindicatos",
                "sindical",
                "sindicalizado",
                "sindicalista",
                "syndicat",
                "syndical",
                "syndique",
                "unionized",
                "unionised",
                "unionist",
                "tradeunion",
                "unionmember",
            }
        ),
        ("sindica", "syndica", "syndiqu"),
        frozenset(
            {
                ("trade", "union"),
                ("labour", "union"),
                ("labor", "union"),
                ("union", "member"),
                ("union", "membership"),
                ("union", "dues"),
                ("cuota", "sindical"),
            }
        ),
    ),
    "sexual life or orientation": (
        frozenset(
            {
                "sexuality",
                "sexualidad",
                "sexualidade",
                "sexualite",
                "gay",
                "lesbian",
                "lesbiana",
                "lesbica",
                "lesbienne",
                "homosexual",
                "homosexuel",
                "bisexual",
                "bissexual",
                "heterosexual",
                "lgbt",
                "lgbtq",
                "lgbti",
                "lgbtqi",
                "queer",
                "transgender",
                "transgenero",
                "transexual",
            }
        ),
        ("sexualit", "sexualid", "homosex", "bisex", "lgbt"),
        frozenset(
            {
                ("sexual", "orientation"),
                ("orientacion", "sexual"),
                ("orientacao", "sexual"),
                ("orientation", "sexuelle"),
                ("sex", "life"),
                ("vida", "sexual"),
                ("vie", "sexuelle"),
                ("sexual", "life"),
                ("sexual", "partner"),
                ("sexual", "partners"),
            }
        ),
    ),
    # Health beyond the declared need categories: a disability or a care need is declared
    # as such ("disability and care needs"); a diagnosis, a condition or a medical record is
    # not something a ration depends on.
    "health beyond declared need categories": (
        frozenset(
            {
                "diagnosis",
                "diagnostico",
                "diagnostique",
                "hiv",
                "vih",
                "sida",
                "hepatitis",
                "hepatite",
                "tuberculosis",
                "tuberculose",
                "cancer",
                "oncology",
                "oncologia",
                "psychiatric",
                "psiquiatrico",
                "psiquiatria",
                "psychiatrique",
                "medication",
                "medicacion",
                "medicamento",
                "medicamentos",
                "prescription",
                "receta",
                "abortion",
                "aborto",
                "avortement",
                "addiction",
                "adiccion",
                "adicao",
            }
        ),
        ("diagnos", "psychiatr", "psiquiatr", "oncolog"),
        frozenset(
            {
                ("medical", "record"),
                ("medical", "history"),
                ("historia", "clinica"),
                ("historial", "medico"),
                ("prontuario", "medico"),
                ("dossier", "medical"),
                ("mental", "health"),
                ("salud", "mental"),
                ("saude", "mental"),
                ("sante", "mentale"),
                ("health", "condition"),
                ("condicion", "medica"),
                ("blood", "type"),
                ("grupo", "sanguineo"),
                ("drug", "use"),
                ("consumo", "drogas"),
            }
        ),
    ),
}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True, slots=True)
class ProtectedMatch:
    """Why a name is refused: the category and the word (or words) that named it."""

    category: str
    evidence: str


def words(name: str) -> list[str]:
    """The words of a name, folded: camelCase split, accents and case removed, anything
    that is not a letter (separators, digits) treated as a break."""
    spaced = _CAMEL.sub(" ", name)
    folded = unicodedata.normalize("NFKD", spaced)
    plain = "".join(c for c in folded if not unicodedata.combining(c)).lower()
    return _WORD.findall(plain)


def protected_category(name: str) -> ProtectedMatch | None:
    """The protected category ``name`` refers to, if any. Pairs of words are tried first
    (they are the most specific: "political party" is party membership), then single
    words and stems, then words that merely start with a term ("votedlast", "CARNETPATRIA";
    only the start: "selection" ends in "election")."""
    found = words(name)
    present = set(found)
    for category, (_, _, pairs) in _CATEGORIES.items():
        for first, second in pairs:
            if first in present and second in present:
                return ProtectedMatch(category, f"{first} {second}")
    for category, (single, stems, _) in _CATEGORIES.items():
        for word in found:
            if word in single or word.startswith(stems):
                return ProtectedMatch(category, word)
    for category, (single, _, pairs) in _CATEGORIES.items():
        for word in found:
            if len(word) <= 4:
                continue
            for first, second in pairs:
                if word.startswith(first + second):
                    return ProtectedMatch(category, first + second)
            for term in single:
                if len(term) >= 5 and word.startswith(term):
                    return ProtectedMatch(category, term)
    return None


def refuse_protected(name: str, where: str) -> None:
    """Raise ``ProtectedAttribute`` if ``name`` refers to a protected category. ``where``
    says what was being done (``"a registry column"``, ``"a rule"``)."""
    match = protected_category(name)
    if match is not None:
        raise ProtectedAttribute(firewall_reason(name, match, where))


def firewall_reason(name: str, match: ProtectedMatch, where: str) -> str:
    return (
        f"{name!r} refers to {match.category} (through {match.evidence!r}), a protected "
        f"category: canasta never declares, imports, stores or uses one as {where} "
        "(DESIGN.md, invariant 4)"
    )
