"""The database engine: SQLite by default, PostgreSQL by URL, the same SQL for both.

SQLite runs in WAL mode with ``synchronous=NORMAL`` and a long busy timeout; writes in one
process are funnelled through one lock (``Database.write``) since SQLite serialises them anyway
and a queue in Python beats ``database is locked`` retries. The ledger's store opens its own
connections (``minitoolai.ledger.store``) with the same pragmas and the same lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def sqlite_pragmas(
    busy_timeout_ms: int = 30_000, wal_autocheckpoint: int | None = None
) -> list[str]:
    """What every SQLite connection of the project sets, whoever opens it (SQLAlchemy's pool or
    the ledger store's own connections), so they all agree on how the file is written."""
    pragmas = [
        "journal_mode=WAL",
        "synchronous=NORMAL",
        f"busy_timeout={busy_timeout_ms}",
        "foreign_keys=ON",
    ]
    if wal_autocheckpoint is not None:
        pragmas.append(f"wal_autocheckpoint={wal_autocheckpoint}")
    return pragmas


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    for pragma in sqlite_pragmas():
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+asyncpg://...``) as the DSN asyncpg itself takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Database:
    """An async engine plus the one rule that differs by dialect: how writes are serialised."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        parsed = make_url(url)
        self.url = url
        self.pool_size = pool_size
        self.dialect = parsed.get_backend_name()
        #: the file a SQLite database lives in (``:memory:`` for none)
        self.sqlite_path = (parsed.database or ":memory:") if self.dialect == "sqlite" else None
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _on_connect)
        self.write_lock = asyncio.Lock() if self.dialect == "sqlite" else None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on any exception."""
        if self.write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self.write_lock, self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
