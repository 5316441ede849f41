"""Quantities of goods, held as whole thousandths of the programme's unit.

Integers keep arithmetic exact and identical on every database; ``Decimal`` is used only at
the edges, where people type and read quantities such as ``12.5`` litres.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from canasta.domain.errors import InvalidInput

SCALE = 1000
#: The largest quantity one entitlement or redemption may hold: a million units.
MAX_UNITS = 1_000_000
MAX_MILLI = MAX_UNITS * SCALE


def to_milli(value: Decimal | int | str, *, allow_zero: bool = False) -> int:
    """Turn a quantity in units into thousandths, refusing what is not a sane quantity."""
    try:
        units = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidInput(f"{value!r} is not a number") from None
    if not units.is_finite():
        raise InvalidInput(f"{value!r} is not a finite number")
    milli = units * SCALE
    if milli != milli.to_integral_value():
        raise InvalidInput(f"{value} has more than three decimal places")
    if units < 0 or (units == 0 and not allow_zero):
        raise InvalidInput(f"a quantity must be {'zero or ' if allow_zero else ''}positive, not {value}")
    if units > MAX_UNITS:
        raise InvalidInput(f"{value} is more than the largest allowed quantity ({MAX_UNITS:,})")
    return int(milli)


def to_units(milli: int) -> Decimal:
    """Thousandths back to units, normalised (``12500`` → ``Decimal('12.5')``)."""
    result = (Decimal(milli) / SCALE).normalize()
    # normalize() writes 100 as 1E+2; keep plain notation.
    return result.quantize(Decimal(1)) if result == result.to_integral_value() else result


def format_milli(milli: int) -> str:
    """The plain decimal string people read and JSON carries (``"12.5"``)."""
    sign = "-" if milli < 0 else ""
    units, fraction = divmod(abs(milli), SCALE)
    if not fraction:
        return f"{sign}{units}"
    return f"{sign}{units}.{fraction:03d}".rstrip("0")
