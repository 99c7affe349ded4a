"""Consuming a blocking iterator from a worker thread, without blocking the event loop.

Piper synthesises one sentence per step of a plain iterator; each step runs on a worker thread
and its result is handed to the loop through a queue, so audio flows as it is made. Stopping is
cooperative: when the consumer goes away, the thread notices before the next step.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TypeVar, cast

T = TypeVar("T")
_END = object()


async def iterate_in_thread(make: Callable[[], Iterator[T]], name: str) -> AsyncGenerator[T, None]:
    """Items of ``make()``, produced on a dedicated thread, yielded on the event loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # loop closed: nobody listens
            stop.set()

    def run() -> None:
        try:
            for item in make():
                if stop.is_set():
                    return
                put(item)
        except BaseException as exc:  # re-raised on the event loop
            put(exc)
        finally:
            put(_END)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield cast(T, item)
    finally:
        stop.set()
