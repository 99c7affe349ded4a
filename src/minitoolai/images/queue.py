"""The image job queue, kept in the database (the source of truth, survives restarts).

Every state change is a compare-and-set on ``status`` (and on ``worker_id`` for a running job),
so a job is claimed by one worker at a time, and finishes, fails or is cancelled exactly once:

    queued --claim--> running --complete--> succeeded
       |                 |  \\--fail / attempts used up--> failed
       |                 \\--lease expired--> claimed again (attempts + 1)
       \\--cancel (queued or running)--> cancelled

A worker holds a lease and extends it with heartbeats; if it dies, the lease runs out and
another worker claims the job, up to ``max_attempts``, after which the job fails.

Polls (``JobQueue.view``) are answered from a small per-process cache so that a flood of them
(they need no API key, only a job's signature) costs no database work and cannot starve the
worker sharing the event loop: concurrent polls of one job share one read, a fresh answer is
reused for ``POLL_CACHE_S``, and every state change made through this queue (the in-process
worker, a cancel) replaces the entry at once. Changes made by another process (a separate
``minitoolai worker``, another replica) are seen within ``POLL_CACHE_S``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, text, update
from sqlalchemy.engine import Row

from minitoolai.clock import utcnow
from minitoolai.infra.db import Database
from minitoolai.infra.tables import accounts, image_jobs

#: Job ids: random in [10^11, 2^53), so not guessable, not sequential, and exact in JavaScript.
_ID_LOW, _ID_HIGH = 10**11, 2**53
#: how long a poll may be answered from memory (changes made in other processes show within it)
POLL_CACHE_S = 0.25
#: a final job never changes again: its answer can be kept longer
FINAL_POLL_CACHE_S = 5.0
#: jobs whose poll answers are kept (least recently used dropped first); params are not kept
POLL_CACHE_ENTRIES = 4096
#: ``position`` counts at most this many queued jobs ahead (the count is bounded work)
MAX_QUEUE_POSITION = 1000


class JobStatus(StrEnum):
    QUEUED = "queued"  # waiting for a worker
    RUNNING = "running"  # a worker holds the lease
    SUCCEEDED = "succeeded"  # image stored, charge settled
    FAILED = "failed"  # gave up; hold released
    CANCELLED = "cancelled"  # the client cancelled; hold released


FINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(slots=True)
class ImageJob:
    """One row of ``image_jobs``: what was asked, for whom, and how far it got."""

    id: int
    account_id: int
    charge_id: str
    model: str
    params: dict[str, Any]
    status: JobStatus
    progress: float
    message: str | None
    attempts: int
    worker_id: str | None
    result_key: str | None
    seed: int | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row[Any]) -> ImageJob:
        return cls(
            id=int(row.id),
            account_id=row.account_id,
            charge_id=row.charge_id,
            model=row.model,
            params=dict(row.params),
            status=JobStatus(row.status),
            progress=float(row.progress),
            message=row.message,
            attempts=int(row.attempts),
            worker_id=row.worker_id,
            result_key=row.result_key,
            seed=row.seed,
            created_at=row.created_at,
        )


def new_job_id() -> int:
    return _ID_LOW + secrets.randbelow(_ID_HIGH - _ID_LOW)


@dataclass(frozen=True, slots=True)
class JobView:
    """What a poll reports: the job (without its params) and, while queued, its position."""

    job: ImageJob
    position: int | None
    until: float  # monotonic time after which it is read again


class _Read:
    """One database read of a job that concurrent polls share; ``stale`` if the job changed
    (through this queue) while it was in flight, so its answer is not kept.
    """

    __slots__ = ("stale", "task")

    def __init__(self, task: asyncio.Task[JobView | None]) -> None:
        self.task = task
        self.stale = False


class JobQueue:
    def __init__(self, db: Database, *, lease_s: float = 60.0, max_attempts: int = 3) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_s)
        self.max_attempts = max_attempts
        self._views: OrderedDict[int, JobView] = OrderedDict()
        self._reads: dict[int, _Read] = {}

    # -- polls: cached, coalesced views -------------------------------------------------------

    async def view(self, job_id: int) -> JobView | None:
        """The job as a poll reports it, at most ``POLL_CACHE_S`` old (None: no such job).

        Unknown ids are not cached (an attacker could fill memory with them), but they never
        get here: the route checks the job's signature first.
        """
        cached = self._views.get(job_id)
        if cached is not None and cached.until > time.monotonic():
            self._views.move_to_end(job_id)
            return cached
        read = self._reads.get(job_id)
        if read is None:
            read = _Read(asyncio.create_task(self._read_view(job_id), name=f"job-view-{job_id}"))
            self._reads[job_id] = read
            read.task.add_done_callback(functools.partial(self._read_done, job_id, read))
        # shielded: one poller leaving does not cancel the read the others wait on
        return await asyncio.shield(read.task)

    async def _read_view(self, job_id: int) -> JobView | None:
        job = await self.get(job_id)
        if job is None:
            return None
        position = await self.position(job) if job.status == JobStatus.QUEUED else None
        return self._make_view(job, position)

    def _read_done(self, job_id: int, read: _Read, _task: object = None) -> None:
        if self._reads.get(job_id) is read:
            del self._reads[job_id]
        if read.task.cancelled() or read.task.exception() is not None or read.stale:
            return
        view = read.task.result()
        if view is not None:
            self._keep(view)

    @staticmethod
    def _make_view(job: ImageJob, position: int | None) -> JobView:
        ttl = FINAL_POLL_CACHE_S if job.status in FINAL else POLL_CACHE_S
        return JobView(dataclasses.replace(job, params={}), position, time.monotonic() + ttl)

    def _keep(self, view: JobView) -> None:
        self._views[view.job.id] = view
        self._views.move_to_end(view.job.id)
        while len(self._views) > POLL_CACHE_ENTRIES:
            self._views.popitem(last=False)

    def changed(self, job_id: int, job: ImageJob | None = None) -> None:
        """The job changed through this process: drop its poll answer (or keep ``job``'s)."""
        self._views.pop(job_id, None)
        read = self._reads.get(job_id)
        if read is not None:
            read.stale = True
        if job is not None:
            self._keep(self._make_view(job, None if job.status != JobStatus.QUEUED else 0))

    async def enqueue(
        self, account_id: int, charge_id: str, model: str, params: dict[str, Any]
    ) -> ImageJob:
        job_id = new_job_id()
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    insert(image_jobs)
                    .returning(*image_jobs.c)
                    .values(
                        id=job_id,
                        account_id=account_id,
                        charge_id=charge_id,
                        model=model,
                        params=params,
                        status=JobStatus.QUEUED,
                        progress=0.0,
                        attempts=0,
                        created_at=utcnow(),
                    )
                )
            ).one()
            if not self.db.is_sqlite:
                await conn.execute(text("SELECT pg_notify('minitoolai_jobs', :m)"), {"m": model})
        return ImageJob.from_row(row)

    async def get(self, job_id: int) -> ImageJob | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(image_jobs).where(image_jobs.c.id == job_id))).first()
        return None if row is None else ImageJob.from_row(row)

    async def position(self, job: ImageJob) -> int:
        """How many queued jobs are ahead of this one (0: next), counting at most
        ``MAX_QUEUE_POSITION``: an index range scan that stops there, however long the queue.
        """
        ahead = (
            select(image_jobs.c.id)
            .where(
                image_jobs.c.status == JobStatus.QUEUED,
                image_jobs.c.created_at < job.created_at,
            )
            .limit(MAX_QUEUE_POSITION)
            .subquery()
        )
        async with self.db.read() as conn:
            count = await conn.execute(select(func.count()).select_from(ahead))
            return int(count.scalar_one())

    async def claim(self, worker_id: str, prefer: list[str] | None = None) -> ImageJob | None:
        """Take the next job (one this worker's loaded models serve first), or None.

        Also takes running jobs whose lease expired (their worker died), while attempts remain.
        """
        now = utcnow()
        claimable = or_(
            image_jobs.c.status == JobStatus.QUEUED,
            and_(
                image_jobs.c.status == JobStatus.RUNNING,
                image_jobs.c.lease_expires_at < now,
                image_jobs.c.attempts < self.max_attempts,
            ),
        )
        order: list[Any] = [image_jobs.c.created_at]
        if prefer:
            order.insert(0, image_jobs.c.model.in_(prefer).desc())
        pick = select(image_jobs.c.id).where(claimable).order_by(*order).limit(1)
        if not self.db.is_sqlite:
            pick = pick.with_for_update(skip_locked=True)
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    update(image_jobs)
                    .where(image_jobs.c.id == pick.scalar_subquery(), claimable)
                    .values(
                        status=JobStatus.RUNNING,
                        worker_id=worker_id,
                        lease_expires_at=now + self.lease,
                        attempts=image_jobs.c.attempts + 1,
                        started_at=now,
                        progress=0.0,
                        message="starting",
                    )
                    .returning(*image_jobs.c)
                )
            ).first()
        if row is None:
            return None
        job = ImageJob.from_row(row)
        self.changed(job.id, job)
        return job

    async def heartbeat(
        self, job_id: int, worker_id: str, progress: float | None = None, message: str | None = None
    ) -> bool:
        """Extend the lease (and record progress). False: the job is no longer ours."""
        values: dict[str, Any] = {"lease_expires_at": utcnow() + self.lease}
        if progress is not None:
            values["progress"] = max(0.0, min(1.0, progress))
        if message is not None:
            values["message"] = message
        async with self.db.write() as conn:
            res = await conn.execute(
                update(image_jobs)
                .where(
                    image_jobs.c.id == job_id,
                    image_jobs.c.worker_id == worker_id,
                    image_jobs.c.status == JobStatus.RUNNING,
                )
                .values(**values)
            )
        if progress is not None or message is not None:
            self.changed(job_id)
        return bool(res.rowcount)

    async def finalize(
        self,
        job_id: int,
        status: JobStatus,
        message: str,
        *,
        worker_id: str | None = None,
        result_key: str | None = None,
        seed: int | None = None,
        from_states: tuple[JobStatus, ...] = (JobStatus.RUNNING,),
    ) -> bool:
        """Move a job to a final state, once. False if it was not in ``from_states``."""
        conditions = [image_jobs.c.id == job_id, image_jobs.c.status.in_(from_states)]
        if worker_id is not None:
            conditions.append(image_jobs.c.worker_id == worker_id)
        values: dict[str, Any] = {"status": status, "message": message, "finished_at": utcnow()}
        if status == JobStatus.SUCCEEDED:
            values.update(progress=1.0, result_key=result_key, seed=seed)
        async with self.db.write() as conn:
            res = await conn.execute(update(image_jobs).where(*conditions).values(**values))
        self.changed(job_id)
        return bool(res.rowcount)

    async def requeue(self, job_id: int, worker_id: str, message: str) -> bool:
        """Give a job back after a retryable failure (the attempt still counts)."""
        async with self.db.write() as conn:
            res = await conn.execute(
                update(image_jobs)
                .where(
                    image_jobs.c.id == job_id,
                    image_jobs.c.worker_id == worker_id,
                    image_jobs.c.status == JobStatus.RUNNING,
                )
                .values(status=JobStatus.QUEUED, worker_id=None, message=message, progress=0.0)
            )
        self.changed(job_id)
        return bool(res.rowcount)

    async def abandoned(self) -> list[ImageJob]:
        """Running jobs whose lease expired with no attempts left: to be failed and refunded."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(image_jobs).where(
                        image_jobs.c.status == JobStatus.RUNNING,
                        image_jobs.c.lease_expires_at < utcnow(),
                        image_jobs.c.attempts >= self.max_attempts,
                    )
                )
            ).all()
        return [ImageJob.from_row(r) for r in rows]

    # -- the operator's console (issue 14) ---------------------------------------------------

    async def counts(self) -> dict[str, int]:
        """How many jobs are in each state (every state, zeros included)."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(image_jobs.c.status, func.count()).group_by(image_jobs.c.status)
                )
            ).all()
        found = {str(status): int(n) for status, n in rows}
        return {state.value: found.get(state.value, 0) for state in JobStatus}

    async def newest(self, limit: int = 50) -> list[tuple[ImageJob, str]]:
        """The newest jobs with their account's name, newest first."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(image_jobs, accounts.c.name.label("account_name"))
                    .join(accounts, accounts.c.id == image_jobs.c.account_id)
                    .order_by(image_jobs.c.created_at.desc())
                    .limit(limit)
                )
            ).all()
        return [(ImageJob.from_row(r), str(r.account_name)) for r in rows]
