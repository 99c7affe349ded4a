"""The schema's migrations, up and down, on both databases."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from minitoolai.infra.db import Database
from minitoolai.infra.migrate import alembic_config, upgrade


def _charge_columns(conn: Connection) -> set[str]:
    return {column["name"] for column in inspect(conn).get_columns("charges")}


def _version(conn: Connection) -> str:
    return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _downgrade_to_0003(conn: Connection) -> None:
    command.downgrade(alembic_config(conn), "0003")


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    fresh: str = request.getfixturevalue("fresh_postgres")
    return fresh


async def test_the_migrations_after_0003_go_down_and_up_again(url: str) -> None:
    """0004's request id and every later table go away on a downgrade to 0003, and come back."""
    db = Database(url)
    try:
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_version) == _head()
            assert "request_id" in await conn.run_sync(_charge_columns)
            at_head = await conn.run_sync(_tables)
        assert {"responses", "redeem_codes"} <= at_head
        async with db.engine.begin() as conn:
            await conn.run_sync(_downgrade_to_0003)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_version) == "0003"
            columns = await conn.run_sync(_charge_columns)
            assert "request_id" not in columns and "request_hash" in columns
            assert not {"responses", "redeem_codes", "code_batches"} & await conn.run_sync(_tables)
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            assert "request_id" in await conn.run_sync(_charge_columns)
            assert await conn.run_sync(_tables) == at_head
    finally:
        await db.dispose()


#: each later migration, the one before it, and the tables it makes
NEW_TABLES = [
    ("0005", "0004", {"responses"}),
    ("0006", "0005", {"code_batches", "redeem_codes"}),
    ("0007", "0006", {"users", "web_sessions", "password_resets"}),
    ("0008", "0007", {"payment_orders", "payment_events"}),
    ("0010", "0009", {"account_alerts"}),
    ("0012", "0011", {"budget_spend"}),
]


def _charge_indexes(conn: Connection) -> set[str]:
    return {index["name"] for index in inspect(conn).get_indexes("charges") if index["name"]}


async def test_0013_keeps_the_sweepers_index_to_the_live_holds(url: str) -> None:
    """The (status, expires_at) index of every charge ever made gives way to one on the live
    holds' deadlines, and comes back on a downgrade."""
    db = Database(url)
    try:
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            indexes = await conn.run_sync(_charge_indexes)
        assert "ix_charges_held_expires" in indexes
        assert "ix_charges_status_expires" not in indexes
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), "0012"))
        async with db.engine.connect() as conn:
            indexes = await conn.run_sync(_charge_indexes)
        assert "ix_charges_status_expires" in indexes
        assert "ix_charges_held_expires" not in indexes
        await upgrade(db.engine)
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    ("revision", "before", "tables"), NEW_TABLES, ids=[r for r, _, _ in NEW_TABLES]
)
async def test_a_migration_makes_its_tables_and_takes_them_away(
    url: str, revision: str, before: str, tables: set[str]
) -> None:
    db = Database(url)
    try:
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) >= tables
        async with db.engine.begin() as conn:
            await conn.run_sync(lambda c: command.downgrade(alembic_config(c), before))
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_version) == before
            left = await conn.run_sync(_tables)
            assert not tables & left and "accounts" in left
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) >= tables
    finally:
        await db.dispose()


def _at_0015_with_a_redeemed_code(path: Path, entry_of_code: int) -> None:
    """A SQLite database at 0015 holding a charge with its entry, and a redeemed code whose
    ``entry_id`` names the ledger entry ``entry_of_code`` (7 is there; another is not)."""

    async def to_0015() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            async with db.engine.begin() as conn:
                await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0015"))
        finally:
            await db.dispose()

    asyncio.run(to_0015())
    conn = sqlite3.connect(path)
    day = "2026-01-01 00:00:00.000000"
    conn.executescript(
        "INSERT INTO accounts (id, name, balance, held, created_at)"
        f" VALUES (1, 'a', 5, 0, '{day}');"
        "INSERT INTO charges (id, account_id, kind, model, status, held_amount,"
        f" usage_estimated, created_at, expires_at) VALUES ('c1', 1, 'chat', 'm', 'held', 0, 0,"
        f" '{day}', '{day}');"
        "INSERT INTO ledger_entries (id, account_id, charge_id, kind, amount, held, created_at)"
        f" VALUES (7, 1, NULL, 'redeem', 5, 0, '{day}'), (8, 1, 'c1', 'hold', 0, 0, '{day}');"
        "INSERT INTO code_batches (id, amount, count, created_by, created_at)"
        f" VALUES ('b', 5, 1, 'op', '{day}');"
        "INSERT INTO redeem_codes (id, batch_id, code_hash, last4, redeemed_by, redeemed_at,"
        f" entry_id) VALUES (1, 'b', 'h', '1234', 1, '{day}', {entry_of_code});"
    )
    conn.commit()
    conn.close()


def test_0016_rebuilds_sqlite_entries_and_keeps_what_refers_to_them(tmp_path: Path) -> None:
    """SQLite's ledger entries are copied into a table whose (charge, kind) rule lets a lease
    repeat its grow/draw/return entries: every entry kept, a redeemed code still naming its
    entry (the rebuild drops the table others refer to: run with foreign keys off, checked
    before the commit), a second hold of one charge still refused, foreign keys on after."""
    path = tmp_path / "m.db"
    _at_0015_with_a_redeemed_code(path, entry_of_code=7)

    async def upgraded() -> list[int]:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(db.engine)
            async with db.engine.connect() as conn:
                return [int((await conn.execute(text("PRAGMA foreign_keys"))).scalar_one())]
        finally:
            await db.dispose()

    assert asyncio.run(upgraded()) == [1]
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys=ON")
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0016",)]
    assert conn.execute("SELECT id, kind FROM ledger_entries ORDER BY id").fetchall() == [
        (7, "redeem"),
        (8, "hold"),
    ]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    entry = "INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, created_at)"
    conn.execute(entry + " VALUES (1, 'c1', 'grow', 0, 0, '2026-01-02')")
    conn.execute(entry + " VALUES (1, 'c1', 'grow', 0, 0, '2026-01-02')")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        conn.execute(entry + " VALUES (1, 'c1', 'hold', 0, 0, '2026-01-02')")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        conn.execute("UPDATE redeem_codes SET entry_id = 999")
    conn.close()


def test_an_upgrade_that_would_break_a_reference_changes_nothing(tmp_path: Path) -> None:
    """A SQLite database whose code names an entry that is not there (written with foreign
    keys off): the upgrade, run with them off, finds it before committing and leaves nothing
    of itself (one transaction, its DDL too); once mended, the same upgrade goes through."""
    path = tmp_path / "m.db"
    _at_0015_with_a_redeemed_code(path, entry_of_code=999)

    async def attempt() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(db.engine)
        finally:
            await db.dispose()

    with pytest.raises(RuntimeError, match="foreign keys"):
        asyncio.run(attempt())
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0015",)]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "ledger_entries" in tables and not any(t.startswith("_alembic") for t in tables)
    conn.execute("UPDATE redeem_codes SET entry_id = 7")  # mended: the same upgrade goes through
    conn.commit()
    conn.close()
    asyncio.run(attempt())
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0016",)]
    conn.close()
