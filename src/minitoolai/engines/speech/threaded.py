"""Consuming a blocking iterator from a worker thread, without blocking the event loop.

Piper synthesises one piece per step of a plain iterator; each step runs on a worker thread
and its result is handed to the loop through a queue, so audio flows as it is made. The thread
runs at most ``ahead`` items ahead of the consumer (a slow reader holds back synthesis rather
than piling audio up in memory). Stopping is cooperative: when the consumer goes away, the
thread notices before the next step, or while it waits for room.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TypeVar, cast

T = TypeVar("T")
_END = object()


#: how many items the producing thread may have made that the consumer has not yet taken
DEFAULT_AHEAD = 2
#: how often a thread waiting for room checks whether the consumer went away
_WAIT_S = 0.1


async def iterate_in_thread(
    make: Callable[[], Iterator[T]], name: str, *, ahead: int = DEFAULT_AHEAD
) -> AsyncGenerator[T, None]:
    """Items of ``make()``, produced on a dedicated thread, yielded on the event loop."""
    if ahead < 1:
        raise ValueError("ahead must be at least 1")
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()
    room = threading.Semaphore(ahead)

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # loop closed: nobody listens
            stop.set()

    def run() -> None:
        try:
            for item in make():
                while not room.acquire(timeout=_WAIT_S):
                    if stop.is_set():
                        return
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
            room.release()
            yield cast(T, item)
    finally:
        stop.set()
