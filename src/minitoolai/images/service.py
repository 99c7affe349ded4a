"""Text-to-image jobs as the API sees them: create, report, cancel, wait, and the image files.

Money: a job's price is held when the job is created (so a job can never run unpaid), settled
by the worker when the image is stored, and voided (released, or refunded if already settled)
when the job fails or is cancelled. Both ends are compare-and-set, so a job is charged at most
once whatever retries, crashes and cancels interleave.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from minitoolai.accounts.auth import Principal
from minitoolai.catalog import IMAGE_MEDIA_TYPES
from minitoolai.errors import APIError, NotFound
from minitoolai.images.queue import FINAL, ImageJob, JobQueue, JobStatus
from minitoolai.images.schemas import JobRequest
from minitoolai.images.signing import Signer
from minitoolai.images.storage import LocalStorage, Storage
from minitoolai.ledger.idempotency import IdempotencyKey
from minitoolai.ledger.pricing import PriceTable
from minitoolai.ledger.service import Ledger

log = logging.getLogger("minitoolai.images")

#: an image hold, once its job is queued, outlives any queue wait; the job reaper, not the hold
#: sweeper, unwinds it (before that it is a live hold: ``Ledger.hand_over``)
IMAGE_HOLD_TTL = timedelta(days=2)
#: polls of one job are answered at most this often, all clients together; a faster poller
#: waits its turn. One client polling every 10 ms or slower never waits.
POLL_SPACING_S = 0.01
#: the longest a poll is held back waiting its turn
MAX_POLL_WAIT_S = 1.0
#: jobs whose next poll turn is remembered (least recently polled forgotten first)
POLL_PACER_ENTRIES = 4096


class PollPacer:
    """Per-job pacing of polls. Polls need no API key and each one costs the event loop the
    in-process worker runs on; closed-loop pollers hammering a job (32 of them took the
    worker from 38.6 to 5.8 jobs/s) are slowed to one answer per ``spacing`` for that job, so
    the flood's rate, and its CPU, stay bounded however many connections poll back to back.
    A held poll is a sleeping coroutine: it costs nothing while it waits.
    """

    def __init__(
        self,
        spacing: float = POLL_SPACING_S,
        max_wait: float = MAX_POLL_WAIT_S,
        max_jobs: int = POLL_PACER_ENTRIES,
    ) -> None:
        self.spacing = spacing
        self.max_wait = max_wait
        self.max_jobs = max_jobs
        self._next: OrderedDict[int, float] = OrderedDict()

    def delay(self, job_id: int) -> float:
        """Seconds this poll of ``job_id`` should wait for its turn (its turn is taken)."""
        now = time.monotonic()
        turn = min(max(now, self._next.get(job_id, 0.0)), now + self.max_wait)
        self._next[job_id] = turn + self.spacing
        self._next.move_to_end(job_id)
        while len(self._next) > self.max_jobs:
            self._next.popitem(last=False)
        return turn - now


@dataclass(slots=True)
class JobTicket:
    """What the client gets for a new job: its id and the signature that lets it poll."""

    jobid: int
    signature: str


@dataclass(frozen=True, slots=True)
class ImageFile:
    """A stored image to send: a local file by its path (never read into memory), or bytes."""

    media_type: str
    path: Path | None = None
    data: bytes | None = None


class InvalidImageLink(APIError):
    """A file link whose signature is wrong or whose time is up (403, as OpenAI's
    ``invalid_request_error``, the file route's answer since it was written).
    """

    status_code = 403
    error_type = "invalid_request_error"


class ImageService:
    def __init__(
        self,
        ledger: Ledger,
        prices: PriceTable,
        queue: JobQueue,
        signer: Signer,
        storage: Storage,
        *,
        url_ttl_s: int,
        notify: Any = None,
    ) -> None:
        self.ledger = ledger
        self.prices = prices
        self.queue = queue
        self.signer = signer
        self.storage = storage
        self.url_ttl_s = url_ttl_s
        self.notify = notify  # async callable(model), wakes workers elsewhere
        self.pacer = PollPacer()

    async def create_job(
        self, principal: Principal, request: JobRequest, idempotency: IdempotencyKey | None = None
    ) -> JobTicket:
        """Hold the job's price and queue it; a replayed key answers the earlier job."""
        principal.check_model(request.model)
        hold = await self.ledger.hold(
            principal.account_id,
            self.prices[request.model].images(1),
            kind="image",
            model=request.model,
            api_key_id=principal.key_id,
            budgets=principal.budgets,
            idempotency=idempotency,
        )  # live (renewed, swept if this process dies) until its job is queued
        if hold.is_replay:  # the same job again; never new work on the earlier charge
            jobid = int(hold.stored_answer()["jobid"])
            return JobTicket(jobid, self.signer.job(jobid))
        try:
            job = await self.queue.enqueue(
                principal.account_id, hold.charge_id, request.model, request.job_params()
            )
        except BaseException:
            await self.ledger.release(hold.charge_id)
            raise
        try:  # the job row exists: from now on the queue answers for the hold
            await self.ledger.hand_over(hold.charge_id, IMAGE_HOLD_TTL)
        except Exception:  # still live here: renewed until the job settles it
            log.warning("keeping the hold of job %s failed; renewed meanwhile", job.id)
        if idempotency is not None:
            await self.ledger.set_result(hold.charge_id, {"jobid": job.id})
        if self.notify is not None:
            await self.notify(request.model)
        return JobTicket(job.id, self.signer.job(job.id))

    async def find(self, jobid: int, signature: str) -> ImageJob | None:
        """The job, if the signature is right. Wrong signature and unknown id look the same."""
        if not self.signer.job_ok(jobid, signature):
            return None
        return await self.queue.get(jobid)

    async def poll(self, jobid: int, signature: str, base_url: str) -> dict[str, Any] | None:
        """The poll's answer, or None (wrong signature or unknown id, which look the same).

        Polls need no API key, so they are paced per job (``PollPacer``) and answered from the
        queue's short-lived per-job cache (``JobQueue.view``): a flood of them costs little CPU
        and no database work, and leaves the event loop to the worker.
        """
        if not self.signer.job_ok(jobid, signature):
            return None
        if (wait := self.pacer.delay(jobid)) > 0:
            await asyncio.sleep(wait)
        view = await self.queue.view(jobid)
        if view is None:
            return None
        return await self.report(view.job, base_url, position=view.position)

    async def job_status(self, jobid: int, base_url: str) -> dict[str, Any]:
        """The poll's answer for the job as the database has it now (not paced, not cached)."""
        job = await self.queue.get(jobid)
        assert job is not None  # jobs are never deleted
        return await self.report(job, base_url)

    async def report(
        self, job: ImageJob, base_url: str, *, position: int | None = None
    ) -> dict[str, Any]:
        """The poll's answer: the seed's three fields, plus progress where work is long.
        ``position`` is a queued job's place in line when already known.
        """
        if job.status == JobStatus.QUEUED:
            return {
                "status": "pending",
                "image_url": None,
                "message": "queued",
                "queue_position": (
                    await self.queue.position(job) if position is None else position
                ),
            }
        if job.status == JobStatus.RUNNING:
            return {
                "status": "processing",
                "image_url": None,
                "message": job.message or "generating",
                "progress": round(job.progress, 3),
            }
        if job.status == JobStatus.SUCCEEDED:
            assert job.result_key is not None
            return {
                "status": "success",
                "image_url": self.image_url(job.result_key, base_url),
                "message": "success",
                "seed": job.seed,
            }
        status = "cancelled" if job.status == JobStatus.CANCELLED else "error"
        return {"status": status, "image_url": None, "message": job.message or status}

    def image_url(self, name: str, base_url: str) -> str:
        query = self.signer.url_query(name, self.url_ttl_s)
        return f"{base_url.rstrip('/')}/files/images/{name}?{query}"

    async def image_bytes(self, name: str) -> bytes | None:
        """A finished job's image (its ``result_key``), or None once it is no longer stored."""
        return await self.storage.get(name)

    async def image_file(self, name: str, expires: str, signature: str) -> ImageFile:
        """The image a signed link names: ``InvalidImageLink`` (403) when the link is wrong
        or expired, ``NotFound`` when the image is not (or no longer) stored.
        """
        if not self.signer.url_ok(name, expires, signature):
            raise InvalidImageLink("this image link is invalid or has expired")
        if isinstance(self.storage, LocalStorage):  # sent from disk, not read into memory
            path = self.storage.path(name)
            if path is None:
                raise NotFound("no such image")
            return ImageFile(_media_type(name), path=path)
        data = await self.storage.get(name)
        if data is None:
            raise NotFound("no such image")
        return ImageFile(_media_type(name), data=data)

    async def purge_older_than(self, seconds: float) -> int:
        """Delete stored images older than ``seconds`` (their retention); how many went."""
        return await self.storage.purge_older_than(seconds)

    async def cancel(self, job: ImageJob) -> bool:
        """Cancel a queued or running job and give its money back. False if already final."""
        done = await self.queue.finalize(
            job.id,
            JobStatus.CANCELLED,
            "cancelled by the client; nothing charged",
            from_states=(JobStatus.QUEUED, JobStatus.RUNNING),
        )
        if done:
            await void_charge(self.ledger, job.charge_id, "job cancelled")
        return done

    async def wait(self, jobid: int, timeout: float) -> ImageJob:
        """Until the job is final or ``timeout`` passes (OpenAI's API waits for its images)."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            job = await self.queue.get(jobid)
            assert job is not None
            if job.status in FINAL or time.monotonic() > deadline:
                return job
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)


def _media_type(name: str) -> str:
    """A stored image's media type, from its extension (stored names always have one)."""
    return IMAGE_MEDIA_TYPES[name.rpartition(".")[2]]


async def void_charge(ledger: Ledger, charge_id: str, note: str) -> None:
    """Give a job's money back whatever state its charge is in: release a hold, refund a charge."""
    if not (await ledger.release(charge_id)).applied:
        await ledger.refund(charge_id, note)
