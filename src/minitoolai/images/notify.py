"""Waking image workers without busy polling.

A worker waits on ``Wakeup.wait(timeout)``; a new job wakes it through whichever channel the
deployment has: an in-process event (the embedded default), PostgreSQL ``LISTEN`` (the queue's
own database, nothing else to run) or Redis pub/sub. The timeout is the fallback short poll, so
a lost notification delays a job by at most that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("minitoolai.images")
CHANNEL = "minitoolai_jobs"


class Wakeup:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closers: list[Any] = []
        self._forwards: list[Callable[[], object]] = []

    def set(self) -> None:
        self._event.set()
        for forward in self._forwards:
            forward()

    def forward(self, wake: Callable[[], object]) -> None:
        """Also wake ``wake`` (workers on another event loop of this process)."""
        self._forwards.append(wake)

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()

    async def listen_postgres(self, database_url: str) -> None:
        """LISTEN on the queue's database (asyncpg), in the background, reconnecting on loss."""
        import asyncpg

        dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)

        async def run() -> None:
            while True:
                try:
                    conn = await asyncpg.connect(dsn)
                    lost = asyncio.Event()
                    conn.add_termination_listener(lambda *_, lost=lost: lost.set())
                    await conn.add_listener(CHANNEL, lambda *_: self._event.set())
                    self._closers.append(conn)
                    await lost.wait()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the poll fallback covers the gap
                    log.warning("job LISTEN connection lost (%s); retrying", exc)
                await asyncio.sleep(2)

        self._task = asyncio.create_task(run(), name="job-listen")

    async def listen_redis(self, redis_url: str) -> None:
        from redis.asyncio import Redis

        client = Redis.from_url(redis_url)
        pubsub = client.pubsub()
        await pubsub.subscribe(CHANNEL)
        self._closers.append(client)

        async def run() -> None:
            while True:
                try:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                    if message is not None:
                        self._event.set()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("job pub/sub failed (%s); retrying", exc)
                    await asyncio.sleep(2)

        self._task = asyncio.create_task(run(), name="job-pubsub")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for closer in self._closers:
            with contextlib.suppress(Exception):  # redis-py's client has aclose, asyncpg close
                await (getattr(closer, "aclose", None) or closer.close)()


async def publish_redis(redis_url: str, model: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        await client.publish(CHANNEL, model)
    finally:
        await client.aclose()
