"""Admission control for a speech engine: a few syntheses at once, a short line, then 429.

Synthesis is CPU-bound; letting every request start at once only makes all of them slow, and an
unbounded line turns into client timeouts. So ``max_active`` run, ``queue_size`` wait, and the
next one is refused at once with ``EngineBusy``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from minitoolai.engines.errors import EngineBusy


class Gate:
    def __init__(self, name: str, max_active: int = 1, queue_size: int = 4) -> None:
        if max_active < 1 or queue_size < 0:
            raise ValueError("max_active must be >= 1 and queue_size >= 0")
        self.name = name
        self.capacity = max_active + queue_size
        self._slots = asyncio.Semaphore(max_active)
        self.in_flight = 0

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold a slot for the body; raise ``EngineBusy`` at once when the line is full."""
        if self.in_flight >= self.capacity:
            raise EngineBusy(f"speech engine {self.name!r} is busy; retry shortly")
        self.in_flight += 1
        try:
            async with self._slots:
                yield
        finally:
            self.in_flight -= 1
