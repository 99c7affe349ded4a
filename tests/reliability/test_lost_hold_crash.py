"""PostgreSQL crashes after a chat hold was answered but before anything flushed it.

A plain hold its process settles commits without waiting for the WAL's flush
(``Ledger.hold(durable=False)``); a durable one waits. The private cluster's WAL writer naps
10 s, so a crash (``pg_ctl stop -m immediate``) right after loses the first and keeps the
second. The lost hold's settle, retried once the database is back, re-creates its charge and
charges it: the answer is paid for, exactly once, and the ledger adds up.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from minitoolai.accounts.service import AccountService
from minitoolai.infra.db import Database
from minitoolai.infra.migrate import upgrade
from minitoolai.ledger.service import Hold, Ledger
from tests.support.pg_cluster import PrivatePostgres

#: a crash a moment after the hold may still find it written (the WAL writer's nap ended in
#: between, or another commit flushed it): tried again that many times
TRIES = 3


async def _status(cluster: PrivatePostgres, charge_id: str) -> str | None:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres")
    try:
        found: str | None = await conn.fetchval(
            "SELECT status FROM charges WHERE id = $1", charge_id
        )
        return found
    finally:
        await conn.close()


async def _settled_after_the_crash(ledger: Ledger, charge_id: str, cost: int) -> None:
    """Settle once the database answers again (the first tries meet dropped connections)."""
    await ledger.settle(charge_id, cost)
    for _ in range(100):
        if charge_id not in ledger._live:  # landed (a deferred one stays until it does)
            return
        await asyncio.sleep(0.1)
        await ledger.catch_up()
    raise AssertionError(f"the settle of {charge_id} never landed")


@pytest.mark.slow
async def test_a_chat_hold_lost_in_a_postgres_crash_is_recreated_and_charged(
    private_postgres: PrivatePostgres,
) -> None:
    db = Database(private_postgres.url)
    await upgrade(db.engine)
    ledger = Ledger(db, leases=False)  # a request held in a row (a lease is a durable commit)
    try:
        account, _ = await AccountService(db, ledger).create("crash", 10_000)
        for _attempt in range(TRIES):
            kept = await ledger.hold(account.id, 100, kind="image", model="m")
            lost: Hold = await ledger.hold(account.id, 300, kind="chat", model="m", durable=False)
            private_postgres.crash()
            assert await _status(private_postgres, kept.charge_id) == "held"  # it was flushed
            if await _status(private_postgres, lost.charge_id) is None:
                break
            # written before the crash after all: settle both and try again
            await _settled_after_the_crash(ledger, lost.charge_id, 0)
            await _settled_after_the_crash(ledger, kept.charge_id, 0)
        else:
            pytest.fail(f"no crash lost the unflushed hold in {TRIES} tries")

        await _settled_after_the_crash(ledger, lost.charge_id, 250)
        await _settled_after_the_crash(ledger, kept.charge_id, 100)
        assert await _status(private_postgres, lost.charge_id) == "settled"
        balance, held = await ledger.balances(account.id)
        assert held == 0
        assert (balance, held) == await ledger.entry_sums(account.id)
        assert balance == 10_000 - 250 - 100
    finally:
        await ledger.close()
        await db.dispose()
