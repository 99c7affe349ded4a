"""Databases for crash tests: a fresh one per test, and a private cluster a test may restart."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import BACKENDS, POSTGRES_URL
from tests.support.pg_cluster import PrivatePostgres


async def _admin(sql: str) -> None:
    engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A database of its own on the shared server (processes of the test see only its rows)."""
    if POSTGRES_URL == "off":
        pytest.skip("PostgreSQL disabled with MINITOOLAI_TEST_POSTGRES_URL=off")
    name = "crash_" + uuid.uuid4().hex[:12]
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each backend: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster owned by this test (started, and stopped and deleted after)."""
    try:
        cluster = PrivatePostgres()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
