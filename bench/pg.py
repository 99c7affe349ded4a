"""The bench's own PostgreSQL database: made if missing, wiped before each use.

Only a database whose name starts with ``bench`` is ever wiped, so a mistyped URL cannot empty
the test suite's database (``test``) or anyone else's.
"""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench"


def _connect_args(url: str, database: str | None = None) -> dict[str, object]:
    u = make_url(url)
    return {
        "host": u.host or "127.0.0.1",
        "port": u.port or 5432,
        "user": u.username or "postgres",
        "password": u.password,
        "database": database or u.database,
        "timeout": 5,
    }


def _owned(url: str) -> str:
    name = make_url(url).database or ""
    if not name.startswith("bench"):
        raise ValueError(f"refusing to wipe database {name!r}: its name must start with 'bench'")
    return name


async def _reset(url: str) -> None:
    name = _owned(url)
    admin = await asyncpg.connect(**_connect_args(url, "postgres"))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(**_connect_args(url))
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


def reset(url: str) -> None:
    """Create the bench database if missing, then drop and re-create its ``public`` schema."""
    asyncio.run(_reset(url))


async def _ping(url: str) -> None:
    conn = await asyncpg.connect(**_connect_args(url, "postgres"))
    await conn.close()


def unreachable(url: str) -> str | None:
    """Why PostgreSQL cannot be used, or None when it can."""
    try:
        _owned(url)
        asyncio.run(_ping(url))
    except (OSError, asyncpg.PostgresError, TimeoutError, ValueError) as exc:
        return f"PostgreSQL at {make_url(url).render_as_string(hide_password=True)}: {exc}"
    return None
