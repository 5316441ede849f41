"""Normalising registrations for matching."""

from __future__ import annotations

import pytest

from canasta.linkage.normalise import (
    NORMALISED_COLUMNS,
    birth_keys,
    birth_year,
    family_names_sorted,
    fold,
    normalise_address,
    normalise_registration,
    phone_digits,
    phonetic_key,
    split_given_names,
)


@pytest.mark.parametrize(
    ("written", "folded"),
    [
        ("  NÚÑEZ ", "nunez"),
        ("Conceição", "conceicao"),
        ("María  José", "maria jose"),
        ("Bernardo O'Higgins", "bernardo o higgins"),
        ("", ""),
    ],
)
def test_fold_strips_accents_case_punctuation_and_spaces(written: str, folded: str) -> None:
    assert fold(written) == folded


def test_compound_given_names_split_into_first_and_others() -> None:
    assert split_given_names("María de los Ángeles") == ("maria", "de los angeles")
    assert split_given_names("JOSÉ") == ("jose", "")
    assert split_given_names("") == ("", "")


def test_family_names_sorted_tolerate_a_swap_and_a_missing_name() -> None:
    assert family_names_sorted("Pérez", "González") == family_names_sorted("GONZALEZ", "perez")
    assert family_names_sorted("Pérez", "") == "perez"
    assert family_names_sorted("", "") == ""


def test_phonetic_key_merges_common_spelling_slips() -> None:
    assert phonetic_key("González") == phonetic_key("Gonsales") == phonetic_key("gonzales")
    assert phonetic_key("Vásquez") == phonetic_key("Basques")
    assert phonetic_key("Rojas") != phonetic_key("Soto")
    assert phonetic_key("") == ""


@pytest.mark.parametrize("written", ["+56 9 1234 5678", "912345678", "9 1234-5678", "56 912345678"])
def test_phone_formats_agree_on_their_last_eight_digits(written: str) -> None:
    assert phone_digits(written) == "12345678"


def test_a_phone_too_short_is_missing() -> None:
    assert phone_digits("12 34") == ""


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("Avenida Los Álamos 1234, depto 502", "avenida los alamos 1234 depto 502"),
        ("Av. Los Alamos 1234, dpto. 502", "avenida los alamos 1234 depto 502"),
        ("AVDA. LOS ÁLAMOS 1234", "avenida los alamos 1234"),
        ("Pje. Lautaro 12", "pasaje lautaro 12"),
        ("Psje Lautaro 12", "pasaje lautaro 12"),
        ("Calle Colón 9", "colon 9"),
    ],
)
def test_addresses_are_written_one_way(written: str, normalised: str) -> None:
    assert normalise_address(written) == normalised


def test_birth_year() -> None:
    assert birth_year("1984-03-07") == "1984"
    assert birth_year("") == ""


def test_a_registration_normalised() -> None:
    row = {
        "registration_id": "R0000001",
        "given_names": "JUAN  CARLOS",
        "family_name": "Núñez",
        "second_family_name": "",
        "sex": "M",
        "date_of_birth": "1984-03-07",
        "region": "Ñuble",
        "municipality": "Chillán",
        "address": "Av. Libertad 12",
        "phone": "+56 9 2345 6789",
        "household_ref": "H000001",
    }
    record = normalise_registration(row)
    assert tuple(record) == NORMALISED_COLUMNS
    assert record == {
        "unique_id": "R0000001",
        "given_names": "juan carlos",
        "first_given_name": "juan",
        "other_given_names": "carlos",
        "family_name": "nunez",
        "second_family_name": None,
        "family_names_sorted": "nunez",
        "family_key": "ns",
        "sex": "M",
        "date_of_birth": "1984-03-07",
        "birth_year": "1984",
        "birth_month": "1984-03",
        "birth_monthday": "03-07",
        "birth_date_unordered": "1984:03:07",
        "given_initial": "j",
        "sex_key": "M",
        "region": "nuble",
        "municipality": "chillan",
        "address": "avenida libertad 12",
        "phone": "23456789",
        "household_ref": "H000001",
    }


def test_birth_keys_each_survive_one_kind_of_error() -> None:
    typed = birth_keys("1984-03-07")
    assert birth_keys("1984-03-08")[0] == typed[0]  # a mistyped day keeps year and month
    assert birth_keys("1948-03-07")[1] == typed[1]  # a mistyped year keeps month and day
    assert birth_keys("1984-07-03")[2] == typed[2]  # day and month exchanged
    assert birth_keys("07/03/1984") == ("", "", "")
    assert birth_keys("") == ("", "", "")


def test_optional_columns_may_be_absent() -> None:
    record = normalise_registration({"registration_id": "x", "given_names": "Ana"})
    assert record["first_given_name"] == "ana"
    assert record["phone"] is None
    assert record["address"] is None
