"""A key and account without budgets pay nothing for them: the hold and the settle are the
statements they were before budgets existed (counted on SQLite's connection, and as round
trips on PostgreSQL's pool)."""

from __future__ import annotations

from typing import Any

from minitoolai.accounts.service import AccountService
from minitoolai.infra.db import Database
from minitoolai.ledger.budgets import Budgets, Caps
from minitoolai.ledger.service import Ledger
from minitoolai.ledger.store.postgres import PostgresLedgerStore
from minitoolai.ledger.store.sqlite import SqliteLedgerStore
from tests.conftest import unique


class _CountingPool:
    """The asyncpg pool, recording each call that is a round trip (or starts a transaction)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.pool, name)


async def _statements(
    ledger: Ledger, account_id: int, key_id: int, budgets: Budgets | None
) -> list[str]:
    store = ledger.store
    seen: list[str] = []
    if isinstance(store, SqliteLedgerStore):
        store._on_loop().set_trace_callback(seen.append)
    else:
        assert isinstance(store, PostgresLedgerStore)
        await store._acquire_pool()
        counting = _CountingPool(store._pool)
        store._pool = counting
        store._lane.take = lambda: None  # type: ignore[method-assign]  # all on the pool, counted
    try:
        hold = await ledger.hold(
            account_id, 1000, kind="chat", model="m", api_key_id=key_id, budgets=budgets
        )
        await ledger.settle(hold.charge_id, 600)
    finally:
        if isinstance(store, SqliteLedgerStore):
            store._on_loop().set_trace_callback(None)
        else:
            store._pool = counting.pool
            del store._lane.take  # the class's again
            seen = counting.calls
    return seen


async def test_no_budget_no_extra_statement(db: Database) -> None:
    ledger = Ledger(db)
    try:
        svc = AccountService(db, ledger)
        account, _ = await svc.create(unique(), 10**9)
        (key,) = await svc.list_keys(account.name)
        await ledger.hold(account.id, 1, kind="chat", model="m")  # connections opened
        plain = await _statements(ledger, account.id, key.id, None)
        budgeted = await _statements(
            ledger, account.id, key.id, Budgets(key=Caps(daily=10**6), account=Caps())
        )
    finally:
        await ledger.close()
    if isinstance(ledger.store, SqliteLedgerStore):
        assert not any("budget_spend" in s for s in plain)
        # hold: BEGIN, UPDATE accounts, INSERT charges, INSERT entry, COMMIT; settle: the same
        assert len(plain) == 10, plain
        assert sum("budget_spend" in s for s in budgeted) == 6 + 1  # 6 counters held, 1 settle
    else:
        # one statement each, no transaction: the hold alone (nothing to batch it with), the
        # settle as its group-commit batch's one statement
        assert plain == ["fetchrow", "fetch"]
        assert budgeted == ["acquire", "fetch"]  # the budgeted hold's transaction
