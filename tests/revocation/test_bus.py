"""The change bus itself: what one process announces another hears, on both databases; a lost
LISTEN connection comes back by itself and drops everything (what was missed is unknown)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from minitoolai.accounts.invalidation import CHANNEL, Change, ChangeBus, key_changed
from minitoolai.infra.db import Database, asyncpg_dsn


async def _heard(received: list[Change], count: int, within: float = 2.0) -> float:
    started = time.monotonic()
    while len(received) < count:
        assert time.monotonic() - started < within, received
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def _listening(db: Database) -> tuple[ChangeBus, list[Change]]:
    bus = ChangeBus(db)
    received: list[Change] = []
    bus.subscribe(received.append)
    await bus.start()
    deadline = time.monotonic() + 5
    while not bus.connected:
        assert time.monotonic() < deadline, "the bus never connected"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    received.clear()  # PostgreSQL's first connect drops everything; not what is tested here
    return bus, received


def test_payloads_round_trip() -> None:
    for change in (Change(key_hash="ab12"), Change(key_id=7), Change(account_id=3), Change()):
        assert Change.parse(change.payload()) == change
    assert Change.parse("k:not-a-number").everything  # unknown: the safe side
    assert Change.parse("garbage").everything


async def test_another_process_hears_a_change(db: Database) -> None:
    listener, received = await _listening(db)
    try:
        await key_changed(db, key_hash="feed")  # a publisher with no bus of its own (the CLI)
        took = await _heard(received, 1)
        # SQLite: the stamp file says only that something changed, so everything is dropped
        assert received[-1] == (Change() if db.is_sqlite else Change(key_hash="feed"))
        await ChangeBus(db).account_changed(42)
        await _heard(received, 2)
        assert received[-1] == (Change() if db.is_sqlite else Change(account_id=42))
        print(f"\nheard in {took * 1e3:.0f} ms on {db.dialect}")
    finally:
        await listener.close()


async def test_a_lost_listen_connection_reconnects_and_drops_everything(
    postgres_db: Database,
) -> None:
    listener, received = await _listening(postgres_db)
    try:
        conn = await asyncpg.connect(asyncpg_dsn(postgres_db.url))
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE query LIKE $1 AND pid <> pg_backend_pid()",
                f"LISTEN %{CHANNEL}%",
            )
        finally:
            await conn.close()
        assert killed >= 1
        await _heard(received, 1, within=5)  # back, and everything forgotten
        assert received[-1].everything
        await asyncio.sleep(0.1)
        await key_changed(postgres_db, key_id=5)
        await _heard(received, 2)
        assert received[-1] == Change(key_id=5)  # and listening again
    finally:
        await listener.close()


@pytest.mark.parametrize("kind", ["key", "account"])
async def test_a_publish_with_the_channel_down_still_reaches_this_process(kind: str) -> None:
    db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # nothing listens there
    bus = ChangeBus(db)
    received: list[Change] = []
    bus.subscribe(received.append)
    if kind == "key":
        await bus.key_changed(key_hash="abc")
    else:
        await bus.account_changed(1)
    assert len(received) == 1  # logged, not raised: the change itself had committed
    await db.dispose()
