"""Group commit: the steps of many requests in one transaction (no SQL here: the callers').

Classic group commit: a step handed over while no batch is in flight starts one at once (no
added wait at low load); steps handed over while a batch is in flight gather and go together in
the next, one statement, at most ``max_batch`` at a time. An optional gather window waits that
long before each batch, for more steps to join it. Each step gets its own result. A batch the
database refuses is tried again one step at a time, so a step it cannot take fails alone (with
the error: the caller decides what a failure means) and the others land. A step whose caller
stopped waiting (its future cancelled: a client leaving) still runs with its batch; its
``orphaned`` callback, if any, gets the outcome, so nothing the batch did goes unhandled.

``ledger.settler.SettleWriter`` batches settles and releases (``LedgerStore.finish_many``); the
PostgreSQL store batches its plain holds the same way (``store/postgres.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

#: steps in one batch at most (one statement's arrays; short row locks)
MAX_BATCH = 256
#: batches in flight at once: a second one gathers and goes while the first waits for its
#: commit, so a writer is not bound to one round trip at a time under load
IN_FLIGHT = 1

T = TypeVar("T")
R = TypeVar("R")
#: what handles the outcome of a step whose caller stopped waiting (a done future)
Orphaned = Callable[["asyncio.Future[R]"], None]


class WriterStopped(RuntimeError):
    """The writer's task ended (the loop is closing) before the step's batch ran."""


class GroupCommit(Generic[T, R]):
    def __init__(
        self, *, gather_s: float = 0.0, max_batch: int = MAX_BATCH, in_flight: int = IN_FLIGHT
    ) -> None:
        self.gather_s = gather_s
        self.max_batch = max_batch
        self.in_flight = in_flight
        self._queue: list[tuple[T, asyncio.Future[R], Orphaned[R] | None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # how many batches ran (for tests and the bench's figures)
        #: steps a caller runs alone, outside any batch (see ``busy``)
        self.alone = 0

    async def _many(self, steps: list[T]) -> list[R]:
        raise NotImplementedError

    async def _one(self, step: T) -> R:
        raise NotImplementedError

    def submit(self, step: T, orphaned: Orphaned[R] | None = None) -> asyncio.Future[R]:
        """Queue ``step``; the future is its result once its batch committed. ``orphaned`` is
        called with a done future of the outcome if the returned one is cancelled first."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((step, future, orphaned))
        if len(self._tasks) < self.in_flight or any(t.get_loop() is not loop for t in self._tasks):
            task = loop.create_task(self._drain(), name="group-commit")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return future

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        """A batch is queued or in flight, or a step runs alone: a step now has company to
        go with. When not busy, a caller may run its step alone in its own task (no task
        made, no statement of arrays for one step), counting it in ``alone`` meanwhile."""
        return bool(self._queue or self._tasks or self.alone)

    async def flush(self) -> None:
        """Wait until every step handed over so far has been tried."""
        while self._tasks:
            with contextlib.suppress(Exception):
                await asyncio.shield(next(iter(self._tasks)))

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[R], Orphaned[R] | None]] = []
        try:
            while self._queue:
                if self.gather_s > 0:
                    await asyncio.sleep(self.gather_s)
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                try:
                    results = await self._many([step for step, _, _ in batch])
                except Exception as exc:  # the database refused the batch: none of it applied
                    if len(batch) == 1:
                        _fail(batch[0], exc)
                    else:  # one by one, as without the writer: one bad step fails alone
                        for queued in batch:
                            try:
                                _settle(queued, await self._one(queued[0]))
                            except Exception as one:
                                _fail(queued, one)
                    batch = []
                    continue
                self.batches += 1
                for queued, result in zip(batch, results, strict=True):
                    _settle(queued, result)
                batch = []
        except BaseException:
            # cancelled (the loop is closing): nothing waits forever; the caller keeps what it
            # must (the ledger: its journal and its retry list)
            for queued in batch + self._queue:
                _fail(queued, WriterStopped("the group-commit writer stopped"))
            self._queue.clear()
            raise
        finally:
            # gone from the running set before anyone can queue behind it (no await after)
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)


def _settle(queued: tuple[T, asyncio.Future[R], Orphaned[R] | None], result: R) -> None:
    _, future, orphaned = queued
    if not future.done():
        future.set_result(result)
    elif future.cancelled() and orphaned is not None:
        outcome: asyncio.Future[R] = future.get_loop().create_future()
        outcome.set_result(result)
        orphaned(outcome)


def _fail(queued: tuple[T, asyncio.Future[R], Orphaned[R] | None], exc: BaseException) -> None:
    _, future, orphaned = queued
    if not future.done():
        future.set_exception(exc)
    elif future.cancelled() and orphaned is not None:
        outcome: asyncio.Future[R] = future.get_loop().create_future()
        outcome.set_exception(exc)
        orphaned(outcome)
