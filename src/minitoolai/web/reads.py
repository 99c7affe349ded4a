"""What the pages show about an account's money, from the ledger's own reads (no money SQL is
written outside ``ledger/store``): the dashboard's overview, and the usage page's filtered rows,
sums and charts."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from minitoolai.clock import utcnow
from minitoolai.ledger.service import Ledger
from minitoolai.ledger.store.base import UsageCursor, UsageFilter, UsageRow, UsageSum

RECENT = 10
#: with no start date, the charts cover this many days (today included): their sums stay an
#: index range scan however long the account's history is
CHART_DAYS = 92


@dataclass(frozen=True, slots=True)
class Overview:
    balance: int
    held: int
    spent_today: int
    spent_month: int
    recent: list[UsageRow]


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


async def overview(ledger: Ledger, account_id: int, now: datetime | None = None) -> Overview:
    """Balance, held, and what was spent today and this month (UTC), summed exactly in SQL."""
    day = day_start(now or utcnow())
    balance, held = await ledger.balances(account_id)
    return Overview(
        balance,
        held,
        await ledger.spent(account_id, day),
        await ledger.spent(account_id, day.replace(day=1)),
        await ledger.usage(account_id, RECENT),
    )


def chart_filter(where: UsageFilter, now: datetime | None = None) -> UsageFilter:
    """What the charts sum: ``where``, starting ``CHART_DAYS`` days back when it has no start."""
    if where.since is not None:
        return where
    return replace(where, since=day_start(now or utcnow()) - timedelta(days=CHART_DAYS - 1))


@dataclass(frozen=True, slots=True)
class UsageReport:
    rows: list[UsageRow]
    next_page: UsageCursor | None  # where the next (older) page starts, if there is one
    days: list[UsageSum]  # oldest first
    models: list[UsageSum]  # costliest first
    windowed: bool = False  # the charts cover the last CHART_DAYS days, not the whole filter


async def usage_report(
    ledger: Ledger,
    account_id: int,
    where: UsageFilter,
    page_size: int,
    before: UsageCursor | None,
) -> UsageReport:
    rows = await ledger.usage_rows(account_id, where, page_size + 1, before)
    more = len(rows) > page_size
    rows = rows[:page_size]
    charted = chart_filter(where)
    days = await ledger.usage_by_day(account_id, charted, CHART_DAYS)
    models = await ledger.usage_by_model(account_id, charted)
    next_page = UsageCursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return UsageReport(rows, next_page, list(reversed(days)), models, charted is not where)
