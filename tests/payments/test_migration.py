"""Migration 0008 makes the payment tables and takes them away again, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, inspect

from minitoolai.infra.db import Database
from minitoolai.infra.migrate import alembic_config, upgrade

PAYMENT_TABLES = {"payment_orders", "payment_events"}


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _down_to_0007(conn: Connection) -> None:
    command.downgrade(alembic_config(conn), "0007")


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    fresh: str = request.getfixturevalue("fresh_postgres")
    return fresh


async def test_0008_adds_and_removes_the_payment_tables(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) >= PAYMENT_TABLES
        async with db.engine.begin() as conn:
            await conn.run_sync(_down_to_0007)
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(_tables)
            assert not PAYMENT_TABLES & tables and "users" in tables
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) >= PAYMENT_TABLES
    finally:
        await db.dispose()
