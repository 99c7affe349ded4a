"""The ledger: every movement of money, each one a row, each one atomic.

Spending is two-phase. ``hold`` reserves a request's worst case with one conditional UPDATE
(``WHERE balance - held >= amount``), so no interleaving of requests, processes or replicas can
reserve more than an account has. ``settle`` turns the hold into the exact cost and frees the
rest; ``release`` frees it all. Both are compare-and-set on the charge's status, so a second
settle, a settle after a release, or a sweeper racing a slow request changes nothing.

Every change to ``accounts.balance``/``accounts.held`` is written in the same transaction as its
``ledger_entries`` row, so the balance is always the sum of the entries.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from minitoolai.clock import utcnow
from minitoolai.errors import Conflict, InsufficientCredit, InvalidRequest, NotFound
from minitoolai.infra.db import Database
from minitoolai.infra.tables import accounts, charges, ledger_entries
from minitoolai.ledger.store import Finish, LedgerStore, NewCharge, store_for
from minitoolai.money import nano_to_usd

log = logging.getLogger("minitoolai.ledger")


def _check_note(note: str | None) -> None:
    if note is not None and (len(note) > 500 or not note.isprintable()):
        raise InvalidRequest("a note is at most 500 printable characters", param="note")


def new_charge_id() -> str:
    return "req_" + secrets.token_hex(12)


@dataclass(slots=True)
class Hold:
    charge_id: str
    account_id: int
    amount: int
    #: for an idempotent retry: the earlier charge's status and stored result
    replayed_status: str | None = None
    replayed_result: Any = None

    @property
    def is_replay(self) -> bool:
        return self.replayed_status is not None


@dataclass(slots=True)
class Settlement:
    charge_id: str
    cost: int
    #: False when the charge was already settled or released before this call
    applied: bool


@dataclass(slots=True)
class UsageRecord:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    units: int | None = None
    estimated: bool = False
    served_by: str | None = None
    result: Any = None


class Ledger:
    def __init__(self, db: Database, *, hold_timeout_s: int = 900) -> None:
        self.db = db
        self.hold_timeout = timedelta(seconds=hold_timeout_s)
        self.store: LedgerStore = store_for(db.url, db.write_lock)

    async def close(self) -> None:
        await self.store.close()

    # -- credit in ---------------------------------------------------------------------------

    async def top_up(self, account_id: int, amount: int, note: str | None = None) -> int:
        """Add credit ("Ricarica"). Returns the new balance."""
        if amount <= 0:
            raise InvalidRequest("a top-up must be a positive amount", param="amount")
        _check_note(note)
        async with self.db.write() as conn:
            balance = await self._move(conn, account_id, amount, 0)
            await self._entry(conn, account_id, None, "topup", amount, 0, note)
        return balance

    async def adjust(self, account_id: int, delta: int, note: str | None = None) -> int:
        """An operator's correction, either sign; never takes the balance below what is held."""
        if delta == 0:
            raise InvalidRequest("an adjustment must not be zero", param="amount")
        _check_note(note)
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    update(accounts)
                    .where(
                        accounts.c.id == account_id, accounts.c.balance + delta >= accounts.c.held
                    )
                    .values(balance=accounts.c.balance + delta)
                    .returning(accounts.c.balance)
                )
            ).first()
            if row is None:
                await self._require_account(conn, account_id)
                raise InsufficientCredit("the adjustment would take the balance below zero")
            await self._entry(conn, account_id, None, "adjustment", delta, 0, note)
        return int(row[0])

    # -- spending ----------------------------------------------------------------------------

    async def hold(
        self,
        account_id: int,
        amount: int,
        *,
        kind: str,
        model: str,
        api_key_id: int | None = None,
        charge_id: str | None = None,
        idempotency_key: str | None = None,
        ttl: timedelta | None = None,
    ) -> Hold:
        """Reserve ``amount`` or raise ``InsufficientCredit`` (402). Nothing else is touched."""
        if amount < 0:
            raise ValueError("a hold cannot be negative")
        charge_id = charge_id or new_charge_id()
        now = utcnow()
        outcome = await self.store.hold(
            NewCharge(
                id=charge_id,
                account_id=account_id,
                api_key_id=api_key_id,
                kind=kind,
                model=model,
                amount=amount,
                idempotency_key=idempotency_key,
                now=now,
                expires_at=now + (ttl or self.hold_timeout),
            )
        )
        if outcome == "held":
            return Hold(charge_id, account_id, amount)
        if idempotency_key is not None:  # a retry: answer with the earlier request
            async with self.db.read() as conn:
                earlier = await self._by_idempotency(conn, account_id, idempotency_key)
            if earlier is not None:
                return earlier
        if outcome == "duplicate":  # the earlier one vanished between our two reads: retry
            return await self.hold(
                account_id,
                amount,
                kind=kind,
                model=model,
                api_key_id=api_key_id,
                charge_id=charge_id,
                idempotency_key=idempotency_key,
                ttl=ttl,
            )
        async with self.db.read() as conn:
            available = await self._available(conn, account_id)
        raise InsufficientCredit(
            f"Insufficient credit: this request may cost up to "
            f"US${nano_to_usd(amount)} and the available balance is "
            f"US${nano_to_usd(available)}. Top up the account, or ask for fewer "
            f"tokens (max_completion_tokens)."
        )

    async def settle(
        self, charge_id: str, cost: int, usage: UsageRecord | None = None
    ) -> Settlement:
        """Charge the exact ``cost`` (capped at the hold) and free the rest of the hold."""
        if cost < 0:
            raise ValueError("a cost cannot be negative")
        return await self._finish(charge_id, "settle", cost, usage or UsageRecord())

    async def release(self, charge_id: str, usage: UsageRecord | None = None) -> Settlement:
        """Free the whole hold: the request failed or was cancelled, the client pays nothing."""
        return await self._finish(charge_id, "release", 0, usage or UsageRecord())

    async def extend(self, charge_id: str, ttl: timedelta) -> bool:
        """Push a live hold's deadline out (long jobs heartbeat through this)."""
        async with self.db.write() as conn:
            res = await conn.execute(
                update(charges)
                .where(charges.c.id == charge_id, charges.c.status == "held")
                .values(expires_at=utcnow() + ttl)
            )
        return bool(res.rowcount)

    async def set_result(self, charge_id: str, result: Any) -> None:
        """Remember what an idempotent retry of this charge is answered with."""
        async with self.db.write() as conn:
            await conn.execute(
                update(charges).where(charges.c.id == charge_id).values(result=result)
            )

    async def refund(self, charge_id: str, note: str | None = None) -> int:
        """Give back a settled charge, once. Returns the amount refunded (0 if already done)."""
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    update(charges)
                    .where(charges.c.id == charge_id, charges.c.status == "settled")
                    .values(status="refunded")
                    .returning(charges.c.account_id, charges.c.cost)
                )
            ).first()
            if row is None:
                return 0
            account_id, cost = int(row[0]), int(row[1] or 0)
            if cost:
                await self._move(conn, account_id, cost, 0)
            await self._entry(conn, account_id, charge_id, "refund", cost, 0, note)
        return cost

    async def sweep_expired(self, now: datetime | None = None) -> int:
        """Release holds whose deadline passed: the process that made them died.

        Image holds are left to the job queue, which knows whether their job is still alive.
        """
        now = now or utcnow()
        async with self.db.read() as conn:
            ids = (
                (
                    await conn.execute(
                        select(charges.c.id)
                        .where(charges.c.status == "held", charges.c.expires_at < now)
                        .limit(1000)
                    )
                )
                .scalars()
                .all()
            )
        released = 0
        for charge_id in ids:
            done = await self._finish(
                charge_id, "release", 0, UsageRecord(), note="hold expired", expired_before=now
            )
            released += done.applied
        if released:
            log.warning("released %d expired holds", released)
        return released

    # -- reading -----------------------------------------------------------------------------

    async def balances(self, account_id: int) -> tuple[int, int]:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(accounts.c.balance, accounts.c.held).where(accounts.c.id == account_id)
                )
            ).first()
        if row is None:
            raise NotFound("no such account")
        return int(row[0]), int(row[1])

    async def entry_sums(self, account_id: int) -> tuple[int, int]:
        """The balance and held amount as the entries add them up (for audits and tests)."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        func.coalesce(func.sum(ledger_entries.c.amount), 0),
                        func.coalesce(func.sum(ledger_entries.c.held), 0),
                    ).where(ledger_entries.c.account_id == account_id)
                )
            ).one()
        return int(row[0]), int(row[1])

    # -- internals ---------------------------------------------------------------------------

    async def _finish(
        self,
        charge_id: str,
        kind: str,
        cost: int,
        usage: UsageRecord,
        *,
        note: str | None = None,
        expired_before: datetime | None = None,
    ) -> Settlement:
        done = await self.store.finish(
            Finish(
                charge_id=charge_id,
                kind="settle" if kind == "settle" else "release",
                cost=cost,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                units=usage.units,
                estimated=usage.estimated,
                served_by=usage.served_by,
                result=usage.result,
                note=note,
                now=utcnow(),
                expired_before=expired_before,
            )
        )
        if done is None:  # already settled or released (or, for the sweeper, not expired)
            async with self.db.read() as conn:
                existing = (
                    await conn.execute(select(charges.c.cost).where(charges.c.id == charge_id))
                ).first()
            if existing is None and expired_before is None:
                raise NotFound(f"no charge {charge_id}")
            return Settlement(charge_id, int(existing[0] or 0) if existing else 0, False)
        charged = done.charged
        if charged < cost:
            log.error(
                "charge %s cost %d exceeds its hold %d; charging the hold",
                charge_id,
                cost,
                done.held_amount,
            )
        return Settlement(charge_id, charged, True)

    async def _move(self, conn: AsyncConnection, account_id: int, amount: int, held: int) -> int:
        row = (
            await conn.execute(
                update(accounts)
                .where(accounts.c.id == account_id)
                .values(balance=accounts.c.balance + amount, held=accounts.c.held + held)
                .returning(accounts.c.balance)
            )
        ).first()
        if row is None:
            raise NotFound("no such account")
        return int(row[0])

    async def _entry(
        self,
        conn: AsyncConnection,
        account_id: int,
        charge_id: str | None,
        kind: str,
        amount: int,
        held: int,
        note: str | None,
        now: datetime | None = None,
    ) -> None:
        await conn.execute(
            insert(ledger_entries).values(
                account_id=account_id,
                charge_id=charge_id,
                kind=kind,
                amount=amount,
                held=held,
                note=note,
                created_at=now or utcnow(),
            )
        )

    async def _available(self, conn: AsyncConnection, account_id: int) -> int:
        row = (
            await conn.execute(
                select(accounts.c.balance - accounts.c.held).where(accounts.c.id == account_id)
            )
        ).first()
        if row is None:
            raise NotFound("no such account")
        return int(row[0])

    async def _require_account(self, conn: AsyncConnection, account_id: int) -> None:
        await self._available(conn, account_id)

    async def _by_idempotency(
        self, conn: AsyncConnection, account_id: int, key: str
    ) -> Hold | None:
        row = (
            await conn.execute(
                select(
                    charges.c.id, charges.c.held_amount, charges.c.status, charges.c.result
                ).where(charges.c.account_id == account_id, charges.c.idempotency_key == key)
            )
        ).first()
        if row is None:
            return None
        if row.status == "held" and row.result is None:
            raise Conflict(
                "A request with this Idempotency-Key is still in progress; retry later.",
                code="idempotency_in_progress",
            )
        return Hold(row.id, account_id, int(row.held_amount), row.status, row.result)
