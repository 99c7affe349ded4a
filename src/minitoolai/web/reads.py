"""What the pages show about an account's money, from the ledger's own reads.

The ledger store has no per-period sum yet, so spending today and this month are summed here
from the usage listing (the newest ``SPENDING_WINDOW`` finished charges); no SQL on money is
written outside ``ledger/store``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from minitoolai.clock import as_utc, utcnow
from minitoolai.ledger.service import Ledger
from minitoolai.ledger.store.base import UsageRow

SPENDING_WINDOW = 10_000
#: statuses whose cost the account paid and kept paying (a refunded charge was given back)
_SPENT = frozenset({"settled"})


@dataclass(frozen=True, slots=True)
class Overview:
    balance: int
    held: int
    spent_today: int
    spent_month: int
    recent: list[UsageRow]


async def overview(ledger: Ledger, account_id: int, now: datetime | None = None) -> Overview:
    now = now or utcnow()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    balance, held = await ledger.balances(account_id)
    rows = await ledger.usage(account_id, SPENDING_WINDOW)
    today = this_month = 0
    for row in rows:
        if row.status not in _SPENT:
            continue
        when = as_utc(row.created_at)
        if when >= month:
            this_month += row.cost
            if when >= day:
                today += row.cost
    return Overview(balance, held, today, this_month, rows[:10])
