"""Shared fixtures: the same tests run against SQLite and the real PostgreSQL.

PostgreSQL is at ``MINITOOLAI_TEST_POSTGRES_URL`` (default: CI's 127.0.0.1:5432/test). When it
is configured but unreachable the suite fails; it never silently skips. Set the variable to
``off`` to run SQLite only on a machine without PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from minitoolai.infra.db import Database
from minitoolai.infra.migrate import upgrade

# No test may reach a model hub: the engines are tested on weights the tests build or packages ship.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

POSTGRES_URL = os.environ.get(
    "MINITOOLAI_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite"] + ([] if POSTGRES_URL == "off" else ["postgres"])


def _own_database(url: str, worker: str) -> str:
    """Under pytest-xdist each worker gets a database of its own (``test_gw0``...) on the same
    server, since each drops and rebuilds its schema at start."""
    parsed = make_url(url)
    name = f"{parsed.database}_{worker}"

    async def create() -> None:
        conn = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(False))
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return parsed.set(database=name).render_as_string(hide_password=False)


if POSTGRES_URL != "off" and os.environ.get("PYTEST_XDIST_WORKER"):
    POSTGRES_URL = _own_database(POSTGRES_URL, os.environ["PYTEST_XDIST_WORKER"])
    os.environ["MINITOOLAI_TEST_POSTGRES_URL"] = POSTGRES_URL  # for tests that read it


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


async def _on_server(sql: str) -> None:
    engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """A PostgreSQL database of its own, dropped after the test: processes the test starts
    (workers, servers) then see only this test's rows."""
    if POSTGRES_URL == "off":
        pytest.skip("PostgreSQL disabled with MINITOOLAI_TEST_POSTGRES_URL=off")
    name = "t_" + uuid.uuid4().hex[:12]
    asyncio.run(_on_server(f"CREATE DATABASE {name}"))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_on_server(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def unique(name: str = "acct") -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"
