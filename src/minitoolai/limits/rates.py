"""What a limit is: the four rates of one scope (an API key, or the account it spends from).

``None`` means "not set here": a key's or account's own value (the database's override) wins
over the configured default of its kind; a rate that is ``None`` after both is no limit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

#: the length of every window, in milliseconds (the limits are per minute)
WINDOW_MS: Final = 60_000
#: the names of the rates, as the CLI's options, the admin API's fields and the columns say
RATE_NAMES: Final = ("rpm", "tpm", "ipm", "max_concurrent")


@dataclass(frozen=True, slots=True)
class Rates:
    """Requests, tokens and images per minute, and requests in flight; ``None``: unset."""

    rpm: int | None = None
    tpm: int | None = None
    ipm: int | None = None
    max_concurrent: int | None = None

    def over(self, default: Rates) -> Rates:
        """These rates where set, ``default``'s where not."""
        return Rates(
            *(
                mine if mine is not None else theirs
                for mine, theirs in zip(self.values(), default.values(), strict=True)
            )
        )

    def values(self) -> tuple[int | None, ...]:
        return (self.rpm, self.tpm, self.ipm, self.max_concurrent)

    @property
    def any(self) -> bool:
        return any(value for value in self.values())

    def to_dict(self) -> dict[str, int | None]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @classmethod
    def of(cls, row: object) -> Rates:
        """The override columns of an ``api_keys`` or ``accounts`` row (``limit_rpm``...)."""
        return cls(*(_positive(getattr(row, f"limit_{name}", None)) for name in RATE_NAMES))


NO_RATES: Final = Rates()


@dataclass(frozen=True, slots=True)
class Overrides:
    """A key's own rates and its account's, as the database holds them."""

    key: Rates = NO_RATES
    account: Rates = NO_RATES


NO_OVERRIDES: Final = Overrides()


def _positive(value: object) -> int | None:
    """A stored override; 0 and below are never stored, but read as unset."""
    if value is None:
        return None
    number = int(value)  # type: ignore[call-overload]
    return number if number > 0 else None
