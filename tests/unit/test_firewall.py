"""The protected-attribute firewall: every dodge we could think of is refused, and the
attributes needs-based programmes really use are not."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canasta.domain.firewall import ProtectedAttribute, protected_category, refuse_protected, words

SMUGGLED = {
    "voting or turnout": [
        "voted",
        "voter_turnout",
        "VoterTurnout",
        "sufragio",
        "voto",
        "votó",
        "VOTOU",
        "did_vote",
        "has-voted",
        "voted.last.election",
        "votedLast",
        "ballot_cast",
        "electoral_roll",
        "eleitor",
        "abstención",
        "turnout2024",
        "carnet_de_la_patria",
        "CarnetPatria",
    ],
    "party or movement membership": [
        "party_member",
        "PartyMembership",
        "partymembership",
        "militante",
        "militância",
        "partido",
        "afiliacion_partido",
        "political party",
        "parti",
        "party-id",
    ],
    "religion or belief": [
        "religion",
        "Religión",
        "religião",
        "credo",
        "faith_group",
        "church_member",
        "iglesia",
        "Église",
        "denominación",
        "is_muslim",
        "catolico",
        "religious_affiliation",
        "relig_code",
    ],
    "ethnicity, race or national origin": [
        "etnia",
        "raza",
        "Ethnicity",
        "ethnic_group",
        "race",
        "raça",
        "ethnie",
        "indígena",
        "skin_colour",
        "color_de_piel",
        "nationality",
        "país_de_nacimiento",
        "national origin",
        "afrodescendiente",
        "tribe",
    ],
    "union membership": [
        "union_member",
        "trade-union",
        "sindicato",
        "sindicalizado",
        "syndicat",
        "UnionMembership",
    ],
    "sexual life or orientation": [
        "sexual_orientation",
        "orientación sexual",
        "LGBTQ",
        "is_gay",
        "vie_sexuelle",
        "homosexual",
        "bisexual",
    ],
    "political opinion": [
        "political_opinion",
        "política",
        "ideologia",
        "opinião_política",
        "loyalty_score",
        "social_credit",
        "opposition_supporter",
        "chavista",
    ],
    "health beyond declared need categories": [
        "diagnosis",
        "hiv_status",
        "VIH",
        "historia_clinica",
        "MentalHealth",
        "salud_mental",
        "diagnostico_psiquiatrico",
        "medical_record_no",
        "tuberculose",
        "grupo-sanguíneo",
    ],
}

NEEDS = [
    "age",
    "date_of_birth",
    "household_size",
    "members_over_65",
    "number_of_children",
    "female_headed_household",
    "income_monthly",
    "ingreso_mensual",
    "rent",
    "owns_land",
    "disability_level",
    "discapacidad",
    "carnet_discapacidad",
    "cedula",
    "region",
    "municipality",
    "rural",
    "vehicle_kind",
    "engine_cc",
    "fuel_type",
    "selection_round",
    "third_party_income",
    "fe_de_vida",
    "regimen_salud",
    "indigente",
    "amputacion_pierna_izquierda",
    "origen_ingresos",
    "transporte_colectivo",
    "credit_union_savings",
    "padron_municipal",
    "pregnant",
    "orphan",
    "widow",
    "chronic_illness",
    "school_attendance",
    "afiliado_eps",
    "electricity_access",
    "hearing_aids",
    "care_hours",
]


@pytest.mark.parametrize(
    ("category", "name"), [(category, name) for category, names in SMUGGLED.items() for name in names]
)
def test_protected_names_are_refused_whatever_their_spelling(category: str, name: str) -> None:
    match = protected_category(name)
    assert match is not None, name
    assert match.category == category
    with pytest.raises(ProtectedAttribute) as caught:
        refuse_protected(name, "a registry column")
    assert category in caught.value.message and "invariant 4" in caught.value.message


@pytest.mark.parametrize("name", NEEDS)
def test_needs_based_attributes_pass(name: str) -> None:
    assert protected_category(name) is None


def test_words_fold_case_accents_separators_and_camel_case() -> None:
    assert words("VoterTurnout-2024__Última.Elección") == ["voter", "turnout", "ultima", "eleccion"]


@given(
    st.sampled_from([n for names in SMUGGLED.values() for n in names]),
    st.sampled_from(["", "_", "-", ".", " ", "__", "1"]),
    st.sampled_from(["", "x", "hh", "person"]),
    st.booleans(),
)
def test_decorating_a_protected_name_does_not_hide_it(
    name: str, separator: str, prefix: str, shout: bool
) -> None:
    decorated = (prefix + separator if prefix and separator else "") + name
    if shout:
        decorated = decorated.upper()
    assert protected_category(decorated) is not None, decorated
