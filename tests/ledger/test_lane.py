"""The PostgreSQL ledger's own connection for the hot path (``ledger/store/lane.py``): steps
take it when it is free and the pool when it is not, and a lane that broke (killed by the
server, or a step cancelled on it) is replaced; the money stays exact throughout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from minitoolai.accounts.service import AccountService
from minitoolai.infra.db import Database, asyncpg_dsn
from minitoolai.ledger.service import Ledger, UsageRecord
from minitoolai.ledger.store.postgres import PostgresLedgerStore
from tests.conftest import POSTGRES_URL, unique

USAGE = UsageRecord(prompt_tokens=3, completion_tokens=4, served_by="test")


@pytest.fixture
async def ledger(postgres_db: Database) -> AsyncIterator[Ledger]:
    ledger = Ledger(postgres_db)
    yield ledger
    await ledger.close()


def _store(ledger: Ledger) -> PostgresLedgerStore:
    assert isinstance(ledger.store, PostgresLedgerStore)
    return ledger.store


async def _account(ledger: Ledger, db: Database, credit: int) -> int:
    account, _ = await AccountService(db, ledger).create(unique("lane"), credit)
    return account.id


async def _charge(ledger: Ledger, account: int, hold: int = 100, cost: int = 30) -> None:
    h = await ledger.hold(account, hold, kind="chat", model="m")
    await ledger.settle(h.charge_id, cost, USAGE)


async def _lane_open(store: PostgresLedgerStore) -> Any:
    for _ in range(200):
        conn = store._lane._conn
        if conn is not None:
            return conn
        store._lane.take()  # starts the opening, if it is not under way
        await asyncio.sleep(0.01)
    raise AssertionError("the lane did not open")


class _Counting:
    """The pool, counting the statements it is asked to run."""

    def __init__(self, pool: Any) -> None:
        self.pool, self.calls = pool, 0

    def __getattr__(self, name: str) -> Any:
        if name in ("fetch", "fetchrow"):
            self.calls += 1
        return getattr(self.pool, name)


async def test_steps_one_at_a_time_take_the_lane_not_the_pool(
    ledger: Ledger, postgres_db: Database
) -> None:
    store = _store(ledger)
    account = await _account(ledger, postgres_db, 10_000)
    await _charge(ledger, account)
    await _lane_open(store)
    counting = _Counting(await store._acquire_pool())
    store._pool = counting
    for _ in range(20):
        await _charge(ledger, account)
    assert counting.calls == 0  # every hold and settle went on the lane
    many = await asyncio.gather(*(_charge(ledger, account) for _ in range(40)))
    assert len(many) == 40 and counting.calls > 0  # together: the lane was busy, the pool served
    store._pool = counting.pool
    assert await ledger.balances(account) == (10_000 - 61 * 30, 0)
    assert await ledger.balances(account) == await ledger.entry_sums(account)


async def test_a_lane_the_server_killed_is_replaced(ledger: Ledger, postgres_db: Database) -> None:
    store = _store(ledger)
    account = await _account(ledger, postgres_db, 10_000)
    await _charge(ledger, account)
    old = await _lane_open(store)
    server = await asyncpg.connect(asyncpg_dsn(POSTGRES_URL))
    try:
        await server.execute("SELECT pg_terminate_backend($1)", old.get_server_pid())
    finally:
        await server.close()
    done = failed = 0
    for _ in range(300):  # a step may fail on the dead connection, as on a pool's; then none
        try:
            await _charge(ledger, account)
            done += 1
        except Exception:
            failed += 1
            assert done == 0  # only before the lane noticed
        if done >= 5 and store._lane._conn not in (None, old):
            break
        await asyncio.sleep(0.01)
    assert failed <= 1 and done >= 5
    assert store._lane._conn not in (None, old)  # a new connection
    _, held = await ledger.balances(account) or (0, 0)
    balance, _ = await ledger.entry_sums(account)
    assert await ledger.balances(account) == await ledger.entry_sums(account)
    assert held in (0, 100)  # a hold whose settle failed on the dead lane waits for the sweeper
    assert balance == 10_000 - 30 * (1 + done)


async def test_a_step_cancelled_on_the_lane_drops_it(ledger: Ledger, postgres_db: Database) -> None:
    store = _store(ledger)
    account = await _account(ledger, postgres_db, 10_000)
    await _charge(ledger, account)
    old = await _lane_open(store)
    step = asyncio.ensure_future(ledger.hold(account, 100, kind="chat", model="m"))
    await asyncio.sleep(0)  # the statement is on its way
    step.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step
    assert store._lane._conn is not old and old.is_closed()
    for _ in range(5):
        await _charge(ledger, account)
    balance, held = await ledger.entry_sums(account)
    assert await ledger.balances(account) == (balance, held)
    assert held in (0, 100)  # the cancelled hold landed or not; the sweeper releases it
