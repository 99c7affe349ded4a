"""Shared fixtures: the same tests run against SQLite and the real PostgreSQL.

PostgreSQL is at ``MINITOOLAI_TEST_POSTGRES_URL`` (default: CI's 127.0.0.1:5432/test). When it
is configured but unreachable the suite fails; it never silently skips. Set the variable to
``off`` to run SQLite only on a machine without PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from minitoolai.infra.db import Database
from minitoolai.infra.migrate import upgrade

# No test may reach a model hub: the engines are tested on weights the tests build or packages ship.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

POSTGRES_URL = os.environ.get(
    "MINITOOLAI_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite"] + ([] if POSTGRES_URL == "off" else ["postgres"])


async def _fresh_postgres() -> Database:
    db = Database(POSTGRES_URL)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await upgrade(db.engine)
    return db


@pytest.fixture(scope="session")
async def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    path: Path = tmp_path_factory.mktemp("db") / "test.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await upgrade(db.engine)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
async def postgres_db() -> AsyncIterator[Database]:
    db = await _fresh_postgres()
    yield db
    await db.dispose()


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest) -> Database:
    """Each test runs once per backend; isolation is by fresh account names, not fresh files."""
    name = "sqlite_db" if request.param == "sqlite" else "postgres_db"
    database: Database = request.getfixturevalue(name)
    return database


def unique(name: str = "acct") -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"
