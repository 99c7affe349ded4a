"""Spend budgets: the caps a key and its account may spend per UTC day, per UTC month and in
total, and the counters the ledger keeps for them.

A budget is checked in the same atomic step as the balance hold (``ledger.store``): each
counter row (``budget_spend``) keeps what was ``spent`` (settled costs) and what is ``held`` in
its period, and the hold's conditional upsert requires ``spent + held + this hold <= cap`` for
every counter, in the transaction that reserves the balance. A hold belongs to the period it
was taken in: its charge keeps that UTC day (``charges.budget_period``), and its settle,
release or refund moves that period's counters, whenever it happens. So a request held at
23:59 and settled at 00:01 counts against the day it started, and a new day starts empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from minitoolai.money import nano_to_usd

Scope = Literal["key", "account"]
PeriodKind = Literal["daily", "monthly", "total"]
PERIODS: tuple[PeriodKind, ...] = ("daily", "monthly", "total")


@dataclass(frozen=True, slots=True)
class Caps:
    """One key's or account's budgets in nano-dollars (None: no cap for that period)."""

    daily: int | None = None
    monthly: int | None = None
    total: int | None = None

    def __bool__(self) -> bool:
        return self.daily is not None or self.monthly is not None or self.total is not None

    def cap(self, period: PeriodKind) -> int | None:
        return {"daily": self.daily, "monthly": self.monthly, "total": self.total}[period]


NO_CAPS = Caps()


@dataclass(frozen=True, slots=True)
class Budgets:
    """The budgets that apply to a caller: its key's and its account's (carried in the cached
    ``Principal``; None there when neither has any, so the hold takes the plain path)."""

    key: Caps
    account: Caps

    @classmethod
    def of(cls, key: Caps, account: Caps) -> Budgets | None:
        return cls(key, account) if key or account else None


@dataclass(frozen=True, slots=True)
class BudgetRow:
    """One ``budget_spend`` row a hold moves, with the cap it must stay under."""

    scope: Scope
    scope_id: int
    kind: PeriodKind
    period: str  # the row's key: day:YYYY-MM-DD, month:YYYY-MM or total
    cap: int | None


def day_of(now: datetime) -> str:
    """The UTC day a hold taken at ``now`` belongs to (``charges.budget_period``)."""
    return now.astimezone(UTC).strftime("%Y-%m-%d")


def period_key(kind: PeriodKind, day: str) -> str:
    if kind == "daily":
        return "day:" + day
    if kind == "monthly":
        return "month:" + day[:7]
    return "total"


def counters_for(
    budgets: Budgets, account_id: int, key_id: int | None, day: str
) -> list[BudgetRow]:
    """The rows a hold on ``day`` moves: every period of the key (when there is one) and of the
    account, so the spending of a period is known to a budget set later in it. Always in the
    same order (key before account; day, month, total), so concurrent holds lock them alike."""
    scopes: list[tuple[Scope, int, Caps]] = []
    if key_id is not None:
        scopes.append(("key", key_id, budgets.key))
    scopes.append(("account", account_id, budgets.account))
    return [
        BudgetRow(scope, scope_id, kind, period_key(kind, day), caps.cap(kind))
        for scope, scope_id, caps in scopes
        for kind in PERIODS
    ]


def resets_at(kind: PeriodKind, now: datetime) -> datetime | None:
    """When the period holding ``now`` ends (UTC midnight; the 1st of next month); None for a
    total budget, which never resets."""
    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "daily":
        return midnight + timedelta(days=1)
    if kind == "monthly":
        first = midnight.replace(day=1)
        return (
            first.replace(year=first.year + 1, month=1)
            if first.month == 12
            else first.replace(month=first.month + 1)
        )
    return None


def refusal_message(counter: BudgetRow, now: datetime) -> str:
    """What a 402 ``budget_exceeded`` says: which budget, its amount, when it resets."""
    whose = "API key's" if counter.scope == "key" else "account's"
    amount = nano_to_usd(counter.cap or 0)
    reset = resets_at(counter.kind, now)
    when = (
        f"it resets at {reset.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        if reset is not None
        else "it does not reset; ask your operator to raise it"
    )
    return (
        f"Budget exceeded: this request would take the {whose} {counter.kind} budget of "
        f"US${amount} past its limit; {when}."
    )


def period_keys(day: str) -> tuple[str, str, str]:
    """The counter rows a charge held on ``day`` moves, per scope: its day, month, total."""
    return period_key("daily", day), period_key("monthly", day), period_key("total", day)
