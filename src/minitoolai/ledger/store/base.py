"""What the ledger asks of its database: the rows it passes and gets back, and the one interface
both stores (``sqlite.py``, ``postgres.py``) implement.

Every statement that touches ``accounts.balance``/``accounts.held``, ``charges`` or
``ledger_entries`` is a method here, so the rules in ``ledger.service`` never see SQL. A store
keeps the ledger's invariant in each method: every change to an account's money is written in the
same transaction as its ``ledger_entries`` row. A store never reads the clock: the service passes
every timestamp in, so one clock (and one fake clock in tests) decides every deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from minitoolai.ledger.budgets import BudgetRow

HoldOutcome = Literal["held", "insufficient", "duplicate"]
#: why a code credited nothing: no such code, used or expired (``invalid``); no such account,
#: or its balance would pass the cap (``refused``)
CodeRefusal = Literal["invalid", "refused"]
#: charges renewed per statement (SQLite's bound-parameter limit; short row locks on PostgreSQL)
RENEW_BATCH = 500


@dataclass(slots=True)
class NewCharge:
    id: str
    account_id: int
    api_key_id: int | None
    kind: str
    model: str
    amount: int
    idempotency_key: str | None
    request_hash: str | None
    now: datetime
    expires_at: datetime
    request_id: str | None = None  # the HTTP request's ``x-request-id``
    #: spend budgets (``ledger.budgets``): the counters this hold must fit under, and the UTC
    #: day it belongs to (kept on the charge, so its settle moves that day's counters); None
    #: for a caller without budgets, whose hold is the one statement it always was
    budgets: list[BudgetRow] | None = None
    budget_period: str | None = None


@dataclass(slots=True)
class Finish:
    """A settle or release of one held charge (``expired_before``: the sweeper's release)."""

    charge_id: str
    kind: Literal["settle", "release"]
    cost: int
    prompt_tokens: int | None
    completion_tokens: int | None
    units: int | None
    estimated: bool
    served_by: str | None
    result: Any
    note: str | None
    now: datetime
    expired_before: datetime | None = None
    #: a request held on a lease (``ledger.leases``): the lease, and the request's hold, whose
    #: charge row this step writes (settled or released) as it draws the cost from the lease
    lease: str | None = None
    charge: NewCharge | None = None

    @property
    def status(self) -> str:
        if self.kind == "settle":
            return "settled"
        return "released" if self.expired_before is None else "expired"


#: releases of holds whose callers left while they waited in a batch (kept from the GC)
_LEFT: set[asyncio.Task[Any]] = set()


def release_if_held(store: LedgerStore, charge: NewCharge) -> Callable[[asyncio.Future[Any]], None]:
    """The ``orphaned`` handler of a batched hold (``GroupCommit.submit``): a hold its batch
    took after its caller left is released at once (nobody will settle it), not left held
    until the sweeper."""

    def orphaned(outcome: asyncio.Future[Any]) -> None:
        if outcome.exception() is not None or outcome.result() != "held":
            return
        # at the hold's own time: the store takes every timestamp from its caller
        now = charge.now
        step = Finish(charge.id, "release", 0, None, None, None, False, None, None, None, now)
        task = asyncio.get_running_loop().create_task(store.finish(step), name="release-left-hold")
        _LEFT.add(task)
        task.add_done_callback(_LEFT.discard)

    return orphaned


@dataclass(slots=True)
class Finished:
    """A finish that applied: what it moved, and the charge's model (for the money metrics)."""

    account_id: int
    held_amount: int
    charged: int
    model: str


@dataclass(slots=True)
class LateSettled:
    """A settle of a charge whose hold the sweeper had released."""

    account_id: int
    wanted: int  # the cost, capped at the hold
    charged: int  # what the balance still had of it
    model: str


@dataclass(slots=True)
class KeyedCharge:
    """The charge an idempotency key names, as a retry of its request needs it."""

    id: str
    held_amount: int
    status: str
    result: Any
    request_hash: str | None


@dataclass(slots=True)
class CodeCredit:
    """A redeemed code: what it credited, from which batch, and the account's balance after."""

    batch_id: str
    amount: int
    balance: int


def redeem_note(batch_id: str, last4: str) -> str:
    """The ``redeem`` entry's note: it names the batch (and which code, by its last 4)."""
    return f"code ...{last4} of {batch_id}"


@dataclass(slots=True)
class Entry:
    kind: str
    amount: int
    held: int
    charge_id: str | None
    note: str | None
    created_at: datetime


@dataclass(slots=True)
class UsageRow:
    """One finished charge, as the usage listing shows it."""

    id: str
    kind: str
    model: str
    served_by: str | None
    status: str
    prompt_tokens: int | None
    completion_tokens: int | None
    units: int | None
    estimated: bool
    cost: int
    created_at: datetime
    request_id: str | None


# -- card payments (Stripe) ------------------------------------------------------------------

#: why a paid session credited nothing: it already had (``done``: a retry, or a race it lost);
#: the balance would pass the cap or there is no account (``refused``; nothing written)
PaymentRefusal = Literal["done", "refused"]
#: why a refund or dispute took nothing back: its event was applied before (``seen``); no order
#: has that payment (``unknown``); the order is not paid yet (``unpaid``; nothing written)
TakeBackRefusal = Literal["seen", "unknown", "unpaid"]
TakeBackKind = Literal["refund", "dispute"]
#: the entries a person's top-up history lists (money in, and card money taken back)
CREDIT_KINDS = ("topup", "redeem", "payment", "payment_refund", "payment_dispute")


@dataclass(slots=True)
class PaymentCredit:
    """A paid order credited: to whom, how much, and the account's balance after."""

    order_id: str
    account_id: int
    amount: int
    balance: int


@dataclass(slots=True)
class TakeBack:
    """A refund or dispute applied to an order: what it asked back and what the balance gave."""

    order_id: str
    account_id: int
    wanted: int  # nano-dollars
    taken: int  # what the balance could give (never below zero, never below its holds)
    status: str  # the order's, after

    @property
    def shortfall(self) -> int:
        return self.wanted - self.taken


@dataclass(slots=True)
class TakeBackPlan:
    """What one refund or dispute asks of an order, in cents, and the order's totals after."""

    minor: int
    refunded_minor: int
    disputed_minor: int
    status: str


def plan_take_back(
    kind: TakeBackKind,
    minor: int,
    *,
    amount_minor: int,
    refunded_minor: int,
    disputed_minor: int,
    status: str,
) -> TakeBackPlan:
    """The rule both stores apply with the order locked. A refund event carries Stripe's running
    total of the charge's refunds (``amount_refunded``), so it asks for the part not taken yet
    (a partial refund, then the rest); a dispute asks for its amount. Together they never ask
    for more than was paid. A dispute marks the order ``disputed``; a refund of all of it
    ``refunded``; a partial refund leaves it ``paid``."""
    room = max(0, amount_minor - refunded_minor - disputed_minor)
    if kind == "refund":
        total = max(refunded_minor, min(minor, amount_minor))
        ask = min(total - refunded_minor, room)
        after = "refunded" if total >= amount_minor and status == "paid" else status
        return TakeBackPlan(ask, total, disputed_minor, after)
    ask = min(max(0, minor), room)
    return TakeBackPlan(ask, refunded_minor, disputed_minor + ask, "disputed")


def payment_note(order_id: str, session_id: str) -> str:
    """The ``payment`` entry's note: it names the order and its Checkout Session."""
    return f"card payment {order_id} (Stripe {session_id})"


def take_back_note(
    kind: TakeBackKind, order_id: str, event_id: str, wanted: int, taken: int
) -> str:
    note = f"card {kind} of {order_id} (Stripe {event_id})"
    if taken < wanted:
        note += f": {wanted - taken} nano-dollars could not be taken back"
    return note


@dataclass(slots=True)
class RevenueRow:
    """What settled charges of one model brought in on one UTC day (``YYYY-MM-DD``)."""

    day: str
    model: str
    count: int
    cost: int
    prompt_tokens: int
    completion_tokens: int
    units: int


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Which of an account's finished charges a usage listing, sum or export covers; each field
    narrows it when set. ``since`` is inclusive, ``until`` exclusive (both on ``created_at``)."""

    model: str | None = None
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class UsageCursor:
    """Where a page of usage ends: the next page is the rows older than this one."""

    created_at: datetime
    id: str


@dataclass(slots=True)
class UsageSum:
    """Finished charges added up under one label (a UTC day ``YYYY-MM-DD``, or a model):
    how many, and what was paid for them (the costs of the ``settled`` ones)."""

    label: str
    requests: int
    cost: int


class LedgerStore(Protocol):
    #: implements ``ledger.leases.LeaseStore`` too (PostgreSQL)
    supports_leases: bool

    # -- credit in ---------------------------------------------------------------------------

    async def top_up(
        self, account_id: int, amount: int, *, cap: int, note: str | None, now: datetime
    ) -> int | None:
        """Add ``amount`` to the balance with a ``topup`` entry; the new balance, or None when
        the account does not exist or its balance would pass ``cap`` (nothing written)."""
        ...

    async def redeem_code(
        self, account_id: int, code_hash: str, *, cap: int, now: datetime
    ) -> CodeCredit | CodeRefusal:
        """In one transaction: mark the code with this hash used by the account, if it is
        unused and its batch unexpired at ``now``, and credit the batch's amount with a
        ``redeem`` entry naming the batch (``redeem_note``); the code row keeps the entry's id.
        ``invalid`` or ``refused`` (balance past ``cap``, no account) write nothing."""
        ...

    # -- spending ----------------------------------------------------------------------------

    async def hold(
        self, charge: NewCharge, *, company: bool = False, durable: bool = True
    ) -> HoldOutcome | BudgetRow:
        """Reserve ``charge.amount`` if the account has it available, with the charge row and
        a ``hold`` entry; ``duplicate`` when its idempotency key is taken (nothing written).
        With ``charge.budgets``, in the same transaction every counter's ``held`` grows by the
        amount only if ``spent + held + amount <= cap``; the first counter that refuses is
        returned and nothing is written. ``company``: other requests of this process hold
        money now, so the hold may wait a moment to be committed with theirs.

        ``durable=False`` (a plain hold its own process settles): the hold may be answered
        before it is on disk (PostgreSQL: its commit does not wait for the WAL's flush); the
        charge's settle or release, a durable commit after it in the same log, makes both
        durable. A database crash in between can lose it: its settle then re-creates it
        (``settle_lost``)."""
        ...

    async def budget_spend(
        self, scope: str, scope_id: int, periods: list[str]
    ) -> dict[str, tuple[int, int]]:
        """(spent, held) of the key's or account's counters for ``periods`` that exist."""
        ...

    async def finish(self, step: Finish) -> Finished | None:
        """Settle (cost capped at the hold) or release a ``held`` charge, freeing its hold, with
        its entry; None when it was not ``held`` (already finished, or not expired yet)."""
        ...

    async def finish_many(self, steps: list[Finish]) -> list[Finished | None]:
        """``finish`` of each step (none the sweeper's), all in one transaction: what each
        moved, in order, None for one that was not ``held`` (a second step of the same charge
        is one of those). A database error applies none of them."""
        ...

    async def settle_late(self, step: Finish, note: str) -> LateSettled | None:
        """Settle an ``expired`` charge from what the balance still has, up to its cost capped
        at its hold, never below zero (the account is locked while it is read and charged);
        None when the charge is not ``expired``."""
        ...

    async def settle_lost(self, charge: NewCharge, step: Finish, note: str) -> LateSettled | None:
        """Re-create a plain hold the database lost (``hold(durable=False)``, then a crash) and
        settle it, in one transaction: the charge row, its ``hold`` entry at the hold's time,
        and its ``settle`` entry charging what the balance still has of the cost capped at the
        hold, never below zero (the account is locked while it is read and charged). None when
        the charge exists (it was not lost, or this ran before)."""
        ...

    async def renew(self, charge_ids: list[str], deadline: datetime) -> None:
        """Move the deadline of those of ``charge_ids`` still ``held`` to ``deadline``."""
        ...

    async def set_result(self, charge_id: str, result: Any) -> None:
        """Keep what an idempotent retry of the charge is answered with."""
        ...

    async def refund(self, charge_id: str, note: str | None, now: datetime) -> int | None:
        """Give a ``settled`` charge's cost back (status ``refunded``, a ``refund`` entry); the
        amount, or None when the charge was not ``settled``."""
        ...

    async def expired(self, now: datetime, limit: int) -> list[str]:
        """Up to ``limit`` ``held`` charges whose deadline is before ``now``."""
        ...

    # -- idempotency keys --------------------------------------------------------------------

    async def by_key(self, account_id: int, stored_key: str) -> KeyedCharge | None:
        """The account's charge holding this (scoped) idempotency key."""
        ...

    async def free_key(self, charge_id: str) -> None:
        """Give up the key of a charge that was released unanswered, for a retry to take."""
        ...

    # -- reading -----------------------------------------------------------------------------

    async def available(self, account_id: int) -> int | None:
        """Balance less holds; None for no such account."""
        ...

    async def balances(self, account_id: int) -> tuple[int, int] | None:
        """(balance, held); None for no such account."""
        ...

    async def entry_sums(self, account_id: int) -> tuple[int, int]:
        """(balance, held) as the account's entries add them up."""
        ...

    async def cost(self, charge_id: str) -> int | None:
        """The charge's cost (0 while it has none); None for no such charge."""
        ...

    async def entries(self, account_id: int, limit: int) -> list[Entry]:
        """The account's latest entries, newest first."""
        ...

    async def open_holds(self, account_id: int) -> int:
        """How many of the account's charges are ``held``."""
        ...

    async def usage(self, account_id: int, limit: int) -> list[UsageRow]:
        """The account's latest charges that are no longer held, newest first."""
        ...

    async def close(self) -> None: ...

    # -- usage reports (the storefront's dashboard and /usage) ---------------------------------

    async def spent(self, account_id: int, since: datetime) -> int:
        """The costs of the account's ``settled`` charges made at or after ``since``, summed
        exactly (one indexed query: ``ix_charges_account_settled``)."""
        ...

    async def usage_rows(
        self, account_id: int, where: UsageFilter, limit: int, before: UsageCursor | None
    ) -> list[UsageRow]:
        """Up to ``limit`` of the account's finished charges under ``where``, newest first
        (``created_at``, then ``id``), older than ``before`` when given."""
        ...

    async def usage_by_day(self, account_id: int, where: UsageFilter, limit: int) -> list[UsageSum]:
        """``where``'s charges summed per UTC day (``YYYY-MM-DD``), the newest ``limit`` days
        that have any, newest first."""
        ...

    async def usage_by_model(
        self, account_id: int, where: UsageFilter, limit: int
    ) -> list[UsageSum]:
        """``where``'s charges summed per model, the ``limit`` costliest first."""
        ...

    # -- the operator's console (issue 14) ---------------------------------------------------

    async def debit(self, account_id: int, amount: int, *, note: str, now: datetime) -> int | None:
        """Take ``amount`` from the balance with an ``adjustment`` entry, in one conditional
        UPDATE (``balance - held >= amount``), so it never reaches below what is held nor below
        zero however many run at once; the new balance, or None (nothing written)."""
        ...

    async def revenue(self, since: datetime) -> list[RevenueRow]:
        """Settled charges since ``since``, summed per UTC day of settling and model."""
        ...

    # -- card payments (Stripe) --------------------------------------------------------------

    async def pay_order(
        self,
        order_id: str,
        session_id: str,
        *,
        amount_minor: int,
        currency: str,
        payment_intent: str | None,
        cap: int,
        now: datetime,
    ) -> PaymentCredit | PaymentRefusal:
        """In one transaction: the order with this id and Checkout Session, for this amount and
        currency, still ``created``, locked and marked ``paid`` (keeping the payment intent),
        and its account credited with a ``payment`` entry (``payment_note``) whose id the order
        keeps. However many deliveries race, one credits; the others get ``done``."""
        ...

    async def take_back(
        self,
        event_id: str,
        event_type: str,
        payment_intent: str,
        kind: TakeBackKind,
        minor: int,
        *,
        now: datetime,
    ) -> TakeBack | TakeBackRefusal:
        """In one transaction: the paid order of this payment intent locked, the event recorded
        (once: a second delivery is ``seen``), ``plan_take_back``'s amount taken from the
        balance as far as it goes (never below zero nor below its holds) with a
        ``payment_refund``/``payment_dispute`` entry, and what could not be taken added to the
        order's ``shortfall``."""
        ...

    async def credit_entries(self, account_id: int, limit: int) -> list[Entry]:
        """The account's latest entries of ``CREDIT_KINDS``, newest first."""
        ...
