"""The schema's migrations, up and down, on both databases."""

from __future__ import annotations

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
