"""Leases: a slice of an account's balance held by this process, so a request's hold is a
subtraction in memory instead of a round trip to the database (on SQLite, a transaction of its
own; docs/billing.md).

A lease is a charge of kind ``lease``: opening it holds an amount on the account (``held``
grows, a ``hold`` entry), exactly as a request's hold does, so the database still guarantees
that no process, replica or race holds more than the account has. A request then holds on the
lease in memory while it fits (``Lease.free``). Its settle draws its cost from the lease in the
same statement that writes its charge row, settled (``LedgerStore.finish_many``): the balance
and the lease's hold both shrink by the cost, and the rest of the request's hold is the lease's
to hold again. A release writes the charge released and gives the whole hold back to the lease.

Money the lease holds is never spent twice: in memory, a lease's ``amount`` is what the
database holds for it less the costs of settles already handed to the writer, and a request is
held on it only within ``amount`` less what its running requests hold; every settle can
therefore draw its cost when it lands. A settle that cannot (its lease gone: the sweeper
released it after this process stopped renewing it) re-creates its charge from what the balance
has, as a settle after a crash does (``Finisher._settle_lost``).

A lease is opened only while the account has ``MIN_HOLDS`` such holds available and is never
more than 1/``SHARE`` of that, is given back when it has held nothing for ``IDLE_S``, and when
a request is refused for credit its free part is given back first and the request held again
from the account, so within one process a request is refused only when the money is held by
running requests. Another replica's lease can still hold up to 1/``SHARE`` of an account that
is running out, for up to ``IDLE_S`` after its last request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from minitoolai.ids import hex_id

log = logging.getLogger("minitoolai.ledger")

#: a lease is opened or grown by this many holds of the size asked ...
LEASE_HOLDS = 32
#: ... only while the account has at least this many of them available ...
MIN_HOLDS = 16
#: ... and never by more than this share of what it has available
SHARE = 8
#: a lease that held nothing for this long is given back
IDLE_S = 1.0
#: a lease grown again within this long grows by twice as much as the last time
GROWTH_WINDOW_S = 1.0


class LeaseStore(Protocol):
    """The statements of leases (``store/postgres.py`` and ``store/pg_leases.py``;
    ``store/sqlite.py`` and ``store/sqlite_leases.py``)."""

    async def lease_more(
        self,
        lease_id: str,
        account_id: int,
        need: int,
        want: int,
        share: int,
        now: datetime,
        expires_at: datetime,
        *,
        new: bool,
    ) -> int | None:
        """Hold ``min(want, available // share)`` more for the lease, if the account has at
        least ``need`` available, and move its deadline to ``expires_at``: a new lease's
        charge row and its ``hold`` entry (``new``), or a ``grow`` entry onto one still
        ``held``. Returns what it added, 0 when refused (nothing written), None when the lease
        is no longer ``held``."""
        ...

    async def return_lease(self, lease_id: str, amount: int, now: datetime) -> None:
        """Give ``amount`` of a ``held`` lease back to its account (a ``return`` entry); a lease
        left holding nothing is ``released`` (a ``release`` entry)."""
        ...

    async def renew_leases(self, lease_ids: list[str], deadline: datetime) -> set[str]:
        """Move the deadline of those still ``held``; returns their ids."""
        ...


@dataclass(slots=True, eq=False)
class Lease:
    id: str
    account_id: int
    #: what the database holds for it, less the costs of settles handed to the writer
    amount: int
    #: until when (monotonic) it may hold more: half a hold timeout after its last renewal,
    #: so it is never used near a deadline the sweeper could act on
    good_until: float
    running: int = 0  # what the requests running on it hold
    idle_since: float | None = None
    growing: bool = False  # a growth ahead of need is under way
    grown: int = 0  # its last growth ...
    grown_at: float = 0.0  # ... and when (monotonic)

    @property
    def free(self) -> int:
        return self.amount - self.running


def _growth(lease: Lease, amount: int) -> int:
    """How much to grow ``lease`` by: ``LEASE_HOLDS`` holds of ``amount``, or as much as runs on
    it now, or twice its last growth if that was less than ``GROWTH_WINDOW_S`` ago (so a lease
    the account spends fast soon holds about a window's spending, not a growth per few
    requests). The store caps it at 1/``SHARE`` of what the account has available."""
    want = max(amount * LEASE_HOLDS, lease.running)
    if time.monotonic() - lease.grown_at < GROWTH_WINDOW_S:
        want = max(want, 2 * lease.grown)
    return want


@dataclass(slots=True)
class Leases:
    """This process's leases, one per account at most."""

    store: Callable[[], LeaseStore]  # the ledger's store of the moment (tests swap it)
    hold_timeout: timedelta
    clock: Callable[[], datetime]
    _by_account: dict[int, Lease] = field(default_factory=dict)
    #: one per account while anyone holds or awaits it (weak: an account's lock goes with
    #: its last user, so a process that served many accounts keeps no lock of each)
    _locks: weakref.WeakValueDictionary[int, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary
    )
    _timer: asyncio.TimerHandle | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)  # closings, growths ahead

    def of(self, account_id: int) -> Lease | None:
        return self._by_account.get(account_id)

    async def hold(self, account_id: int, amount: int) -> Lease | None:
        """Hold ``amount`` on the account's lease, opening or growing it if need be; None when
        the account has too little available for a lease (hold from the account instead)."""
        lease = self._by_account.get(account_id)
        if lease is not None and lease.free >= amount and time.monotonic() < lease.good_until:
            return self._take(lease, amount)
        async with self._lock(account_id):
            return await self._hold_slowly(account_id, amount)

    async def _hold_slowly(self, account_id: int, amount: int) -> Lease | None:
        lease = self._by_account.get(account_id)
        if lease is not None:
            if lease.free >= amount and time.monotonic() < lease.good_until:
                return self._take(lease, amount)
            added = await self._more(lease.id, account_id, amount, _growth(lease, amount))
            if added is None:  # swept: its running requests' settles re-create their charges
                log.error("lease %s of account %d was swept while in use", lease.id, account_id)
                del self._by_account[account_id]
            else:
                if added:  # (refused: its deadline did not move, nor does its good_until)
                    self._grew(lease, added)
                fits = lease.free >= amount and time.monotonic() < lease.good_until
                return self._take(lease, amount) if fits else None
        lease_id = "lease_" + hex_id(12)
        held = await self._more(lease_id, account_id, amount, amount * LEASE_HOLDS, new=True)
        if not held:
            return None
        lease = Lease(lease_id, account_id, held, self._good_until())
        self._by_account[account_id] = lease
        return self._take(lease, amount)

    def _take(self, lease: Lease, amount: int) -> Lease:
        lease.running += amount
        lease.idle_since = None
        if lease.free < lease.running // 2 and not lease.growing:
            # running short: grown now, in the background, so that the next requests need
            # not wait for it (at steady concurrency a lease would otherwise hover at full,
            # each request that finds no room waiting for the one before to finish)
            lease.growing = True
            self._spawn(self._grow_ahead(lease, amount))
        return lease

    async def _grow_ahead(self, lease: Lease, amount: int) -> None:
        try:
            async with self._lock(lease.account_id):
                if self._by_account.get(lease.account_id) is not lease:
                    return
                added = await self._more(lease.id, lease.account_id, amount, _growth(lease, amount))
                if added:  # refused (0) or swept (None): the next hold that lacks room sees
                    self._grew(lease, added)
        except Exception as exc:  # the database is away: a hold that lacks room tries again
            log.warning("growing lease %s failed (%s)", lease.id, exc)
        finally:
            lease.growing = False

    async def _more(
        self, lease_id: str, account_id: int, amount: int, want: int, *, new: bool = False
    ) -> int | None:
        """``want`` more for the lease (a new one: ``new``), if the account has ``MIN_HOLDS``
        holds of ``amount`` available; never more than 1/``SHARE`` of that."""
        now = self.clock()
        return await self.store().lease_more(
            lease_id,
            account_id,
            amount * MIN_HOLDS,
            want,
            SHARE,
            now,
            now + self.hold_timeout,
            new=new,
        )

    def _grew(self, lease: Lease, added: int) -> None:
        lease.amount += added
        lease.grown, lease.grown_at = added, time.monotonic()
        lease.good_until = self._good_until()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def spend(self, lease: Lease, held: int, cost: int) -> None:
        """A request on ``lease`` finished: its settle of ``cost`` (0: a release), capped at its
        hold as the store caps it, is handed to the writer."""
        lease.running -= held
        lease.amount -= min(cost, held)
        if lease.running == 0:
            lease.idle_since = time.monotonic()
            self._arm()

    async def give_back(self, account_id: int) -> bool:
        """Before a request is refused for credit: give the free part of the account's lease
        back (and the lease itself, if nothing runs on it), so the account has it. True when
        the account had a lease here: its money may have moved since the refusal (this call
        or a concurrent one gave it back), so the request is worth holding again."""
        async with self._lock(account_id):
            lease = self._by_account.get(account_id)
            if lease is None:
                return False
            if lease.free > 0:
                await self._return(lease, close=lease.running == 0)
            return True

    async def _return(self, lease: Lease, *, close: bool) -> None:
        free = lease.free
        lease.amount -= free  # first: nothing more is held on what goes back
        if close and self._by_account.get(lease.account_id) is lease:
            del self._by_account[lease.account_id]
        if free > 0:
            await self.store().return_lease(lease.id, free, self.clock())

    def _arm(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(IDLE_S, self._close_idle)

    def _close_idle(self) -> None:
        """Give back the leases idle for ``IDLE_S`` (each in a task of its own)."""
        self._timer = None
        now = time.monotonic()
        waiting = False
        for lease in list(self._by_account.values()):
            if lease.running or lease.idle_since is None:
                continue
            if now - lease.idle_since < IDLE_S:
                waiting = True
                continue
            self._spawn(self._close(lease))
        if waiting:
            self._arm()

    async def _close(self, lease: Lease) -> None:
        try:
            async with self._lock(lease.account_id):
                if lease.running == 0 and self._by_account.get(lease.account_id) is lease:
                    await self._return(lease, close=True)
        except Exception as exc:  # the database is away: the sweeper frees it at its deadline
            log.warning("giving lease %s back failed (%s)", lease.id, exc)

    def _lock(self, account_id: int) -> asyncio.Lock:
        lock = self._locks.get(account_id)
        if lock is None:
            lock = self._locks[account_id] = asyncio.Lock()
        return lock

    def _good_until(self) -> float:
        return time.monotonic() + self.hold_timeout.total_seconds() / 2

    async def renew(self, deadline: datetime) -> None:
        """Move every lease's deadline on (``Ledger.renew``); one the sweeper took is dropped."""
        if not self._by_account:
            return
        leases = list(self._by_account.values())
        renewed = await self.store().renew_leases([x.id for x in leases], deadline)
        good_until = self._good_until()
        for lease in leases:
            if lease.id in renewed:
                lease.good_until = good_until
            elif self._by_account.get(lease.account_id) is lease:
                log.error("lease %s was swept while in use", lease.id)
                del self._by_account[lease.account_id]

    async def close(self) -> None:
        """At shutdown: give every lease's free part back (what running requests hold stays
        held until they finish, or the sweeper frees it)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for lease in list(self._by_account.values()):
            try:
                await self._return(lease, close=True)
            except Exception as exc:
                log.warning("giving lease %s back failed (%s)", lease.id, exc)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
