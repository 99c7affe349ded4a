"""The usage listing, its pages, its export and its sums per day and per model, on both
databases: every figure equals what the rows add up to."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from minitoolai.accounts.service import AccountService
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger
from minitoolai.ledger.store.base import UsageCursor, UsageFilter
from minitoolai.money import usd_to_nano
from tests.conftest import unique
from tests.usage.charges import Placed, place

DAY0 = datetime(2026, 10, 30, 23, 59, 59, 999_999, tzinfo=UTC)


async def _history(ledger: Ledger, account_id: int) -> list[Placed]:
    placed = []
    specs = [
        (0, "gpt-4o-mini", "chat", "settled", 1_000_000_007),
        (0, "gpt-4o-mini", "chat", "released", 0),
        (1, "gpt-4o", "chat", "settled", 2_500_000_000),  # Nov 1, just past midnight
        (1, "tts-1", "speech", "settled", 15_000),
        (1, "gpt-4o-mini", "chat", "refunded", 42),
        (3, "text-embedding-3-small", "embeddings", "settled", 20),
        (3, "gpt-4o", "chat", "settled", 1),
        (3, "gpt-4o", "chat", "held", 77),
    ]
    for i, (days, model, kind, status, cost) in enumerate(specs):
        at = DAY0 + timedelta(days=days, microseconds=1 if days else 0) + timedelta(seconds=i)
        if days == 0:
            at = DAY0 - timedelta(seconds=i)
        placed.append(
            await place(ledger.store, account_id, at, cost, model=model, kind=kind, status=status)
        )
    return placed


def _expected(rows: list[Placed], key: str) -> dict[str, tuple[int, int]]:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        label = r.at.strftime("%Y-%m-%d") if key == "day" else r.model
        sums[label][0] += 1
        sums[label][1] += r.cost if r.status == "settled" else 0
    return {k: (v[0], v[1]) for k, v in sums.items()}


def _matches(rows: list[Placed], where: UsageFilter) -> list[Placed]:
    return [
        r
        for r in rows
        if r.status != "held"
        and (where.model is None or r.model == where.model)
        and (where.kind is None or r.kind == where.kind)
        and (where.since is None or r.at >= where.since)
        and (where.until is None or r.at < where.until)
    ]


FILTERS = [
    UsageFilter(),
    UsageFilter(model="gpt-4o"),
    UsageFilter(kind="chat"),
    UsageFilter(kind="speech"),
    UsageFilter(since=DAY0 + timedelta(microseconds=1)),
    UsageFilter(until=DAY0 + timedelta(microseconds=1)),
    UsageFilter(
        model="gpt-4o-mini", since=DAY0 - timedelta(days=1), until=DAY0 + timedelta(days=2)
    ),
    UsageFilter(model="no-such-model"),
]


async def test_sums_per_day_and_model_equal_the_rows(db: Database) -> None:
    ledger = Ledger(db)
    try:
        account, _ = await AccountService(db, ledger).create(unique("usage"), usd_to_nano("50"))
        placed = await _history(ledger, account.id)
        other, _ = await AccountService(db, ledger).create(unique("other"), usd_to_nano("1"))
        await place(ledger.store, other.id, DAY0, 5)  # another account's: never in these sums
        for where in FILTERS:
            rows = _matches(placed, where)
            days = await ledger.usage_by_day(account.id, where)
            assert {d.label: (d.requests, d.cost) for d in days} == _expected(rows, "day"), where
            assert [d.label for d in days] == sorted({d.label for d in days}, reverse=True)
            models = await ledger.usage_by_model(account.id, where)
            assert {m.label: (m.requests, m.cost) for m in models} == _expected(rows, "model")
            assert [m.cost for m in models] == sorted((m.cost for m in models), reverse=True)
            listed = await ledger.usage_rows(account.id, where, 100)
            assert {r.id for r in listed} == {r.id for r in rows}, where
            assert {r.id: r.cost for r in listed} == {r.id: r.cost for r in rows}
        # the UTC day: 23:59:59.999999 is still Oct 30; a microsecond past a midnight is the next
        days = {d.label for d in await ledger.usage_by_day(account.id, UsageFilter())}
        assert days == {"2026-10-30", "2026-11-01", "2026-11-03"}
        assert len(await ledger.usage_by_day(account.id, UsageFilter(), limit=2)) == 2
    finally:
        await ledger.close()


async def test_pages_and_the_export_cover_every_row_once_newest_first(db: Database) -> None:
    ledger = Ledger(db)
    try:
        account, _ = await AccountService(db, ledger).create(unique("pages"), usd_to_nano("50"))
        placed = []
        for i in range(23):  # some share a timestamp: the id breaks the tie
            at = DAY0 + timedelta(minutes=i // 3)
            placed.append(await place(ledger.store, account.id, at, 1000 + i))
        seen: list[str] = []
        before = None
        while True:
            page = await ledger.usage_rows(account.id, UsageFilter(), 5, before)
            seen += [r.id for r in page]
            if len(page) < 5:
                break
            before = UsageCursor(page[-1].created_at, page[-1].id)
        newest_first = sorted(placed, key=lambda p: (p.at, p.id), reverse=True)
        assert seen == [p.id for p in newest_first]
        exported = [r.id async for r in ledger.usage_export(account.id, UsageFilter(), batch=4)]
        assert exported == seen
        only = UsageFilter(since=DAY0 + timedelta(minutes=5))
        exported = [r.id async for r in ledger.usage_export(account.id, only, batch=2)]
        assert exported == [p.id for p in newest_first if p.at >= only.since]  # type: ignore[operator]
    finally:
        await ledger.close()
