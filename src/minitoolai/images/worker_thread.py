"""``serve``'s own image workers, on a thread and event loop of their own.

On the API's loop a worker queued behind every poll and chat callback: 32 pollers took it from
38.6 to 5.8 jobs/s. Here it has its own loop, database engine and ledger, as ``minitoolai
worker`` has its own process, and the API's job wake-ups are forwarded to it. (The GIL is still
shared; a separate ``minitoolai worker`` process does better on a busy server.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

from minitoolai.engines.base import ImageEngine
from minitoolai.images.build import LazyEngine, build_image_engine, build_worker
from minitoolai.images.notify import Wakeup
from minitoolai.images.worker import ImageWorker
from minitoolai.settings import Settings

log = logging.getLogger("minitoolai.images")


class WorkerThread:
    def __init__(self, settings: Settings, count: int, api_wakeup: Wakeup) -> None:
        self.settings = settings
        self.count = count
        self.api_wakeup = api_wakeup
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[ImageWorker] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="image-workers", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(60)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:
            log.exception("the image worker thread stopped")
        finally:
            self._ready.set()

    async def _main(self) -> None:
        from minitoolai.bootstrap import build_services  # bootstrap imports this module's peers

        svc = await build_services(self.settings, migrate=False, engines=False)
        try:
            loop = asyncio.get_running_loop()
            engine: ImageEngine = LazyEngine(lambda: build_image_engine(svc.settings, svc.config))
            self._workers = [
                build_worker(svc.images, engine, svc.wakeup) for _ in range(self.count)
            ]
            for worker in self._workers:
                worker.reaps = False  # the app's elected sweeper reaps (infra/leader.py)
            self.api_wakeup.forward(lambda: loop.call_soon_threadsafe(svc.wakeup.set))
            self._loop = loop
            self._ready.set()
            await asyncio.gather(*(w.run() for w in self._workers))
        finally:
            await svc.aclose()

    async def stop(self, timeout: float = 30.0) -> None:
        """Let the running jobs end (as a worker does on SIGTERM), then join the thread."""
        if self._loop is not None:
            for worker in self._workers:
                with contextlib.suppress(RuntimeError):  # the loop already closed
                    self._loop.call_soon_threadsafe(worker.stop)
        await asyncio.to_thread(self._thread.join, timeout)
        if self._thread.is_alive():
            log.warning("image workers did not stop within %.0f s", timeout)
