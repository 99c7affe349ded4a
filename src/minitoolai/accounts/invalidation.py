"""Telling every process that a key or an account changed, so their key caches forget it.

``Authenticator`` caches a key's principal for ``key_cache_ttl_s``; that TTL is only the
fallback. Whatever revokes a key, changes what a key or an account may do, or suspends an
account calls ``key_changed`` or ``account_changed`` here once its transaction committed (the
service methods do: ``AccountService.revoke_key``, ``AccountAdmin.set_suspended``), and every
process drops the entries at once:

- **PostgreSQL**: ``NOTIFY minitoolai_key_changes`` with the key's hash or the account's id;
  each ``serve`` process ``LISTEN``s on a dedicated asyncpg connection, reconnecting. The
  database that holds the keys is the one that tells: nothing else to run, and a notification
  is only ever sent for a committed change. (Redis pub/sub would add a second component that
  can be down while the keys are not; it is not used for this.)
- **SQLite** (processes sharing one file): a stamp file beside the database
  (``<db>.key-changes``) is replaced on every change; each process looks at it (one ``stat``)
  every ``SQLITE_CHECK_S`` and drops its whole cache when it moved.

When the channel is down (the LISTEN connection lost, until it is back) nothing is lost but
time: entries still expire after the TTL, and on reconnecting the whole cache is dropped, since
notifications sent meanwhile were missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from minitoolai.infra.db import Database, asyncpg_dsn

log = logging.getLogger("minitoolai.accounts")

CHANNEL = "minitoolai_key_changes"
#: how often a process on SQLite looks at the stamp file
SQLITE_CHECK_S = 0.25
#: how long a lost LISTEN connection waits before it tries again
RECONNECT_S = 1.0


@dataclass(frozen=True, slots=True)
class Change:
    """What changed: one key (by hash or id), one account, or anything (``everything``)."""

    key_hash: str | None = None
    key_id: int | None = None
    account_id: int | None = None

    @property
    def everything(self) -> bool:
        return self.key_hash is None and self.key_id is None and self.account_id is None

    def payload(self) -> str:
        if self.key_hash is not None:
            return f"h:{self.key_hash}"
        if self.key_id is not None:
            return f"k:{self.key_id}"
        if self.account_id is not None:
            return f"a:{self.account_id}"
        return "*"

    @classmethod
    def parse(cls, payload: str) -> Change:
        kind, _, value = payload.partition(":")
        try:
            if kind == "h" and value:
                return cls(key_hash=value)
            if kind == "k":
                return cls(key_id=int(value))
            if kind == "a":
                return cls(account_id=int(value))
        except ValueError:
            pass
        return cls()  # unknown: forget everything, the safe side


Listener = Callable[[Change], None]


class ChangeBus:
    """One per process: ``key_changed``/``account_changed`` publish, ``start`` listens."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        #: True while changes made elsewhere reach this process at once (else: the TTL)
        self.connected = False
        path = db.sqlite_path
        self._stamp = Path(f"{path}.key-changes") if path and path != ":memory:" else None

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def key_changed(self, *, key_hash: str | None = None, key_id: int | None = None) -> None:
        """A key was revoked or its rules changed (call it after the change committed)."""
        await self.publish(Change(key_hash=key_hash, key_id=key_id))

    async def account_changed(self, account_id: int) -> None:
        """An account was suspended or restored, or its rules changed (after the commit)."""
        await self.publish(Change(account_id=account_id))

    async def publish(self, change: Change) -> None:
        self._deliver(change)  # this process at once, whatever the channel does
        try:
            if self.db.is_sqlite:
                if self._stamp is not None:
                    await asyncio.to_thread(_touch, self._stamp)
            else:
                async with self.db.write() as conn:
                    await conn.execute(
                        text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": CHANNEL, "payload": change.payload()},
                    )
        except Exception as exc:  # the change itself is committed; others see it after the TTL
            log.warning("could not announce a key change (%s); other processes wait the TTL", exc)

    def _deliver(self, change: Change) -> None:
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:  # one broken listener must not keep the others stale
                log.exception("a key-change listener failed")

    async def start(self) -> None:
        """Listen for changes other processes make (``serve`` does; the CLI only publishes)."""
        if self._task is not None:
            return
        if self.db.is_sqlite:
            if self._stamp is None:  # an in-memory database: one process, nothing to hear
                self.connected = True
                return
            self._task = asyncio.create_task(self._watch_file(self._stamp), name="key-changes")
        else:
            self._task = asyncio.create_task(self._listen_postgres(), name="key-changes")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.connected = False

    async def _watch_file(self, stamp: Path) -> None:
        seen = _stamp_of(stamp)
        self.connected = True
        while True:
            await asyncio.sleep(SQLITE_CHECK_S)
            now = _stamp_of(stamp)
            if now != seen:
                seen = now
                self._deliver(Change())

    async def _listen_postgres(self) -> None:
        import asyncpg

        dsn = asyncpg_dsn(self.db.url)
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda *_, lost=lost: lost.set())
                await conn.add_listener(
                    CHANNEL, lambda *args: self._deliver(Change.parse(str(args[-1])))
                )
                self.connected = True
                self._deliver(Change())  # what was sent while we were not listening is lost
                await lost.wait()
                log.warning("the key-change LISTEN connection was lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: the TTL covers the gap
                log.warning("cannot LISTEN for key changes (%s); retrying", exc)
            finally:
                self.connected = False
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(RECONNECT_S)


def _touch(stamp: Path) -> None:
    """Replace the stamp file: a new inode every time, seen by every process that stats it."""
    stamp.parent.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_name(f"{stamp.name}.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_bytes(secrets.token_bytes(8))
    os.replace(tmp, stamp)


def _stamp_of(stamp: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(stamp)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


async def key_changed(
    db: Database, *, key_hash: str | None = None, key_id: int | None = None
) -> None:
    """Announce that a key changed, for code that holds only the database (no ``ChangeBus``):
    every listening process, this one included, drops it from its cache."""
    await ChangeBus(db).key_changed(key_hash=key_hash, key_id=key_id)


async def account_changed(db: Database, account_id: int) -> None:
    """Announce that an account changed (suspension, limits, budgets); see ``key_changed``."""
    await ChangeBus(db).account_changed(account_id)
