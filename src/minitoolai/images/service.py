"""Text-to-image jobs as the API sees them: submit, report, cancel, wait.

Money: a job's price is held on submit (so a job can never run unpaid), settled by the worker
when the image is stored, and voided (released, or refunded if already settled) when the job
fails or is cancelled. Both ends are compare-and-set, so a job is charged at most once whatever
retries, crashes and cancels interleave.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from minitoolai.accounts.auth import Principal
from minitoolai.images.queue import FINAL, Job, JobQueue, JobStatus
from minitoolai.images.schemas import JobRequest
from minitoolai.images.signing import Signer
from minitoolai.images.storage import Storage
from minitoolai.ledger.pricing import PriceTable
from minitoolai.ledger.service import Ledger

#: an image hold outlives any queue wait; the job reaper, not the hold sweeper, unwinds it
IMAGE_HOLD_TTL = timedelta(days=2)


@dataclass(slots=True)
class Submitted:
    jobid: int
    signature: str


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

    async def submit(
        self, principal: Principal, request: JobRequest, idempotency_key: str | None = None
    ) -> Submitted:
        principal.check_model(request.model)
        hold = await self.ledger.hold(
            principal.account_id,
            self.prices[request.model].images(1),
            kind="image",
            model=request.model,
            api_key_id=principal.key_id,
            idempotency_key=idempotency_key,
            ttl=IMAGE_HOLD_TTL,
        )
        if hold.is_replay and isinstance(hold.replayed_result, dict):
            jobid = int(hold.replayed_result["jobid"])
            return Submitted(jobid, self.signer.job(jobid))
        try:
            job = await self.queue.enqueue(
                principal.account_id, hold.charge_id, request.model, request.job_params()
            )
        except BaseException:
            await self.ledger.release(hold.charge_id)
            raise
        if idempotency_key is not None:
            await self.ledger.set_result(hold.charge_id, {"jobid": job.id})
        if self.notify is not None:
            await self.notify(request.model)
        return Submitted(job.id, self.signer.job(job.id))

    async def find(self, jobid: int, signature: str) -> Job | None:
        """The job, if the signature is right. Wrong signature and unknown id look the same."""
        if not self.signer.job_ok(jobid, signature):
            return None
        return await self.queue.get(jobid)

    async def report(self, job: Job, base_url: str) -> dict[str, Any]:
        """The poll's answer: the seed's three fields, plus progress where work is long."""
        if job.status == JobStatus.QUEUED:
            return {
                "status": "pending",
                "image_url": None,
                "message": "queued",
                "queue_position": await self.queue.position(job),
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

    async def cancel(self, job: Job) -> bool:
        """Cancel a queued or running job and give its money back. False if already final."""
        done = await self.queue.finish(
            job.id,
            JobStatus.CANCELLED,
            "cancelled by the client; nothing charged",
            from_states=(JobStatus.QUEUED, JobStatus.RUNNING),
        )
        if done:
            await void_charge(self.ledger, job.charge_id, "job cancelled")
        return done

    async def wait(self, jobid: int, timeout: float) -> Job:
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


async def void_charge(ledger: Ledger, charge_id: str, note: str) -> None:
    """Give a job's money back whatever state its charge is in: release a hold, refund a charge."""
    if not (await ledger.release(charge_id)).applied:
        await ledger.refund(charge_id, note)
