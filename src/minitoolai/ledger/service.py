"""The ledger: every movement of money, each one a row, each one atomic.

Spending is two-phase. ``hold`` reserves a request's worst case with one conditional UPDATE
(``WHERE balance - held >= amount``), so no interleaving of requests, processes or replicas can
reserve more than an account has. ``settle`` turns the hold into the exact cost and frees the
rest; ``release`` frees it all. Both are compare-and-set on the charge's status, so a second
settle, a settle after a release, or a sweeper racing a slow request changes nothing.

Every change to ``accounts.balance``/``accounts.held`` is written in the same transaction as its
``ledger_entries`` row, so the balance is always the sum of the entries. The statements live in
``ledger.store`` (one store per database); this module keeps the rules: which amounts are
allowed, which holds are live, which settlements wait for a retry, and what is logged and counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from minitoolai.clock import utcnow
from minitoolai.errors import Conflict, InsufficientCredit, InvalidRequest, NotFound
from minitoolai.ids import hex_id
from minitoolai.infra.db import Database
from minitoolai.ledger.budgets import (
    PERIODS,
    BudgetRow,
    Budgets,
    PeriodKind,
    counters_for,
    day_of,
    period_key,
    refusal_message,
)
from minitoolai.ledger.finishing import Finisher, LiveHold
from minitoolai.ledger.finishing import Settlement as Settlement  # the ledger's vocabulary
from minitoolai.ledger.finishing import UsageRecord as UsageRecord
from minitoolai.ledger.idempotency import IdempotencyKey, reused_with_another_body
from minitoolai.ledger.journal import Journal
from minitoolai.ledger.leases import Leases, LeaseStore
from minitoolai.ledger.settler import SettleWriter
from minitoolai.ledger.store import (
    CodeCredit,
    Entry,
    LedgerStore,
    NewCharge,
    UsageRow,
    store_for,
)
from minitoolai.ledger.store.base import (
    PaymentCredit,
    RevenueRow,
    TakeBack,
    TakeBackKind,
    TakeBackRefusal,
    UsageCursor,
    UsageFilter,
    UsageSum,
)
from minitoolai.money import MAX_BALANCE, nano_to_usd
from minitoolai.observability import BUDGET_REFUSED, REQUEST_ID

log = logging.getLogger("minitoolai.ledger")

#: A request still running after this long is not renewed any more: its owner lost track of it.
MAX_LIVE_S = 24 * 3600


def _check_note(note: str | None) -> None:
    if note is not None and (len(note) > 500 or not note.isprintable()):
        raise InvalidRequest("a note is at most 500 printable characters", param="note")


def check_amount(amount: int) -> None:
    if amount > MAX_BALANCE:
        raise InvalidRequest(f"an amount is at most US${nano_to_usd(MAX_BALANCE)}", param="amount")


def new_charge_id() -> str:
    return "req_" + hex_id(12)


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

    def stored_answer(self) -> dict[str, Any]:
        """What a replayed request is answered with; a 409 when the first one left none."""
        if isinstance(self.replayed_result, dict):
            return self.replayed_result
        what = {
            "expired": "whose server stopped before it finished",
            "refunded": "that was refunded",
        }.get(self.replayed_status or "", "that was charged but left no answer to replay")
        raise Conflict(
            f"This Idempotency-Key was used by a request {what}; use a new key to try again.",
            code="idempotency_key_used",
        )


class Ledger:
    """The ledger of one process.

    Besides the steps themselves it keeps two things in memory: the holds of requests this
    process is running (renewed by ``maintain`` so the sweeper never frees a live request's
    hold, however long its stream lasts), and settlements the database refused (retried by
    ``maintain`` until they land). A process that dies loses both: its holds then expire and
    the sweeper releases them (docs/billing.md says what that costs).
    """

    def __init__(
        self,
        db: Database,
        *,
        hold_timeout_s: int = 900,
        journal: Journal | None = None,
        settle_wait: Literal["commit", "journal"] = "commit",
        gather_s: float = 0.0,
        leases: bool = True,
    ) -> None:
        self.hold_timeout = timedelta(seconds=hold_timeout_s)
        self._live: dict[str, LiveHold] = {}  # charge id -> when it was held, and what
        #: settles and releases: journaled, then through the group-commit writer
        #: (docs/billing.md), retried when refused (``ledger.finishing``)
        store = store_for(db)
        self.finisher = Finisher(
            SettleWriter(store, gather_s=gather_s),
            self._live,
            journal=journal,
            settle_wait=settle_wait,
        )
        #: slices of balances this process holds requests on in memory (``ledger.leases``),
        #: where the database is a round trip away (PostgreSQL)
        self.leases: Leases | None = None
        if leases and store.supports_leases:
            self.leases = Leases(self._lease_store, self.hold_timeout, utcnow)

    def _lease_store(self) -> LeaseStore:
        return cast(LeaseStore, self.store)  # supports_leases said so

    @property
    def writer(self) -> SettleWriter:
        return self.finisher.writer

    @property
    def journal(self) -> Journal | None:
        return self.finisher.journal

    @property
    def store(self) -> LedgerStore:
        return self.writer.store

    @store.setter
    def store(self, store: LedgerStore) -> None:  # tests put a proxy in front of it
        self.writer.store = store

    @property
    def renew_interval_s(self) -> float:
        """How often ``maintain`` must run: three renewals fit in one hold timeout."""
        return self.hold_timeout.total_seconds() / 3

    async def flush(self) -> None:
        """Wait for every settle handed to the writer (and its fallback) to be tried."""
        await self.finisher.flush()

    async def close(self) -> None:
        await self.flush()
        if self.leases is not None:
            await self.leases.close()
        self.finisher.close()
        await self.store.close()

    async def replay_journals(self) -> int:
        """Apply what processes that died journaled (``Finisher.replay_journals``): at
        start-up, before serving, and in ``maintain``."""
        return await self.finisher.replay_journals()

    # -- credit in ---------------------------------------------------------------------------

    async def top_up(self, account_id: int, amount: int, note: str | None = None) -> int:
        """Add credit ("Ricarica"). Returns the new balance."""
        if amount <= 0:
            raise InvalidRequest("a top-up must be a positive amount", param="amount")
        check_amount(amount)
        _check_note(note)
        balance = await self.store.top_up(
            account_id, amount, cap=MAX_BALANCE, note=note, now=utcnow()
        )
        if balance is None:
            await self._available(account_id)  # a 404 when there is no such account
            raise InvalidRequest(
                f"a balance may not exceed US${nano_to_usd(MAX_BALANCE)}", param="amount"
            )
        return balance

    async def redeem_code(
        self, account_id: int, code_hash: str, now: datetime | None = None
    ) -> CodeCredit | None:
        """Redeem the code with this hash: marked used and its batch's amount credited with a
        ``redeem`` entry naming the batch, in one transaction, only if it is unused and
        unexpired; so however many redeem it at once, it credits once. None when the code is
        unknown, used or expired (nothing written: the caller tells them apart to no one)."""
        credit = await self.store.redeem_code(
            account_id, code_hash, cap=MAX_BALANCE, now=now or utcnow()
        )
        if isinstance(credit, CodeCredit):
            return credit
        if credit == "invalid":
            return None
        await self._available(account_id)  # refused: a 404 when there is no such account
        raise InvalidRequest(
            f"a balance may not exceed US${nano_to_usd(MAX_BALANCE)}", param="code"
        )

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
        idempotency: IdempotencyKey | None = None,
        ttl: timedelta | None = None,
        budgets: Budgets | None = None,
        now: datetime | None = None,
        durable: bool = True,
    ) -> Hold:
        """Reserve ``amount`` or raise ``InsufficientCredit`` (402). Nothing else is touched.

        With ``budgets`` (the caller's ``Principal.budgets``), the hold must also fit under
        every budget of the key and the account for the UTC day and month of ``now``, checked
        in the same atomic step; a refusal is a 402 ``budget_exceeded`` naming the budget.

        A hold with the default timeout belongs to a request this process runs: it is renewed
        until it is settled or released. One with its own ``ttl`` (an image job) is not.
        With ``idempotency``, a retry of an earlier request comes back as that request's
        ``Hold`` (``is_replay``); an earlier one that was released unanswered gives its key up
        to the retry, which then runs as a new request.

        ``durable=False`` (a request this process answers and settles itself, such as a chat
        completion): a plain hold may be answered before the database flushed it; its settle
        makes it durable, and re-creates it if a database crash lost it meanwhile
        (``LedgerStore.hold``, docs/billing.md). A hold with a ``ttl`` is always durable.
        """
        if amount < 0:
            raise ValueError("a hold cannot be negative")
        check_amount(amount)
        at = now or utcnow()
        counters: list[BudgetRow] | None = None
        day: str | None = None
        if budgets is not None:
            day = day_of(at)
            counters = counters_for(budgets, account_id, api_key_id, day)
            for counter in counters:  # more than a cap allows: no need to ask the database
                if counter.cap is not None and amount > counter.cap:
                    raise _over_budget(counter, at)
        leased = (
            self.leases is not None
            and not durable
            and amount > 0
            and ttl is None
            and idempotency is None
            and budgets is None
        )
        lease = await self.leases.hold(account_id, amount) if self.leases and leased else None

        gave_back = False
        for _attempt in range(3):
            charge = NewCharge(
                id=charge_id or new_charge_id(),
                account_id=account_id,
                api_key_id=api_key_id,
                kind=kind,
                model=model,
                amount=amount,
                idempotency_key=idempotency.stored if idempotency else None,
                request_hash=idempotency.fingerprint if idempotency else None,
                now=at,
                expires_at=at + (ttl or self.hold_timeout),
                request_id=REQUEST_ID.get(),  # set per HTTP request by observability.RequestLog
                budgets=counters,
                budget_period=day,
            )
            if lease is not None:  # held in memory: its settle writes the charge
                self._live[charge.id] = LiveHold(time.monotonic(), charge, False, lease)
                return Hold(charge.id, account_id, amount)
            # a request's hold while others are open may be batched with theirs (SQLite)
            flushed = durable or ttl is not None
            outcome = await self.store.hold(charge, company=bool(self._live), durable=flushed)
            if outcome == "held":
                if ttl is None:
                    self._live[charge.id] = LiveHold(time.monotonic(), charge, flushed)
                return Hold(charge.id, account_id, amount)
            if idempotency is not None:
                earlier = await self._by_idempotency(account_id, idempotency)
                if earlier is not None:
                    return earlier
            if isinstance(outcome, BudgetRow):
                raise _over_budget(outcome, at)
            if outcome == "insufficient":
                # this process's lease of the account gives its free part back first (for
                # any hold: an image's too): refused only if running requests hold the money
                if self.leases is None or gave_back:
                    break
                gave_back = True
                if not await self.leases.give_back(account_id):
                    break
                continue
            # "duplicate": the earlier request vanished or gave its key up: hold again
        available = await self._available(account_id)
        raise InsufficientCredit(
            f"Insufficient credit: this request may cost up to "
            f"US${nano_to_usd(amount)} and the available balance is "
            f"US${nano_to_usd(available)}. Top up the account, or ask for fewer "
            f"tokens (max_completion_tokens)."
        )

    async def budget_spend(
        self, scope: str, scope_id: int, now: datetime | None = None
    ) -> dict[PeriodKind, tuple[int, int]]:
        """(spent, held) of a key's or account's budget counters in the periods of ``now``
        (counted while it has a budget; (0, 0) for a period with nothing counted)."""
        day = day_of(now or utcnow())
        keys = {kind: period_key(kind, day) for kind in PERIODS}
        found = await self.store.budget_spend(scope, scope_id, list(keys.values()))
        return {kind: found.get(key, (0, 0)) for kind, key in keys.items()}

    async def available(self, account_id: int) -> int:
        """What the account can spend now (balance less holds): a pre-check, not a promise."""
        return await self._available(account_id)

    async def settle(
        self, charge_id: str, cost: int, usage: UsageRecord | None = None
    ) -> Settlement:
        """Charge the exact ``cost`` (capped at the hold) and free the rest of the hold.

        A settlement never gets lost: if the database cannot take it now, it is kept and
        retried by ``maintain`` (the hold stays renewed meanwhile); if the sweeper released
        the hold first, the cost is still charged, as far as the balance allows.
        """
        if cost < 0:
            raise ValueError("a cost cannot be negative")
        lease = self._spend(charge_id, cost)
        return await self.finisher.finish(
            charge_id, "settle", cost, usage or UsageRecord(), lease=lease
        )

    async def release(self, charge_id: str, usage: UsageRecord | None = None) -> Settlement:
        """Free the whole hold: the request failed or was cancelled, the client pays nothing."""
        lease = self._spend(charge_id, 0)
        return await self.finisher.finish(
            charge_id, "release", 0, usage or UsageRecord(), lease=lease
        )

    def _spend(self, charge_id: str, cost: int) -> str | None:
        """A request held on a lease finishes: the lease gets its hold back, less ``cost``
        (once, however often it is finished). The lease's id, or None for a hold in a row."""
        live = self._live.get(charge_id)
        if live is None or live.lease is None:
            return None
        if not live.spent and self.leases is not None:
            live.spent = True
            self.leases.spend(live.lease, live.charge.amount, cost)
        return live.lease.id

    async def maintain(self) -> None:
        """Renew this process's live holds, then retry deferred settlements and replay the
        journals of processes that died (``renew`` and ``catch_up``, one after the other)."""
        await self.renew()
        await self.catch_up()

    async def catch_up(self) -> None:
        """Retry deferred settlements; replay the journals of processes that died (a dead
        replica's journal may hold hundreds of settles: one transaction each)."""
        await self.finisher.retry_deferred()
        await self.finisher.replay_journals()

    async def renew(self) -> None:
        """Move this process's live holds' deadlines a hold timeout on (every
        ``renew_interval_s``: the app's lifespan runs it, apart from ``catch_up``, so a long
        replay never delays it past a deadline)."""
        now = time.monotonic()
        for charge_id, live in list(self._live.items()):
            # (one on a lease is renewed with its lease; its settle needs what is kept here)
            if now - live.since > MAX_LIVE_S and live.lease is None:
                log.error("hold %s has been live for a day; no longer renewed", charge_id)
                del self._live[charge_id]
        deadline = utcnow() + self.hold_timeout
        if self.leases is not None:
            await self.leases.renew(deadline)
        rows = [charge_id for charge_id, live in self._live.items() if live.lease is None]
        if rows:
            await self.store.renew(rows, deadline)

    async def hand_over(self, charge_id: str, ttl: timedelta) -> None:
        """A live hold becomes a durable one, kept for ``ttl``: its work now outlives this
        process (an image job is queued, and the queue's reaper answers for it). Until this
        call the hold is renewed by this process and swept if it dies. Only for a ``durable``
        hold: whoever finishes the job cannot re-create a lost one."""
        await self.store.renew([charge_id], utcnow() + ttl)
        self._live.pop(charge_id, None)

    @property
    def live_holds(self) -> int:
        return len(self._live)

    async def set_result(self, charge_id: str, result: Any) -> None:
        """Remember what an idempotent retry of this charge is answered with."""
        await self.store.set_result(charge_id, result)

    async def refund(self, charge_id: str, note: str | None = None) -> int:
        """Give back a settled charge, once. Returns the amount refunded (0 if already done)."""
        return await self.store.refund(charge_id, note, utcnow()) or 0

    async def sweep_expired(self, now: datetime | None = None) -> int:
        """Release holds whose deadline passed: the process that made them died.

        Image holds are left to the job queue, which knows whether their job is still alive.
        """
        now = now or utcnow()
        released = 0
        for charge_id in await self.store.expired(now, limit=1000):
            done = await self.finisher.finish(
                charge_id, "release", 0, UsageRecord(), note="hold expired", expired_before=now
            )
            released += done.applied
        if released:
            log.warning("released %d expired holds", released)
        return released

    # -- reading -----------------------------------------------------------------------------

    async def balances(self, account_id: int) -> tuple[int, int]:
        """The account's (balance, held)."""
        found = await self.store.balances(account_id)
        if found is None:
            raise NotFound("no such account")
        return found

    async def entry_sums(self, account_id: int) -> tuple[int, int]:
        """The balance and held amount as the entries add them up (for audits and tests)."""
        return await self.store.entry_sums(account_id)

    async def recent_entries(self, account_id: int, limit: int = 20) -> list[Entry]:
        """The account's latest ledger entries, newest first."""
        return await self.store.entries(account_id, limit)

    async def open_holds(self, account_id: int) -> int:
        """How many of the account's requests hold money now (on leases: this process's)."""
        leased = sum(
            1
            for live in self._live.values()
            if live.lease is not None and not live.spent and live.charge.account_id == account_id
        )
        return await self.store.open_holds(account_id) + leased

    async def usage(self, account_id: int, limit: int = 50) -> list[UsageRow]:
        """The account's latest finished charges, newest first."""
        return await self.store.usage(account_id, limit)

    # -- internals ---------------------------------------------------------------------------

    async def _available(self, account_id: int) -> int:
        available = await self.store.available(account_id)
        if available is None:
            raise NotFound("no such account")
        lease = None if self.leases is None else self.leases.of(account_id)
        # what this process's lease holds free is the account's to spend here
        return available + (0 if lease is None else max(0, lease.free))

    async def _by_idempotency(self, account_id: int, key: IdempotencyKey) -> Hold | None:
        """The earlier request with this key, to answer a retry with; None if there is none
        (or it was released unanswered and has just given its key up)."""
        earlier = await self.store.by_key(account_id, key.stored)
        if earlier is None:
            return None
        if earlier.request_hash != key.fingerprint:
            raise reused_with_another_body()
        if earlier.status == "held" and earlier.result is None:
            raise Conflict(
                "A request with this Idempotency-Key is still in progress; retry later.",
                code="idempotency_in_progress",
            )
        if earlier.status == "released" and earlier.result is None:  # failed, nothing charged
            await self.store.free_key(earlier.id)
            return None
        return Hold(earlier.id, account_id, earlier.held_amount, earlier.status, earlier.result)

    # -- the operator's console (issue 14) ---------------------------------------------------

    async def adjust(self, account_id: int, amount: int, note: str) -> int:
        """An operator's correction, with a required note: a positive amount is a top-up, a
        negative one a debit (an ``adjustment`` entry) that never takes the balance below what
        is held, so never below zero (one conditional UPDATE). Returns the new balance."""
        if not note or not note.strip():
            raise InvalidRequest("an adjustment needs a note saying why", param="note")
        if amount == 0:
            raise InvalidRequest("an adjustment is a non-zero amount", param="amount")
        if amount > 0:
            return await self.top_up(account_id, amount, note)
        check_amount(-amount)
        _check_note(note)
        balance = await self.store.debit(account_id, -amount, note=note, now=utcnow())
        if balance is None:
            available = await self._available(account_id)  # a 404 when there is no such account
            raise InvalidRequest(
                f"a debit of US${nano_to_usd(-amount)} is more than the available balance "
                f"(US${nano_to_usd(available)}: the balance less what is held)",
                param="amount",
                code="insufficient_available",
            )
        log.info("account %d debited US$%s by an operator", account_id, nano_to_usd(-amount))
        return balance

    async def revenue(self, since: datetime) -> list[RevenueRow]:
        """Settled charges since ``since`` across accounts, per UTC day and model."""
        return await self.store.revenue(since)

    # -- card payments (Stripe) --------------------------------------------------------------

    async def pay_order(
        self,
        order_id: str,
        session_id: str,
        *,
        amount_minor: int,
        currency: str,
        payment_intent: str | None,
        now: datetime | None = None,
    ) -> PaymentCredit | None:
        """Credit a paid order: marked ``paid`` and its amount credited with a ``payment``
        entry naming the order and session, in one transaction, only if it is still unpaid and
        its session, amount and currency are these; so each session credits once however often
        Stripe delivers it. None when it was credited before."""
        got = await self.store.pay_order(
            order_id,
            session_id,
            amount_minor=amount_minor,
            currency=currency,
            payment_intent=payment_intent,
            cap=MAX_BALANCE,
            now=now or utcnow(),
        )
        if isinstance(got, PaymentCredit):
            log.info(
                "order %s paid: US$%s credited to account %d",
                order_id,
                nano_to_usd(got.amount),
                got.account_id,
            )
            return got
        if got == "done":
            return None
        log.error("order %s was paid but its credit would pass the balance cap", order_id)
        raise InvalidRequest(f"a balance may not exceed US${nano_to_usd(MAX_BALANCE)}")

    async def take_back_payment(
        self,
        event_id: str,
        event_type: str,
        payment_intent: str,
        kind: TakeBackKind,
        minor: int,
        now: datetime | None = None,
    ) -> TakeBack | TakeBackRefusal:
        """Take a refunded or disputed card payment's credit back, once per Stripe event, as far
        as the balance goes: it never goes below zero (nor below its holds). What could not be
        taken is kept on the order (``shortfall``) and logged as an error for the operator."""
        got = await self.store.take_back(
            event_id, event_type, payment_intent, kind, minor, now=now or utcnow()
        )
        if isinstance(got, TakeBack):
            log.warning(
                "card %s of order %s: US$%s taken back from account %d",
                kind,
                got.order_id,
                nano_to_usd(got.taken),
                got.account_id,
            )
            if got.shortfall:
                log.error(
                    "card %s of order %s: US$%s could not be taken back from account %d, whose"
                    " balance had been spent (kept as the order's shortfall)",
                    kind,
                    got.order_id,
                    nano_to_usd(got.shortfall),
                    got.account_id,
                )
        return got

    async def top_up_history(self, account_id: int, limit: int = 100) -> list[Entry]:
        """The account's credits (top-ups, codes, card payments) and card take-backs, newest
        first."""
        return await self.store.credit_entries(account_id, limit)

    # -- usage reports (the storefront's dashboard and /usage) ---------------------------------

    async def spent(self, account_id: int, since: datetime) -> int:
        """What the account paid for the requests it made since ``since``: the exact sum of
        its settled charges' costs (refunded ones were given back; released ones cost nothing)."""
        return await self.store.spent(account_id, since)

    async def usage_rows(
        self,
        account_id: int,
        where: UsageFilter,
        limit: int = 50,
        before: UsageCursor | None = None,
    ) -> list[UsageRow]:
        """A page of the account's finished charges under ``where``, newest first."""
        return await self.store.usage_rows(account_id, where, limit, before)

    async def usage_export(
        self, account_id: int, where: UsageFilter, batch: int = 1000
    ) -> AsyncIterator[UsageRow]:
        """Every finished charge under ``where``, newest first, read ``batch`` rows at a time
        (so a big account's export never sits in memory whole)."""
        before: UsageCursor | None = None
        while True:
            rows = await self.store.usage_rows(account_id, where, batch, before)
            for row in rows:
                yield row
            if len(rows) < batch:
                return
            before = UsageCursor(rows[-1].created_at, rows[-1].id)

    async def usage_by_day(
        self, account_id: int, where: UsageFilter, limit: int = 92
    ) -> list[UsageSum]:
        """``where``'s requests and spending per UTC day, the newest ``limit`` days first."""
        return await self.store.usage_by_day(account_id, where, limit)

    async def usage_by_model(
        self, account_id: int, where: UsageFilter, limit: int = 50
    ) -> list[UsageSum]:
        """``where``'s requests and spending per model, the costliest first."""
        return await self.store.usage_by_model(account_id, where, limit)


def _over_budget(counter: BudgetRow, now: datetime) -> InsufficientCredit:
    """The 402 of a hold a budget refused: OpenAI's ``insufficient_quota`` type (what a client
    already handles as "no money left"), with its own code and which budget it was."""
    log.debug(  # a client hammering past its budget must not flood the log: the metric counts
        "hold refused by the %s %s budget of %d", counter.scope, counter.kind, counter.scope_id
    )
    BUDGET_REFUSED.labels(counter.scope, counter.kind).inc()
    return InsufficientCredit(refusal_message(counter, now), code="budget_exceeded")
