"""Money is an integer count of nano-dollars (1e-9 USD). Floats never touch a balance.

Decimal strings are the only way amounts enter or leave the system: ``usd_to_nano("4.99")``
parses exactly, ``nano_to_usd(4_999_995_950)`` prints ``"4.999995950"``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

NANO_PER_USD = 1_000_000_000
#: The most an account may hold (US$1e9): far below 2**63, so no sum of two amounts overflows
#: a 64-bit column (SQLite would turn an overflowing integer into a float).
MAX_BALANCE = 10**18


def usd_to_nano(value: str | int | Decimal) -> int:
    """Parse a USD amount exactly. More than 9 decimals is an error, not a rounding."""
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a USD amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not a USD amount: {value!r}")
    nano = amount * NANO_PER_USD
    if nano != nano.to_integral_value():
        raise ValueError(f"USD amount {value!r} has more than 9 decimals")
    return int(nano)


def nano_to_usd(nano: int) -> str:
    """Render nano-dollars as an exact decimal string with 9 decimals (``"0"`` for zero)."""
    if nano == 0:
        return "0"
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), NANO_PER_USD)
    return f"{sign}{whole}.{frac:09d}"


def per_million(units: int, price_per_million_nano: int) -> int:
    """Cost of ``units`` at a price per 1M units, rounded up to the next nano-dollar.

    Rounding up is the one place a fraction appears; the seed's prices are whole nano-dollars
    per token, so for them this is exact.
    """
    return -(-units * price_per_million_nano // 1_000_000)
