"""Money as integer cents. Percentages as integer basis points. No float anywhere."""

from __future__ import annotations

from decimal import Decimal

BASIS_POINTS_PER_UNIT = 10_000  # 100 % = 10 000 basis points


def apply_rate(amount_cents: int, rate_basis_points: int) -> int:
    """Return ``amount × rate`` in cents, rounded half up (the rule at the line level)."""
    product = amount_cents * rate_basis_points
    quotient, remainder = divmod(product, BASIS_POINTS_PER_UNIT)
    # Half up, symmetric for negative amounts (reversals).
    if amount_cents >= 0:
        return quotient + (1 if remainder * 2 >= BASIS_POINTS_PER_UNIT else 0)
    return -apply_rate(-amount_cents, rate_basis_points)


def percent(value: int | str | Decimal) -> int:
    """Convert a percentage (``70``, ``"17.5"``) to basis points, exactly."""
    bp = Decimal(str(value)) * 100
    if bp != bp.to_integral_value():
        raise ValueError(f"percentage {value!r} has more than two decimals")
    return int(bp)


def euros_to_cents(value: str | int | Decimal) -> int:
    """Convert an amount in euros (``"12.30"``) to integer cents, refusing sub-cent values."""
    cents = Decimal(str(value)) * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"amount {value!r} has more than two decimals")
    return int(cents)


def format_euros(cents: int) -> str:
    """Format cents as a French amount: ``1 234,50 €``."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    grouped = f"{whole:,}".replace(",", "\u202f")
    return f"{sign}{grouped},{part:02d} €"
