"""The image worker: claim a job, generate off the event loop, store, settle.

Runs inside ``serve`` on the embedded default, or alone (``minitoolai worker``) on GPU machines
against the same database and storage. While a job runs, a heartbeat extends its lease and
records progress; if the heartbeat finds the job is no longer ours (cancelled, or our lease ran
out and another worker took it), generation is aborted at the next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import secrets
import socket
import time
from typing import Any

from minitoolai.catalog import IMAGE_DEFAULT_FORMAT
from minitoolai.engines.base import GeneratedImage, ImageEngine, ImageSpec
from minitoolai.engines.errors import EngineError, EngineUnavailable
from minitoolai.images.notify import Wakeup
from minitoolai.images.queue import ImageJob, JobQueue, JobStatus
from minitoolai.images.service import void_charge
from minitoolai.images.storage import Storage
from minitoolai.ledger.pricing import PriceTable
from minitoolai.ledger.service import Ledger, UsageRecord

log = logging.getLogger("minitoolai.images")


class _LostJob(Exception):
    """Raised inside the engine's progress callback to stop a job that is no longer ours."""


def encode(image: GeneratedImage, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "jpeg":
        image.image.convert("RGB").save(buffer, format="JPEG", quality=92)
    elif fmt == "webp":
        image.image.save(buffer, format="WEBP", quality=92)
    else:
        image.image.save(buffer, format="PNG")
    return buffer.getvalue()


async def reap_abandoned(queue: JobQueue, ledger: Ledger) -> None:
    """Fail (and refund) jobs whose workers died too many times. Safe anywhere, any number of
    times at once (``finalize`` is conditional); ``serve`` runs it in its elected process."""
    for job in await queue.abandoned():
        message = f"the job was interrupted {job.attempts} times; it was not charged"
        if await queue.finalize(job.id, JobStatus.FAILED, message):
            await void_charge(ledger, job.charge_id, "job abandoned")
            log.warning("job %d failed after %d attempts", job.id, job.attempts)


class ImageWorker:
    #: whether ``run`` reaps abandoned jobs (``serve``'s own workers leave it to its singleton)
    reaps = True

    def __init__(
        self,
        queue: JobQueue,
        ledger: Ledger,
        prices: PriceTable,
        storage: Storage,
        engine: ImageEngine,
        wakeup: Wakeup,
        *,
        poll_s: float = 1.0,
        name: str | None = None,
    ) -> None:
        self.queue = queue
        self.ledger = ledger
        self.prices = prices
        self.storage = storage
        self.engine = engine
        self.wakeup = wakeup
        self.poll_s = poll_s
        self.id = name or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self.wakeup.set()

    async def run(self, *, burst: bool = False) -> int:
        """Work until stopped; with ``burst``, until the queue is empty. Returns jobs handled."""
        handled = 0
        next_reap = 0.0
        await self.ledger.replay_journals()  # settles a killed worker journaled (docs/billing.md)
        while not self._stopping:
            if self.reaps and time.monotonic() >= next_reap:  # dead workers are rare
                await self.reap()
                next_reap = time.monotonic() + self.queue.lease.total_seconds() / 2
            job = await self.queue.claim(self.id, prefer=self.engine.loaded_models())
            if job is None:
                if burst:
                    return handled
                await self.wakeup.wait(self.poll_s)
                continue
            await self.process(job)
            handled += 1
        return handled

    async def reap(self) -> None:
        """Fail (and refund) jobs whose workers died too many times."""
        await reap_abandoned(self.queue, self.ledger)

    async def process(self, job: ImageJob) -> None:
        params = job.params
        spec = ImageSpec(
            model=job.model,
            prompt=params["prompt"],
            negative_prompt=params.get("negative_prompt", ""),
            scheduler=params["scheduler"],
            steps=int(params["steps"]),
            cfg_scale=float(params["cfg_scale"]),
            width=int(params["width"]),
            height=int(params["height"]),
            seed=params.get("seed"),
        )
        state: dict[str, Any] = {"progress": 0.0, "lost": False}

        def on_progress(fraction: float) -> None:  # called in the engine's thread
            state["progress"] = fraction
            if state["lost"]:
                raise _LostJob

        beat = asyncio.create_task(self._heartbeat(job, state))
        started = time.perf_counter()
        fmt = params.get("format", IMAGE_DEFAULT_FORMAT)
        try:
            result = await asyncio.to_thread(self.engine.generate, spec, on_progress)
            data = await asyncio.to_thread(encode, result, fmt)
        except _LostJob:
            log.info("job %d is no longer ours; stopped", job.id)
            return
        except EngineUnavailable as exc:  # e.g. weights missing: retrying will not help
            await self._fail(job, str(exc))
            return
        except (EngineError, ValueError) as exc:
            await self._fail(job, f"generation failed: {exc}")
            return
        except Exception as exc:  # a crash in the engine: retry on another attempt if any left
            log.exception("job %d crashed", job.id)
            if job.attempts < self.queue.max_attempts:
                await self.queue.requeue(job.id, self.id, f"retrying after an error: {exc}")
            else:
                await self._fail(job, f"generation failed: {type(exc).__name__}")
            return
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        await self._complete(job, data, fmt, result, started)

    async def _complete(
        self, job: ImageJob, data: bytes, fmt: str, result: GeneratedImage, started: float
    ) -> None:
        name = await self.storage.put(data, fmt)
        cost = self.prices[job.model].images(1)
        await self.ledger.settle(
            job.charge_id, cost, UsageRecord(units=1, served_by=f"worker:{self.id}")
        )
        done = await self.queue.finalize(
            job.id,
            JobStatus.SUCCEEDED,
            "success",
            worker_id=self.id,
            result_key=name,
            seed=result.seed,
        )
        if not done:
            # Not ours any more. Cancelled or failed meanwhile: give the money back. Another
            # worker took it over (our lease ran out): it settles (a no-op now) or voids.
            await self.storage.delete(name)
            current = await self.queue.get(job.id)
            if current is not None and current.status in (JobStatus.CANCELLED, JobStatus.FAILED):
                await void_charge(self.ledger, job.charge_id, "job did not complete")
            return
        log.info(
            "job %d done: %s %dx%d %d steps in %.2fs",
            job.id,
            job.model,
            result.width,
            result.height,
            result.steps,
            time.perf_counter() - started,
        )

    async def _fail(self, job: ImageJob, message: str) -> None:
        if await self.queue.finalize(job.id, JobStatus.FAILED, message, worker_id=self.id):
            await void_charge(self.ledger, job.charge_id, "job failed")
        log.warning("job %d failed: %s", job.id, message)

    async def _heartbeat(self, job: ImageJob, state: dict[str, Any]) -> None:
        interval = min(0.5, self.queue.lease.total_seconds() / 3)
        last = -1.0
        while True:
            await asyncio.sleep(interval)
            progress = float(state["progress"])
            message = f"step progress {progress:.0%}" if progress != last else None
            ok = await self.queue.heartbeat(job.id, self.id, progress, message)
            last = progress
            if not ok:
                state["lost"] = True
                return
