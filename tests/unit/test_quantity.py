from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canasta.domain.errors import InvalidInput
from canasta.domain.quantity import MAX_MILLI, format_milli, to_milli, to_units


@pytest.mark.parametrize(
    ("text", "milli"),
    [("1", 1000), ("12.5", 12500), ("0.001", 1), (" 7 ", 7000), ("1000000", MAX_MILLI)],
)
def test_quantities_in_units_become_thousandths(text: str, milli: int) -> None:
    assert to_milli(text) == milli


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0", "positive"),
        ("-1", "positive"),
        ("0.0001", "three decimal places"),
        ("1000000.001", "largest allowed"),
        ("abc", "not a number"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
    ],
)
def test_insane_quantities_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        to_milli(text)


def test_zero_is_allowed_only_when_asked() -> None:
    assert to_milli("0", allow_zero=True) == 0


@given(st.integers(min_value=1, max_value=MAX_MILLI))
def test_formatting_round_trips(milli: int) -> None:
    text = format_milli(milli)
    assert "E" not in text
    assert to_milli(text) == milli
    assert to_units(milli) == Decimal(milli) / 1000


@pytest.mark.parametrize(
    ("milli", "text"),
    [(0, "0"), (1, "0.001"), (10, "0.01"), (12_500, "12.5"), (100_000, "100"), (-2_050, "-2.05")],
)
def test_quantities_are_written_plainly(milli: int, text: str) -> None:
    assert format_milli(milli) == text
