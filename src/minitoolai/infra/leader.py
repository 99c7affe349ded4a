"""Which process runs the singletons (the hold sweeper, the image job reaper, the alert loop).

Every ``serve`` process (each of ``--workers N``, each replica) competes; one wins and runs
them, the others keep trying, and when the winner dies another takes over within ``retry_s``:

- **PostgreSQL**: ``pg_try_advisory_lock`` on a dedicated connection. The lock lives as long as
  that session: a process killed with ``kill -9`` drops its connection, the server ends the
  session, and the lock is free for the next try.
- **SQLite**: ``fcntl.flock`` on a lock file beside the database; the kernel releases it when
  the process dies.

Running a singleton twice for a moment (a network split on PostgreSQL) is safe: each of their
steps is a conditional update; the election only saves the work of running them everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from typing import Any

from minitoolai.infra.db import Database, asyncpg_dsn

log = logging.getLogger("minitoolai.leader")

#: the advisory lock's key (any constant of our own: b"mtaiLEAD")
LOCK_KEY = 0x6D7461694C454144
#: how often a process that does not hold the lock tries again, and the holder checks its link
RETRY_S = 2.0


class Leadership:
    def __init__(self, db: Database, *, retry_s: float = RETRY_S) -> None:
        self.db = db
        self.retry_s = retry_s
        self.is_leader = False
        self._task: asyncio.Task[None] | None = None
        self._fd: int | None = None

    async def start(self) -> None:
        path = self.db.sqlite_path
        if self.db.is_sqlite and (not path or path == ":memory:"):
            self._gained()  # one process owns an in-memory database
            return
        run = self._file_lock(f"{path}.leader") if self.db.is_sqlite else self._advisory_lock()
        self._task = asyncio.create_task(run, name="leader-election")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None
        self.is_leader = False

    def _gained(self) -> None:
        self.is_leader = True
        log.info(
            "process %d runs the singletons (hold sweeper, image job reaper, alerts)", os.getpid()
        )

    def _lost(self) -> None:
        if self.is_leader:
            log.warning("process %d no longer runs the singletons", os.getpid())
        self.is_leader = False

    async def _file_lock(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._fd = fd
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.sleep(self.retry_s)
                continue
            self._gained()
            return  # held until the process ends or ``close``

    async def _advisory_lock(self) -> None:
        import asyncpg

        dsn = asyncpg_dsn(self.db.url)
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(dsn)
                while True:
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                        break
                    await asyncio.sleep(self.retry_s)
                self._gained()
                while True:  # the lock is ours while this session lives
                    await asyncio.sleep(self.retry_s)
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), self.retry_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the link is gone, so is the lock (or soon will be)
                log.warning("leader election: %s; trying again", exc or type(exc).__name__)
            finally:
                self._lost()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(self.retry_s)
