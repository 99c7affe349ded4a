"""The console's ledger steps on both databases: an operator's debit (``Ledger.adjust``) is one
conditional UPDATE, so it never reaches below what is held nor below zero, however many race;
``Ledger.revenue`` sums settled charges per day and model."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from minitoolai.accounts.service import AccountService
from minitoolai.clock import utcnow
from minitoolai.errors import InvalidRequest, NotFound
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger, UsageRecord
from minitoolai.ledger.store.base import RevenueRow
from tests.conftest import unique

USD = 1_000_000_000


async def _account(db: Database, credit: int) -> tuple[Ledger, int]:
    ledger = Ledger(db)
    account, _ = await AccountService(db, ledger).create(unique(), credit)
    return ledger, account.id


async def test_a_debit_never_takes_what_is_held(db: Database) -> None:
    ledger, account = await _account(db, USD)
    try:
        await ledger.hold(account, 400_000_000, kind="chat", model="gpt-4o-mini")
        with pytest.raises(InvalidRequest) as refused:
            await ledger.adjust(account, -600_000_001, "too much")
        assert refused.value.code == "insufficient_available"
        assert await ledger.balances(account) == (USD, 400_000_000)
        assert await ledger.adjust(account, -600_000_000, "the rest") == 400_000_000
        assert await ledger.entry_sums(account) == (400_000_000, 400_000_000)
        entry = (await ledger.recent_entries(account, 1))[0]
        assert (entry.kind, entry.amount, entry.held, entry.note) == (
            "adjustment",
            -600_000_000,
            0,
            "the rest",
        )
    finally:
        await ledger.close()


async def test_an_adjustment_needs_a_note_an_amount_and_an_account(db: Database) -> None:
    ledger, account = await _account(db, USD)
    try:
        for amount, note in [(-1, ""), (5, "  "), (0, "zero")]:
            with pytest.raises(InvalidRequest):
                await ledger.adjust(account, amount, note)
        with pytest.raises(NotFound):
            await ledger.adjust(10**9, -1, "nobody")
        assert await ledger.adjust(account, 7, "up") == USD + 7  # positive: a top-up
        assert (await ledger.recent_entries(account, 1))[0].kind == "topup"
    finally:
        await ledger.close()


async def test_twenty_racing_debits_stop_at_zero(db: Database) -> None:
    ledger, account = await _account(db, USD)
    try:
        results = await asyncio.gather(
            *(ledger.adjust(account, -150_000_000, f"race {i}") for i in range(20)),
            return_exceptions=True,
        )
        done = [r for r in results if isinstance(r, int)]
        refused = [r for r in results if isinstance(r, InvalidRequest)]
        assert len(done) == 6 and len(refused) == 14
        assert min(done) == 100_000_000
        assert await ledger.balances(account) == (100_000_000, 0)
        assert await ledger.entry_sums(account) == (100_000_000, 0)
    finally:
        await ledger.close()


async def test_revenue_sums_settled_charges_per_day_and_model(db: Database) -> None:
    ledger, account = await _account(db, USD)
    model = unique("rev-model")  # a model no other test charges: its rows are this test's
    try:
        for cost, prompt, completion in [(1_234, 10, 5), (4_321, 7, 3)]:
            hold = await ledger.hold(account, 10_000, kind="chat", model=model)
            await ledger.settle(
                hold.charge_id,
                cost,
                UsageRecord(prompt_tokens=prompt, completion_tokens=completion),
            )
        released = await ledger.hold(account, 10_000, kind="chat", model=model)
        await ledger.release(released.charge_id)  # not revenue
        today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        rows = [r for r in await ledger.revenue(today - timedelta(days=1)) if r.model == model]
        if len(rows) == 1:  # (two rows only for a run across midnight UTC)
            assert rows == [RevenueRow(today.date().isoformat(), model, 2, 5_555, 17, 8, 0)]
        totals = [sum(getattr(r, f) for r in rows) for f in ("count", "cost", "prompt_tokens")]
        assert totals == [2, 5_555, 17]
        assert [
            r for r in await ledger.revenue(utcnow() + timedelta(days=1)) if r.model == model
        ] == []
    finally:
        await ledger.close()
