from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import POSTGRES_URL
from tests.support.gateway import Gateway, running_gateway


@pytest.fixture
def image_gateway(tmp_path: Path) -> Iterator[Gateway]:
    """SQLite, an in-process worker, the diagnostic engine."""
    with running_gateway(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", {}, [], image_workers=1
    ) as gw:
        yield gw


async def _admin(sql: str) -> None:
    engine = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """A database of its own, so workers in other processes see only this test's jobs."""
    if POSTGRES_URL == "off":
        pytest.skip("PostgreSQL disabled with MINITOOLAI_TEST_POSTGRES_URL=off")
    name = "t_" + uuid.uuid4().hex[:12]
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
