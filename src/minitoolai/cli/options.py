"""Options several commands share, and the parsing of what they were given."""

from __future__ import annotations

from typing import Annotated

import typer

from minitoolai.errors import APIError
from minitoolai.limits.overrides import parse_rate
from minitoolai.money import usd_to_nano

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

RateOpt = Annotated[
    str | None, typer.Option(help="Requests per minute; 0 or none clears it (docs/limits.md).")
]
TpmOpt = Annotated[str | None, typer.Option(help="Tokens per minute; 0 or none clears it.")]
IpmOpt = Annotated[str | None, typer.Option(help="Images per minute; 0 or none clears it.")]
ConcurrentOpt = Annotated[
    str | None,
    typer.Option("--max-concurrent", help="Requests in flight at once; 0 or none clears it."),
]

DailyBudgetOpt = Annotated[
    str | None,
    typer.Option("--daily-budget", help="USD per UTC day; none clears it (docs/billing.md)."),
]
MonthlyBudgetOpt = Annotated[
    str | None, typer.Option("--monthly-budget", help="USD per UTC month; none clears it.")
]
TotalBudgetOpt = Annotated[
    str | None, typer.Option("--budget", help="USD in total, never reset; none clears it.")
]


def parse_usd(value: str) -> int:
    """A USD amount given on the command line, in nano-USD."""
    try:
        return usd_to_nano(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_rates(**given: str | None) -> dict[str, int | None]:
    """The rate options given on the command line (left out: unchanged)."""
    try:
        return {name: parse_rate(text, name) for name, text in given.items() if text is not None}
    except APIError as exc:
        raise typer.BadParameter(exc.message) from None


def parse_budgets(**given: str | None) -> dict[str, int | None]:
    """The budget options given on the command line (left out: unchanged; none: cleared)."""
    return {
        period: None if text.strip().lower() == "none" else parse_usd(text)
        for period, text in given.items()
        if text is not None
    }
