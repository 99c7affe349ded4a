"""``Ledger.spent``: the exact sum of an account's settled costs since a time, on both
databases, from one indexed query."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from minitoolai.accounts.service import AccountService
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger
from minitoolai.money import usd_to_nano
from tests.conftest import unique
from tests.usage.charges import place

T = datetime(2026, 11, 14, 9, 30, tzinfo=UTC)


async def _account(db: Database, ledger: Ledger, credit: str = "100") -> int:
    account, _ = await AccountService(db, ledger).create(unique("spent"), usd_to_nano(credit))
    return account.id


async def test_spent_is_exact_to_the_nano_dollar_inside_the_window(db: Database) -> None:
    ledger = Ledger(db)
    try:
        mine, other = await _account(db, ledger), await _account(db, ledger)
        store = ledger.store
        await place(store, mine, T - timedelta(microseconds=1), 7_000_000_001)  # just before
        await place(store, mine, T, 1_234_567_891)  # exactly at the start: counted
        await place(store, mine, T + timedelta(hours=1), 3)
        await place(store, mine, T + timedelta(hours=2), 0, status="released")
        await place(store, mine, T + timedelta(hours=3), 5_000, status="refunded")  # given back
        await place(store, mine, T + timedelta(hours=4), 9_999, status="held")  # not yet spent
        await place(store, mine, T + timedelta(hours=5), 11, model="tts-1", kind="speech")
        await place(store, other, T + timedelta(hours=1), 123_456)  # another account's

        assert await ledger.spent(mine, T) == 1_234_567_891 + 3 + 11
        assert await ledger.spent(mine, T + timedelta(microseconds=1)) == 3 + 11
        assert await ledger.spent(mine, T - timedelta(days=1)) == 7_000_000_001 + 1_234_567_891 + 14
        assert await ledger.spent(mine, T + timedelta(days=1)) == 0
        assert await ledger.spent(other, T) == 123_456
        assert await ledger.spent(10**9, T) == 0  # no such account: nothing spent
    finally:
        await ledger.close()


async def test_the_sum_reads_the_partial_index(db: Database) -> None:
    """One range scan of ``ix_charges_account_settled`` (settled rows only), not the account's
    whole history."""
    if db.sqlite_path is not None:
        conn = sqlite3.connect(db.sqlite_path)
        try:
            plan = conn.execute(
                "EXPLAIN QUERY PLAN SELECT COALESCE(SUM(cost), 0) FROM charges"
                " WHERE account_id = ? AND status = 'settled' AND created_at >= ?",
                (1, "2026-01-01 00:00:00.000000"),
            ).fetchall()
        finally:
            conn.close()
        steps = " ".join(str(r[-1]) for r in plan)
        assert "USING INDEX ix_charges_account_settled" in steps or (
            "USING COVERING INDEX ix_charges_account_settled" in steps
        ), steps
        return
    async with db.engine.connect() as conn:
        found = (
            await conn.execute(
                text(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_charges_account_settled'"
                )
            )
        ).scalar_one()
    assert "(account_id, created_at, cost)" in found and "'settled'" in found
