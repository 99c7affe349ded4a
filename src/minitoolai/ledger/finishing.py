"""A charge's finish, a settle or a release, from the request to its commit, never lost.

Each step is first written to this process's journal (``ledger.journal``), then handed to the
group-commit writer (``ledger.settler``); the request waits for the commit, or only for the
journal line (``settle_wait = "journal"``, a settle with nothing to keep). A step the database
refused is kept and retried (``retry_deferred``, from ``Ledger.maintain``); one whose hold the
sweeper released meanwhile is still charged, as far as the balance allows (``_settle_late``),
and so is one whose unflushed hold a database crash lost (``_settle_lost``); one a killed
process journaled is applied by the next (``replay_journals``). Money and token
metrics are counted here, once per step that applied, so chat, images and speech count alike.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from prometheus_client import Counter

from minitoolai.clock import utcnow
from minitoolai.errors import NotFound
from minitoolai.ledger.journal import Journal
from minitoolai.ledger.leases import Lease
from minitoolai.ledger.settler import SettleWriter
from minitoolai.ledger.store import Finish, Finished, LedgerStore, NewCharge
from minitoolai.money import MAX_BALANCE
from minitoolai.observability import CHARGED, TOKENS

log = logging.getLogger("minitoolai.ledger")


@dataclass(slots=True)
class Settlement:
    charge_id: str
    cost: int
    #: False when the charge was already settled or released before this call
    applied: bool
    #: True when the database could not be reached: the settlement is retried by ``maintain``
    deferred: bool = False
    #: True when the settle is journaled and its commit follows (``settle_wait = "journal"``):
    #: ``cost`` is the cost asked, not yet capped at the hold
    pending: bool = False


@dataclass(slots=True)
class LiveHold:
    """A hold of a request this process runs: renewed until it is finished."""

    since: float  # when it was held (monotonic)
    charge: NewCharge  # what it held: its settle re-creates it if the database lost it
    #: durable when taken; if not (``Ledger.hold(durable=False)``), its settle's journal line
    #: carries it, so a replay after this process died can re-create it too
    flushed: bool = True
    #: held on this lease, in memory (``ledger.leases``); ``spent`` once its finish gave the
    #: lease back what it held
    lease: Lease | None = None
    spent: bool = False


@dataclass(slots=True)
class UsageRecord:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    units: int | None = None
    estimated: bool = False
    served_by: str | None = None
    result: Any = None


class Finisher:
    """The finishing of one process's charges: what it journaled, what waits for a retry, and
    the fallbacks of journaled settles still running. ``live`` is the ledger's holds this
    process renews: a step that landed takes its charge out of it."""

    def __init__(
        self,
        writer: SettleWriter,
        live: dict[str, LiveHold],
        *,
        journal: Journal | None = None,
        settle_wait: Literal["commit", "journal"] = "commit",
    ) -> None:
        if settle_wait == "journal" and journal is None:
            raise ValueError('settle_wait = "journal" needs a journal')
        self.writer = writer
        self.live = live
        self.journal = journal
        self.settle_wait = settle_wait
        # charge id -> the settlement to retry, and its journal segment
        self._deferred: dict[str, tuple[Finish, Path | None]] = {}
        self._background: set[asyncio.Task[Any]] = set()  # journaled settles' fallbacks

    @property
    def store(self) -> LedgerStore:
        return self.writer.store

    async def flush(self) -> None:
        """Wait for every step handed to the writer (and its fallback) to be tried."""
        await self.writer.flush()
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
        await self.writer.flush()

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()  # what never landed stays in it, for the next process

    async def retry_deferred(self) -> None:
        """Try again the steps the database refused; each stays until it lands."""
        for charge_id, (step, segment) in list(self._deferred.items()):
            try:
                done = await self.store.finish(step)
                if done is not None:
                    _count_settled(step, done.model, done.charged)
                elif step.kind == "settle":
                    hold = step.charge or _charge(self.live.get(charge_id))
                    await self._settle_unheld(step, hold)
            except Exception as exc:  # still unreachable: keep it for the next round
                log.warning("settling %s failed again (%s); will retry", charge_id, exc)
                continue
            del self._deferred[charge_id]
            self.live.pop(charge_id, None)
            self._committed(segment)
            log.info("deferred settlement of %s applied", charge_id)

    async def replay_journals(self) -> int:
        """Apply the journaled steps of processes that died (their segments' locks are free)
        through the normal finish path, then delete those segments. Run at start-up, before
        serving, and by ``maintain``. Returns how many steps applied; a database error leaves
        the segment for the next try (replaying it again changes nothing that already landed)."""
        if self.journal is None:
            return 0
        applied = 0
        for dead in self.journal.dead():
            try:
                for step, hold in dead.entries():
                    applied += await self._replay(step, hold)
            except Exception as exc:
                log.warning("replaying journal %s failed (%s); will retry", dead.path, exc)
                self.journal.forget(dead)
                continue
            self.journal.drop(dead)
            log.warning("replayed journal %s of a process that stopped", dead.path)
        return applied

    async def _replay(self, step: Finish, hold: NewCharge | None) -> int:
        done = await self.store.finish(step)
        if done is not None:
            _count_settled(step, done.model, done.charged)
            log.warning("%s of %s applied from the journal", step.kind, step.charge_id)
            return 1
        if step.kind == "settle" and await self._settle_unheld(step, hold) is not None:
            return 1
        return 0  # applied before the process died, or released: nothing to do

    async def finish(
        self,
        charge_id: str,
        kind: str,
        cost: int,
        usage: UsageRecord,
        *,
        note: str | None = None,
        expired_before: datetime | None = None,
        lease: str | None = None,
    ) -> Settlement:
        """``lease``: the charge was held on this lease (its hold is in ``live``)."""
        step = Finish(
            charge_id=charge_id,
            kind="settle" if kind == "settle" else "release",
            cost=min(cost, MAX_BALANCE),  # the store caps it at the hold anyway
            prompt_tokens=_count(usage.prompt_tokens),
            completion_tokens=_count(usage.completion_tokens),
            units=_count(usage.units),
            estimated=usage.estimated,
            served_by=usage.served_by,
            result=usage.result,
            note=note,
            now=utcnow(),
            expired_before=expired_before,
            lease=lease,
            charge=_charge(self.live.get(charge_id)) if lease is not None else None,
        )
        if expired_before is not None:  # the sweeper: its caller logs and retries
            return await self._finished(step, await self.store.finish(step), cost)
        segment = self._journal(step, self.live.get(charge_id))
        # a caller cancelled while its batch commits (a client leaving: asyncio's cancel
        # passes anyio's shield) leaves the outcome to ``_landed``, as a journaled settle does
        future = self.writer.submit(step, lambda f: self._landed(step, f, segment, cost))
        if (
            segment is not None
            and self.settle_wait == "journal"
            and step.kind == "settle"
            and step.result is None
        ):
            # written down: the commit follows within the writer's next batch, and a process
            # that dies before it is replayed from the journal
            future.add_done_callback(lambda f: self._landed(step, f, segment, cost))
            return Settlement(charge_id, step.cost, True, pending=True)
        try:
            done = await future
        except Exception as exc:  # the database is away: keep it, never drop it
            return self._defer(step, segment, exc)
        held = self.live.pop(charge_id, None)
        try:
            settlement = await self._finished(step, done, cost, held)
        except NotFound:
            self._committed(segment)
            raise
        except Exception as exc:  # gone again midway (a late settle): keep it, as above
            if held is not None:  # what a retry needs to re-create a lost hold
                self.live[charge_id] = held
            return self._defer(step, segment, exc)
        self._committed(segment)
        return settlement

    def _journal(self, step: Finish, held: LiveHold | None) -> Path | None:
        """Write the step down; a journal that cannot be written (a full disk) costs the
        crash safety of this step only: it still commits, and this settle waits for that."""
        if self.journal is None:
            return None
        # a hold a database crash could lose goes with its settle: a replay can re-create it
        # (a leased hold is in no row: its release writes its charge too)
        carried = held is not None and not held.flushed and (step.kind == "settle" or step.lease)
        hold = held.charge if held is not None and carried else None
        try:
            return self.journal.append(step, hold)
        except OSError as exc:
            log.error("journaling %s of %s failed (%s)", step.kind, step.charge_id, exc)
            return None

    def _defer(self, step: Finish, segment: Path | None, exc: BaseException) -> Settlement:
        log.error("%s of %s failed (%s); will retry", step.kind, step.charge_id, exc)
        self._deferred[step.charge_id] = (step, segment)
        return Settlement(step.charge_id, 0, False, deferred=True)

    def _committed(self, segment: Path | None) -> None:
        if segment is not None and self.journal is not None:
            self.journal.committed(segment)

    def _landed(
        self,
        step: Finish,
        future: asyncio.Future[Finished | None],
        segment: Path | None,
        cost: int,
    ) -> None:
        """A journaled settle's batch is done: counted and forgotten, or (not ``held`` any
        more, or the database refused it) handed to the fallback, off the request's path."""
        exc = future.exception()
        if exc is not None:
            self._defer(step, segment, exc)
            return
        done = future.result()
        held = self.live.pop(step.charge_id, None)
        if done is not None:
            self._count_applied(step, done, cost)
            self._committed(segment)
            return

        async def fallback() -> None:
            try:
                await self._finished(step, None, cost, held)
            except NotFound:
                log.error("journaled settle of %s: no such charge", step.charge_id)
            except Exception as exc:
                if held is not None:
                    self.live[step.charge_id] = held
                self._defer(step, segment, exc)
                return
            self._committed(segment)

        task = asyncio.get_running_loop().create_task(fallback())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _finished(
        self, step: Finish, done: Finished | None, cost: int, held: LiveHold | None = None
    ) -> Settlement:
        """What a finish that ran means: counted, or the fallbacks when the charge was no
        longer ``held`` (``held``: this process's record of its hold, if it had one)."""
        charge_id = step.charge_id
        if done is None:  # already settled or released (or, for the sweeper, not expired)
            if step.kind == "settle" and step.expired_before is None:
                late = await self._settle_unheld(step, _charge(held))
                if late is not None:
                    return Settlement(charge_id, late, True)
            existing = await self.store.cost(charge_id)
            if existing is None and step.expired_before is None:
                if held is not None:  # a release of a hold the database lost: nothing held
                    log.warning("the hold of %s was lost by the database", charge_id)
                    return Settlement(charge_id, 0, False)
                raise NotFound(f"no charge {charge_id}")
            return Settlement(charge_id, existing or 0, False)
        self._count_applied(step, done, cost)
        return Settlement(charge_id, done.charged, True)

    @staticmethod
    def _count_applied(step: Finish, done: Finished, cost: int) -> None:
        _count_settled(step, done.model, done.charged)
        if done.charged < cost:
            log.error(
                "charge %s cost %d exceeds its hold %d; charging the hold",
                step.charge_id,
                cost,
                done.held_amount,
            )

    async def _settle_unheld(self, step: Finish, hold: NewCharge | None) -> int | None:
        """A settle whose charge was not ``held``: charged late if the sweeper released it,
        re-created if the database lost it (``hold``: what this process, or the dead one whose
        journal this is, held); None when it was settled or released already."""
        late = await self._settle_late(step)
        if late is None and hold is not None:
            late = await self._settle_lost(step, hold)
        return late

    async def _settle_lost(self, step: Finish, charge: NewCharge) -> int | None:
        """Charge a request whose unflushed hold a database crash lost (``hold(durable=
        False)``): its charge is written again and settled from what the balance has, as a
        late settle is. None if the charge exists (it was not lost)."""
        why = "hold lost by the database" if step.lease is None else "its lease was gone"
        lost = await self.store.settle_lost(charge, step, note=why)
        if lost is None:
            return None
        _count_settled(step, lost.model, lost.charged)
        log.error(
            "charge %s: %s; re-created and settled, %d of %d charged",
            step.charge_id,
            "its hold was lost by the database (a crash)" if step.lease is None else why,
            lost.charged,
            lost.wanted,
        )
        return lost.charged

    async def _settle_late(self, step: Finish) -> int | None:
        """Charge a request whose hold the sweeper released while it still ran.

        The hold no longer guarantees the money, so this takes what the balance still has up
        to the cost (never below zero) and logs any shortfall. None if the charge was not
        expired (it was settled or released by its own request: nothing to do).
        """
        late = await self.store.settle_late(step, note="settled after expiry")
        if late is None:
            return None
        _count_settled(step, late.model, late.charged)
        if late.charged < late.wanted:
            log.error(
                "charge %s settled after its hold expired: %d of %d charged (balance spent)",
                step.charge_id,
                late.charged,
                late.wanted,
            )
        else:
            log.warning("charge %s settled after its hold expired", step.charge_id)
        return late.charged


def _charge(held: LiveHold | None) -> NewCharge | None:
    return None if held is None else held.charge


def _count_settled(step: Finish, model: str, charged: int) -> None:
    """The money and token metrics, counted where money settles, so chat, images and speech
    count alike: once per settle that applied, with the charge's own model."""
    if step.kind != "settle":
        return
    money, prompt, completion = _meters(model)
    money.inc(charged)
    if step.prompt_tokens is not None:
        prompt.inc(step.prompt_tokens)
    if step.completion_tokens is not None:
        completion.inc(step.completion_tokens)


@lru_cache(maxsize=256)
def _meters(model: str) -> tuple[Counter, Counter, Counter]:
    """A model's counters, found once: ``labels()`` takes a lock and a lookup on every call."""
    return CHARGED.labels(model), TOKENS.labels(model, "prompt"), TOKENS.labels(model, "completion")


def _count(value: int | None) -> int | None:
    """A usage count as a 64-bit column takes it (engines validate; this is the backstop)."""
    return None if value is None else max(0, min(value, 2**62))
