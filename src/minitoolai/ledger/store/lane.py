"""A PostgreSQL connection of the ledger's own, kept out of its pool, for the hot path's steps.

Every charged request runs two one-statement steps (its hold, its settle's batch). Through
asyncpg's pool each pays an acquire and a release, and asyncpg shields the release in a task of
its own: about a third of the ledger's CPU per request at low load. The lane is one connection
that a step takes when it is free (no acquire, no release, its statements prepared once), and a
step that finds it busy uses the pool: the lane never makes anyone wait.

It is opened in the background on first need (that step uses the pool), and dropped when a step
on it fails in a way that may have left it unusable (a lost connection, a cancelled statement,
anything but a plain SQL error); the next step opens another, at most once a second while the
database is away.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

#: the ledger's sessions: its statements are index lookups whatever their parameters, so each is
#: planned once per connection (a custom plan, PostgreSQL's choice for some of the batch
#: statements, costs more to make than to run: 0.65 vs 0.18 ms for a leased settle), and never
#: as a scan of a table (a plan made while a new database's tables were nearly empty would
#: scan them, every statement slower as they grow, until an ANALYZE replans it)
SESSION = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}
log = logging.getLogger("minitoolai.ledger")

#: the least time between two attempts to open the lane while the database is away
RETRY_S = 1.0


class Lane:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = False
        self._opening: asyncio.Task[None] | None = None
        self._next_try = 0.0
        self._closed = False

    def take(self) -> Any | None:
        """The lane's connection, now taken (give it back with :meth:`give_back`), or None:
        busy, not open yet (opening starts), or of another event loop."""
        conn = self._conn
        loop = asyncio.get_running_loop()
        if conn is None:
            self._open_soon(loop)
            return None
        if self._busy or loop is not self._loop:
            return None
        if conn.is_closed():
            self._conn = None
            self._open_soon(loop)
            return None
        self._busy = True
        return conn

    def give_back(self, conn: Any, error: BaseException | None) -> None:
        """Done with it; ``error``: what the step raised. A plain SQL error (a constraint, a
        deadlock) leaves the connection as good as before; anything else drops it."""
        import asyncpg

        self._busy = False
        usable = error is None or (
            isinstance(error, asyncpg.PostgresError)
            and not isinstance(error, asyncpg.PostgresConnectionError)
        )
        if usable and not conn.is_closed() and not conn.is_in_transaction():
            return
        if conn is self._conn:
            self._conn = None
        if not conn.is_closed():
            conn.terminate()

    def _open_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._closed or self._opening is not None or loop.time() < self._next_try:
            return
        self._next_try = loop.time() + RETRY_S
        self._opening = loop.create_task(self._open(loop), name="ledger-lane")

    async def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        import asyncpg

        try:
            conn = await asyncpg.connect(self._dsn, server_settings=SESSION)
        except Exception as exc:  # the pool serves meanwhile; the next step tries again
            log.warning("the ledger's own connection could not open (%s)", type(exc).__name__)
            return
        finally:
            self._opening = None
        if self._closed:
            await conn.close()
            return
        self._conn, self._loop = conn, loop

    async def close(self) -> None:
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            if self._busy or self._loop is not asyncio.get_running_loop():
                conn.terminate()
            else:
                await conn.close()
