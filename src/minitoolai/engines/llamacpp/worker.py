"""One thread per loaded model, with a bounded waiting line in front of it.

A llama.cpp context is not thread-safe and a CPU generates one answer at a time, so each model
gets a dedicated thread that runs jobs one after another, off the event loop. Admission is
decided synchronously when a request arrives: when ``queue_size`` requests already wait behind
the running one, ``EngineBusy`` is raised at once (429 + Retry-After) instead of letting
requests pile up until clients time out.

Cancellation is cooperative: ``cancel`` drops a waiting job on the spot (its slot is free at
once) or sets the running job's flag, which the generation loop checks after every token.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable

from minitoolai.engines.errors import EngineBusy, EngineUnavailable


class _End:
    """Marks the end of a job's output."""


END = _End()


class Generation:
    """One generation on the model thread, and the channel its results travel back on.

    ``work(job)`` runs on the model thread and reports through ``job.emit``; results arrive on
    the event loop's ``output`` queue, ending with ``END`` (an exception raised by ``work`` is
    delivered as an item just before it).
    """

    def __init__(self, work: Callable[[Generation], None], loop: asyncio.AbstractEventLoop) -> None:
        self.work = work
        self.output: asyncio.Queue[object] = asyncio.Queue()
        self._loop = loop
        self._cancelled = threading.Event()
        self._abort_error: BaseException | None = None

    @property
    def cancelled(self) -> bool:
        """Checked by the generation loop after every token."""
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def abort(self, error: BaseException) -> None:
        """Cancel on the server's behalf (shutdown): the consumer, still listening, gets
        ``error`` instead of a silently truncated answer.
        """
        self._abort_error = error
        self._cancelled.set()

    def emit(self, item: object) -> None:
        """Hand ``item`` to the consumer (thread-safe); dropped once the job is cancelled."""
        if not self._cancelled.is_set():
            self._send(item)

    def finish(self) -> None:
        """Deliver the abort error, if any, and ``END``: always, so no consumer waits forever."""
        if self._abort_error is not None:
            self._send(self._abort_error)
        self._send(END)

    def _send(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self.output.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._cancelled.set()


class ModelWorker:
    """Runs jobs one at a time on a dedicated daemon thread."""

    def __init__(self, name: str, queue_size: int, retry_after: int = 1) -> None:
        self.name = name
        self.queue_size = queue_size
        self.retry_after = retry_after
        self._cond = threading.Condition()
        self._waiting: deque[Generation] = deque()
        self._running: Generation | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"llamacpp:{name}", daemon=True)
        self._thread.start()

    # -- event-loop side ---------------------------------------------------------------------

    def enqueue(self, job: Generation) -> None:
        """Queue ``job`` or refuse at once; never blocks."""
        with self._cond:
            if self._closed:
                raise EngineUnavailable(f"model {self.name!r} is shut down")
            in_flight = len(self._waiting) + (self._running is not None)
            if in_flight > self.queue_size:  # one running + queue_size waiting
                raise EngineBusy(
                    f"model {self.name!r} is busy: {len(self._waiting)} requests are already "
                    "waiting; retry shortly",
                    retry_after=self.retry_after,
                )
            self._waiting.append(job)
            self._cond.notify_all()

    def cancel(self, job: Generation) -> None:
        """Stop ``job``: dropped if still waiting, flagged if running. Idempotent."""
        job.cancel()
        with self._cond:
            if job in self._waiting:
                self._waiting.remove(job)
                self._cond.notify_all()

    @property
    def running(self) -> bool:
        with self._cond:
            return self._running is not None

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing runs or waits; ``False`` on timeout. For shutdown and tests."""
        with self._cond:
            return self._cond.wait_for(
                lambda: self._running is None and not self._waiting, timeout=timeout
            )

    def close(self, timeout: float = 30.0) -> bool:
        """Cancel everything, stop the thread and wait for it; ``False`` if it did not stop."""
        with self._cond:
            self._closed = True
            dropped = list(self._waiting)
            self._waiting.clear()
            if self._running is not None:
                self._running.abort(self._shutdown_error())
            self._cond.notify_all()
        for job in dropped:
            job.abort(self._shutdown_error())
            job.finish()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _shutdown_error(self) -> EngineUnavailable:
        return EngineUnavailable(f"model {self.name!r} is shutting down")

    # -- model-thread side -------------------------------------------------------------------

    def _next(self) -> Generation | None:
        with self._cond:
            self._cond.wait_for(lambda: self._closed or bool(self._waiting))
            if self._closed:
                return None
            self._running = self._waiting.popleft()
            return self._running

    def _run(self) -> None:
        while (job := self._next()) is not None:
            try:
                if not job.cancelled:
                    job.work(job)
            except BaseException as exc:  # delivered to the consumer, raised there
                job.emit(exc)
            finally:
                job.finish()
                with self._cond:
                    self._running = None
                    self._cond.notify_all()
