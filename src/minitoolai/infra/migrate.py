"""Apply Alembic migrations on start, safely when many replicas start at once.

On PostgreSQL an advisory lock serialises concurrent upgrades. On SQLite a lock file beside the
database does (``<db>.migrate-lock``, ``flock``), and the upgrade is one transaction, DDL
included, begun explicitly (the driver would begin one only before the first DML, leaving a
failed upgrade's first tables behind). SQLite's upgrades run with its foreign keys off, as its
manual asks for a table rebuilt (Alembic's batch mode: copied, dropped, renamed; the drop of a
table others refer to would fail midway), and every reference is checked before the commit.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x4D544149  # "MTAI"
#: the newest migration: a database that says it is there needs no Alembic (its imports are
#: ~10 MB and ~130 ms of every start); tests/infra checks it is the scripts' head
HEAD = "0016"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    else:  # begun here, so its DDL is in it too (the driver begins only before DML)
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    from alembic import command

    command.upgrade(alembic_config(connection), "head")
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:  # rolled back whole: the database stays as it was
            raise RuntimeError(f"the upgrade would break foreign keys: {broken[:5]}")


async def _at_head(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            found = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    except DBAPIError:  # no such table: a new database
        return False
    return [row[0] for row in found] == [HEAD]


async def upgrade(engine: AsyncEngine) -> None:
    if await _at_head(engine):
        return
    lock_path = _sqlite_lock_path(engine)
    fd = None if lock_path is None else await asyncio.to_thread(_lock, lock_path)
    try:
        async with engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:  # outside any transaction (inside one the pragma does nothing)
                await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
                await conn.commit()
            try:
                async with conn.begin():
                    await conn.run_sync(_upgrade)
            finally:
                if sqlite:
                    await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                    await conn.commit()
    finally:
        if fd is not None:
            os.close(fd)  # closing the file releases the lock


def _sqlite_lock_path(engine: AsyncEngine) -> Path | None:
    """The lock file of a SQLite database file; None for PostgreSQL or an in-memory database."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database + ".migrate-lock")


def _lock(path: Path) -> int:
    """Wait for the migration lock (other processes may be upgrading) and hold it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd
