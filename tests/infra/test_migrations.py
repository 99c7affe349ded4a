"""The schema's migrations, up and down, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, text

from minitoolai.infra.db import Database
from minitoolai.infra.migrate import alembic_config, upgrade


def _charge_columns(conn: Connection) -> set[str]:
    return {column["name"] for column in inspect(conn).get_columns("charges")}


def _version(conn: Connection) -> str:
    return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


def _downgrade_to_0003(conn: Connection) -> None:
    command.downgrade(alembic_config(conn), "0003")


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    fresh: str = request.getfixturevalue("fresh_postgres")
    return fresh


async def test_0004_adds_and_removes_the_charges_request_id(url: str) -> None:
    db = Database(url)
    try:
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_version) == "0004"
            assert "request_id" in await conn.run_sync(_charge_columns)
        async with db.engine.begin() as conn:
            await conn.run_sync(_downgrade_to_0003)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_version) == "0003"
            columns = await conn.run_sync(_charge_columns)
            assert "request_id" not in columns and "request_hash" in columns
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            assert "request_id" in await conn.run_sync(_charge_columns)
    finally:
        await db.dispose()
