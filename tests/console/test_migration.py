"""Migration 0009 (console), up and down, on both databases."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, inspect

from minitoolai.infra.db import Database
from minitoolai.infra.migrate import alembic_config, upgrade

#: the revision 0009 sits on (the test does not care which)
BEFORE: str = importlib.import_module(
    "minitoolai.infra.migrations.versions.0009_console"
).down_revision

TABLES = {"audit_log", "price_overrides"}


def _shape(conn: Connection) -> tuple[set[str], set[str]]:
    found = inspect(conn)
    return set(found.get_table_names()), {c["name"] for c in found.get_columns("accounts")}


def _downgrade(conn: Connection) -> None:
    command.downgrade(alembic_config(conn), BEFORE)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    fresh: str = request.getfixturevalue("fresh_postgres")
    return fresh


async def test_0009_adds_and_removes_the_console_tables(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            tables, columns = await conn.run_sync(_shape)
            assert tables >= TABLES and "suspended" in columns
        async with db.engine.begin() as conn:
            await conn.run_sync(_downgrade)
        async with db.engine.connect() as conn:
            tables, columns = await conn.run_sync(_shape)
            assert not TABLES & tables and "suspended" not in columns and "balance" in columns
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            tables, columns = await conn.run_sync(_shape)
            assert tables >= TABLES and "suspended" in columns
    finally:
        await db.dispose()
