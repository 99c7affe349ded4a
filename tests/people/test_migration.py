"""Migration 0007 (people), up and down, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, inspect

from minitoolai.infra.db import Database
from minitoolai.infra.migrate import alembic_config, upgrade

PEOPLE_TABLES = {"users", "web_sessions", "password_resets"}


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _downgrade_to_0006(conn: Connection) -> None:
    command.downgrade(alembic_config(conn), "0006")


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    fresh: str = request.getfixturevalue("fresh_postgres")
    return fresh


async def test_0007_adds_and_removes_the_people_tables(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) >= PEOPLE_TABLES
        async with db.engine.begin() as conn:
            await conn.run_sync(_downgrade_to_0006)
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(_tables)
            assert not PEOPLE_TABLES & tables and "accounts" in tables
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) >= PEOPLE_TABLES
    finally:
        await db.dispose()
