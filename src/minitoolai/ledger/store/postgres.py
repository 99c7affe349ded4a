"""The ledger on PostgreSQL: asyncpg statements on the store's own pool.

Each step that moves money is a single statement of data-modifying CTEs (prepared once, one
network round trip, the account row locked only for that statement). The one exception is a late
settle, which must read what the balance still has before it charges it: one transaction that
locks the charge, then the account (``FOR UPDATE``: the order every other step takes them in),
so a hold racing it cannot spend the same money.

The hot path is group-committed (``ledger.group_commit``): plain holds here (``_HOLD_MANY``),
settles and releases by the ledger's writer (``finish_many``), so under load many requests share
one statement and one commit; a hold with nothing to batch it with runs alone at once. These
steps go on the store's own connection when it is free (``lane.py``: no pool acquire and
release), else on the pool, which sends no reset query on release (``_keep_session``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import orjson

from minitoolai.infra.db import asyncpg_dsn
from minitoolai.ledger.budgets import BudgetRow, period_keys
from minitoolai.ledger.group_commit import GroupCommit
from minitoolai.ledger.store.base import (
    CREDIT_KINDS,
    RENEW_BATCH,
    CodeCredit,
    CodeRefusal,
    Entry,
    Finish,
    Finished,
    HoldOutcome,
    KeyedCharge,
    LateSettled,
    NewCharge,
    PaymentCredit,
    PaymentRefusal,
    RevenueRow,
    TakeBack,
    TakeBackKind,
    TakeBackRefusal,
    UsageCursor,
    UsageFilter,
    UsageRow,
    UsageSum,
    payment_note,
    plan_take_back,
    redeem_note,
    release_if_held,
    take_back_note,
)
from minitoolai.ledger.store.lane import SESSION, Lane
from minitoolai.ledger.store.pg_leases import (
    FINISH_LEASED,
    FINISH_LEASED_ONE,
    LEASE_GROW,
    LEASE_OPEN,
    LEASE_RENEW,
    LEASE_RETURN,
)

_TOP_UP = """
WITH acct AS (
    UPDATE accounts SET balance = balance + $2
    WHERE id = $1 AND balance + $2 <= $3
    RETURNING id, balance
), entry AS (
    INSERT INTO ledger_entries (account_id, kind, amount, held, note, created_at)
    SELECT id, 'topup', $2, 0, $4, $5 FROM acct
)
SELECT balance FROM acct
"""

# A code is claimed by locking its row (``FOR UPDATE OF c``): a racing redemption of the same
# code waits here, then re-reads the row, finds it redeemed and gets nothing. The account is
# locked after the code (by the credit's UPDATE); no step locks them the other way round.
_CLAIM_CODE = """
SELECT c.id, c.batch_id, c.last4, b.amount
FROM redeem_codes c JOIN code_batches b ON b.id = c.batch_id
WHERE c.code_hash = $1 AND c.redeemed_at IS NULL AND (b.expires_at IS NULL OR b.expires_at > $2)
FOR UPDATE OF c
"""

_CREDIT_CODE = """
UPDATE accounts SET balance = balance + $2
WHERE id = $1 AND balance + $2 <= $3
RETURNING balance
"""

_PAY_CODE = """
WITH entry AS (
    INSERT INTO ledger_entries (account_id, kind, amount, held, note, created_at)
    VALUES ($1, 'redeem', $2, 0, $3, $4)
    RETURNING id
)
UPDATE redeem_codes SET redeemed_by = $1, redeemed_at = $4, entry_id = entry.id
FROM entry WHERE redeem_codes.id = $5
"""

_HOLD = """
WITH acct AS (
    UPDATE accounts SET held = held + $3
    WHERE id = $2 AND balance - held >= $3
    RETURNING id
), charge AS (
    INSERT INTO charges (id, account_id, api_key_id, kind, model, status, held_amount,
                         usage_estimated, idempotency_key, request_hash, created_at, expires_at,
                         request_id)
    SELECT $1, id, $4, $5, $6, 'held', $3, false, $7, $10, $8, $9, $11 FROM acct
    RETURNING id
), entry AS (
    INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, created_at)
    SELECT $2, id, 'hold', 0, $3, $8 FROM charge
)
SELECT count(*) AS moved FROM charge
"""

# Many plain holds (no idempotency key, no budgets) in one statement, the group-commit batch of
# the holds of concurrent requests. Their accounts are locked in ascending id order (as the
# settle batch locks them, so neither waits on the other in a cycle), then each account's holds
# are admitted in the order they came while their running sum fits in what the account has
# (``balance - held`` as locked); the rest fall back to ``_HOLD`` one by one, which says
# exactly whether each fits after the ones admitted. ``n``: the admitted holds' places.
_HOLD_MANY = """
WITH req AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::int[], $5::text[],
                         $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[])
        WITH ORDINALITY
        AS r(id, account_id, amount, api_key_id, kind, model, now, expires_at, request_id, n)
), locked AS (
    SELECT id, balance - held AS room FROM accounts
    WHERE id IN (SELECT account_id FROM req) ORDER BY id FOR UPDATE
), ok AS (
    SELECT r.* FROM (
        SELECT req.*, SUM(amount) OVER (PARTITION BY account_id ORDER BY n) AS running
        FROM req
    ) r JOIN locked l ON l.id = r.account_id
    WHERE r.running <= l.room
), acct AS (
    UPDATE accounts a SET held = a.held + t.amount
    FROM (SELECT account_id, SUM(amount)::bigint AS amount FROM ok GROUP BY account_id) t
    WHERE a.id = t.account_id
), charge AS (
    INSERT INTO charges (id, account_id, api_key_id, kind, model, status, held_amount,
                         usage_estimated, created_at, expires_at, request_id)
    SELECT id, account_id, api_key_id, kind, model, 'held', amount, false, now, expires_at,
           request_id
    FROM ok
), entry AS (
    INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, created_at)
    SELECT account_id, id, 'hold', 0, amount, now FROM ok
)
SELECT n FROM ok
"""

# A plain hold its own process settles (``hold(durable=False)``) commits without waiting for the
# WAL's flush (``synchronous_commit`` off for its transaction only): its settle or release, a
# synchronous commit later in the same log, flushes both. A PostgreSQL crash in between can lose
# it (never a crash of this process); its settle then re-creates it (``settle_lost``).
_UNFLUSHED = ", set_config('synchronous_commit', 'off', true)"
_HOLD_UNFLUSHED = _HOLD.replace("moved FROM", "moved" + _UNFLUSHED + " FROM")
_HOLD_MANY_UNFLUSHED = _HOLD_MANY.replace("SELECT n FROM ok", "SELECT n" + _UNFLUSHED + " FROM ok")
assert _HOLD_UNFLUSHED != _HOLD and _HOLD_MANY_UNFLUSHED != _HOLD_MANY

# A budgeted hold: ``_HOLD`` with the charge's budget day, then ``_BUDGET_HOLD``, in one
# transaction. The account row is locked first (by the hold), then the counters, the order
# every step that moves them keeps, so no two steps wait on each other.
_HOLD_BUDGETED = _HOLD.replace(
    "request_id)\n    SELECT $1, id, $4, $5, $6, 'held', $3, false, $7, $10, $8, $9, $11 FROM acct",
    "request_id, budget_period)\n"
    "    SELECT $1, id, $4, $5, $6, 'held', $3, false, $7, $10, $8, $9, $11, $12 FROM acct",
)
assert _HOLD_BUDGETED != _HOLD

# Every counter takes the hold only if it stays under its cap (a new row: the service has
# checked the amount against the cap); the rows it returns are the counters that took it.
_BUDGET_HOLD = """
INSERT INTO budget_spend (scope, scope_id, period, spent, held, cap)
SELECT s, i, p, 0, $4, c
FROM unnest($1::text[], $2::int[], $3::text[], $5::bigint[]) AS t(s, i, p, c)
ON CONFLICT (scope, scope_id, period) DO UPDATE
SET held = budget_spend.held + EXCLUDED.held, cap = EXCLUDED.cap
WHERE EXCLUDED.cap IS NULL OR budget_spend.spent + budget_spend.held + EXCLUDED.held <= EXCLUDED.cap
RETURNING scope, period
"""

_FINISH = """
WITH charge AS (
    UPDATE charges SET status = $2, settled_at = $3, cost = LEAST(held_amount, $4),
        prompt_tokens = $5, completion_tokens = $6, units = $7, usage_estimated = $8,
        served_by = $9, result = COALESCE($10::json, result)
    WHERE id = $1 AND status = 'held' AND ($13::timestamptz IS NULL OR expires_at < $13)
    RETURNING account_id, held_amount, cost, model, api_key_id, budget_period
), acct AS (
    UPDATE accounts a SET balance = a.balance - c.cost, held = a.held - c.held_amount
    FROM charge c WHERE a.id = c.account_id
    RETURNING a.id
), entry AS (
    INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, note, created_at)
    SELECT account_id, $1, $11, -cost, -held_amount, $12, $3 FROM charge
), budget AS (
    -- reads acct, so the account row is locked before the counters (as the hold locks them)
    UPDATE budget_spend b SET held = b.held - c.held_amount, spent = b.spent + c.cost
    FROM charge c JOIN acct a ON a.id = c.account_id
    WHERE c.budget_period IS NOT NULL
      AND ((b.scope = 'key' AND b.scope_id = c.api_key_id)
      OR (b.scope = 'account' AND b.scope_id = c.account_id))
      AND b.period IN ('day:' || c.budget_period, 'month:' || substr(c.budget_period, 1, 7),
                       'total')
)
SELECT account_id, held_amount, cost, model FROM charge
"""

# Many settles and releases in one statement (the group-commit writer's batch). Lock order: the
# charges first (by the UPDATE, as every single step takes a charge before its account), then
# their accounts in ascending id order (``locked``: a sorted SELECT ... FOR UPDATE, which the
# account UPDATE joins, so no account is updated before every lower one is locked), then the
# budget counters, which belong to one account each. Holds, debits and top-ups lock one
# account; the sweeper, late settles and refunds one charge then its account; so two batches
# (two replicas) never wait on each other in a cycle over accounts, and their charges are
# disjoint (each charge is settled by the process that holds it). The rare cycle left (a
# replayed journal or a renewal over the same charges) is a deadlock error the writer retries.
_FINISH_MANY = """
WITH step AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                         $6::bigint[], $7::bool[], $8::text[], $9::text[], $10::text[],
                         $11::text[], $12::timestamptz[]) WITH ORDINALITY
        AS s(id, status, cost, prompt_tokens, completion_tokens, units, estimated, served_by,
             result, kind, note, now, n)
), charge AS (
    UPDATE charges c SET status = s.status, settled_at = s.now,
        cost = LEAST(c.held_amount, s.cost), prompt_tokens = s.prompt_tokens,
        completion_tokens = s.completion_tokens, units = s.units,
        usage_estimated = s.estimated, served_by = s.served_by,
        result = COALESCE(s.result::json, c.result)
    FROM step s WHERE c.id = s.id AND c.status = 'held'
    RETURNING s.n, c.id, c.account_id, c.held_amount, c.cost, c.model, c.api_key_id,
              c.budget_period, s.kind, s.note, s.now
), locked AS (
    SELECT id FROM accounts WHERE id IN (SELECT account_id FROM charge) ORDER BY id FOR UPDATE
), sums AS (
    SELECT account_id, SUM(cost)::bigint AS cost, SUM(held_amount)::bigint AS held
    FROM charge GROUP BY account_id
), acct AS (
    UPDATE accounts a SET balance = a.balance - t.cost, held = a.held - t.held
    FROM sums t JOIN locked l ON l.id = t.account_id
    WHERE a.id = t.account_id
    RETURNING a.id
), entry AS (
    INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, note, created_at)
    SELECT account_id, id, kind, -cost, -held_amount, note, now FROM charge
), counter AS (
    -- reads acct, so the accounts are locked before their counters (as the hold locks them)
    SELECT k.scope, k.scope_id, k.period, SUM(c.held_amount)::bigint AS held,
           SUM(c.cost)::bigint AS spent
    FROM charge c JOIN acct a ON a.id = c.account_id
    CROSS JOIN LATERAL (VALUES
        ('key', c.api_key_id, 'day:' || c.budget_period),
        ('key', c.api_key_id, 'month:' || substr(c.budget_period, 1, 7)),
        ('key', c.api_key_id, 'total'),
        ('account', c.account_id, 'day:' || c.budget_period),
        ('account', c.account_id, 'month:' || substr(c.budget_period, 1, 7)),
        ('account', c.account_id, 'total')) AS k(scope, scope_id, period)
    WHERE c.budget_period IS NOT NULL AND k.scope_id IS NOT NULL
    GROUP BY 1, 2, 3
), budget AS (
    UPDATE budget_spend b SET held = b.held - k.held, spent = b.spent + k.spent
    FROM counter k
    WHERE b.scope = k.scope AND b.scope_id = k.scope_id AND b.period = k.period
)
SELECT n, account_id, held_amount, cost, model FROM charge
"""

#: how often a batch is retried when PostgreSQL breaks a lock cycle by aborting it
_BATCH_TRIES = 5

_LATE_CHARGE = """
SELECT account_id, held_amount, model, api_key_id, budget_period FROM charges
WHERE id = $1 AND status = 'expired'
FOR UPDATE
"""

# a late settle's counters (the account is locked: no other step moves them meanwhile): what
# the tightest cap still allows, then the cost added to what was spent
_LATE_BUDGET_ROOM = """
SELECT MIN(cap - spent - held) FROM budget_spend
WHERE ((scope = 'key' AND scope_id = $1) OR (scope = 'account' AND scope_id = $2))
  AND period = ANY($3::text[]) AND cap IS NOT NULL
"""

_BUDGET_MOVE = """
UPDATE budget_spend SET spent = spent + $4
WHERE ((scope = 'key' AND scope_id = $1) OR (scope = 'account' AND scope_id = $2))
  AND period = ANY($3::text[])
"""

_LATE_ACCOUNT = "SELECT balance - held FROM accounts WHERE id = $1 FOR UPDATE"

# a lost hold's charge, re-created settled (``settle_lost``); no row when it exists
_LOST_CHARGE = """
INSERT INTO charges (id, account_id, api_key_id, kind, model, status, held_amount, cost,
                     usage_estimated, created_at, expires_at, settled_at, prompt_tokens,
                     completion_tokens, units, served_by, result, request_id)
VALUES ($1, $2, $3, $4, $5, 'settled', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
        $16::json, $17)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

# its hold entry (at the hold's time) and its settle, and the account charged
_LOST_ENTRIES = """
WITH acct AS (
    UPDATE accounts SET balance = balance - $3 WHERE id = $2
)
INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, note, created_at)
VALUES ($2, $1, 'hold', 0, $4, NULL, $5), ($2, $1, 'settle', -$3::bigint, -$4::bigint, $6, $7)
"""

_LATE_SETTLE = """
WITH acct AS (
    UPDATE accounts SET balance = balance - $3 WHERE id = $2
), charge AS (
    UPDATE charges SET status = 'settled', cost = $3, settled_at = $4, prompt_tokens = $5,
        completion_tokens = $6, units = $7, usage_estimated = $8, served_by = $9,
        result = COALESCE($10::json, result)
    WHERE id = $1
)
INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, note, created_at)
VALUES ($2, $1, 'settle', -$3::bigint, 0, $11, $4)
"""

_REFUND = """
WITH charge AS (
    UPDATE charges SET status = 'refunded'
    WHERE id = $1 AND status = 'settled'
    RETURNING account_id, COALESCE(cost, 0) AS cost, api_key_id, budget_period
), acct AS (
    UPDATE accounts a SET balance = a.balance + c.cost
    FROM charge c WHERE a.id = c.account_id AND c.cost <> 0
    RETURNING a.id
), budget AS (
    -- what was refunded was not spent; after acct, as every step orders the locks
    UPDATE budget_spend b SET spent = b.spent - c.cost
    FROM charge c JOIN acct a ON a.id = c.account_id
    WHERE c.budget_period IS NOT NULL
      AND ((b.scope = 'key' AND b.scope_id = c.api_key_id)
      OR (b.scope = 'account' AND b.scope_id = c.account_id))
      AND b.period IN ('day:' || c.budget_period, 'month:' || substr(c.budget_period, 1, 7),
                       'total')
), entry AS (
    INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, note, created_at)
    SELECT account_id, $1, 'refund', cost, 0, $2, $3 FROM charge
)
SELECT cost FROM charge
"""

_RENEW = "UPDATE charges SET expires_at = $2 WHERE id = ANY($1::text[]) AND status = 'held'"

_USAGE = """
SELECT id, kind, model, served_by, status, prompt_tokens, completion_tokens, units,
       usage_estimated, cost, created_at, request_id
FROM charges WHERE account_id = $1 AND status <> 'held' AND kind <> 'lease'
ORDER BY created_at DESC LIMIT $2
"""

# A paid session claims its order by locking the row while it is still ``created``: a racing
# delivery waits here, re-reads the row, finds it paid and gets nothing. The account is locked
# after the order (by the credit's UPDATE), the order every payment step takes them in.
_CLAIM_ORDER = """
SELECT account_id, amount FROM payment_orders
WHERE id = $1 AND stripe_session_id = $2 AND status = 'created' AND amount_minor = $3
  AND currency = $4
FOR UPDATE
"""

_PAY_ORDER = """
WITH entry AS (
    INSERT INTO ledger_entries (account_id, kind, amount, held, note, created_at)
    VALUES ($2, 'payment', $3, 0, $4, $5)
    RETURNING id
)
UPDATE payment_orders SET status = 'paid', entry_id = entry.id, paid_at = $5, updated_at = $5,
    payment_intent_id = COALESCE($6, payment_intent_id)
FROM entry WHERE payment_orders.id = $1
"""

_PAID_ORDER = """
SELECT id, account_id, amount, amount_minor, status, refunded_minor, disputed_minor
FROM payment_orders WHERE payment_intent_id = $1
FOR UPDATE
"""

_RECORD_EVENT = """
INSERT INTO payment_events (id, type, order_id, processed_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

_TAKE_BACK = """
WITH acct AS (
    UPDATE accounts SET balance = balance - $3 WHERE id = $2
), entry AS (
    INSERT INTO ledger_entries (account_id, kind, amount, held, note, created_at)
    VALUES ($2, $4, -$3::bigint, 0, $5, $6)
    RETURNING id
), event AS (
    UPDATE payment_events SET entry_id = entry.id FROM entry WHERE payment_events.id = $7
)
UPDATE payment_orders SET status = $8, refunded_minor = $9, disputed_minor = $10,
    taken_back = taken_back + $3, shortfall = shortfall + $11, updated_at = $6
WHERE id = $1
"""


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


async def _keep_session(_conn: Any) -> None:
    """The pool's reset on release: nothing. asyncpg's default sends ``pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL`` on every release, a round trip per statement; the store
    never leaves session state behind (no LISTEN, SET, cursor or advisory lock), and asyncpg
    still rolls back a transaction left open before this is called."""


class _OverBudget(Exception):
    """A budget counter refused the hold: the transaction rolls back whole."""

    def __init__(self, counter: BudgetRow) -> None:
        self.counter = counter


def _read_json(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


# an operator's debit: one statement, conditional on what is available (never below held, so
# never below zero), the entry written only if the UPDATE matched
_DEBIT = """
WITH acct AS (
    UPDATE accounts SET balance = balance - $2
    WHERE id = $1 AND balance - held >= $2
    RETURNING id, balance
), entry AS (
    INSERT INTO ledger_entries (account_id, kind, amount, held, note, created_at)
    SELECT id, 'adjustment', -$2::bigint, 0, $3, $4 FROM acct
)
SELECT balance FROM acct
"""

_REVENUE = """
SELECT to_char(settled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, model, count(*) AS n,
       COALESCE(SUM(cost), 0) AS cost, COALESCE(SUM(prompt_tokens), 0) AS prompt,
       COALESCE(SUM(completion_tokens), 0) AS completion, COALESCE(SUM(units), 0) AS units
FROM charges WHERE status = 'settled' AND settled_at >= $1
GROUP BY 1, 2 ORDER BY 1 DESC, 2
"""


def _usage_where(account_id: int, where: UsageFilter) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause of an account's finished charges under ``where``, and its arguments."""
    args: list[Any] = [account_id]
    sql = "account_id = $1 AND status <> 'held' AND kind <> 'lease'"
    for column, value in (
        ("model = ", where.model),
        ("kind = ", where.kind),
        ("created_at >= ", where.since),
        ("created_at < ", where.until),
    ):
        if value is not None:
            args.append(value)
            sql += f" AND {column}${len(args)}"
    return sql, tuple(args)


def _finished(r: Any) -> Finished | None:
    """A finish statement's row as its step's outcome (None: not applied)."""
    if r is None:
        return None
    return Finished(int(r["account_id"]), int(r["held_amount"]), int(r["cost"]), r["model"])


def _finished_rows(count: int, rows: Any) -> list[Finished | None]:
    """A batch's rows as each step's outcome, in order (None: not applied)."""
    done: list[Finished | None] = [None] * count
    for r in rows:
        done[int(r["n"]) - 1] = _finished(r)
    return done


def _usage_row(r: Any) -> UsageRow:
    return UsageRow(
        r["id"],
        r["kind"],
        r["model"],
        r["served_by"],
        r["status"],
        r["prompt_tokens"],
        r["completion_tokens"],
        r["units"],
        bool(r["usage_estimated"]),
        int(r["cost"] or 0),
        r["created_at"],
        r["request_id"],
    )


#: a batched hold that did not fit with the ones before it: it is tried alone, after the batch
_UNFIT = "unfit"


class _Holds(GroupCommit[NewCharge, str]):
    """The plain holds of concurrent requests, one statement per batch (``held`` or unfit);
    a batch the database refused is tried one by one (``_HOLD``'s outcomes). ``durable``:
    each batch's commit waits for the WAL's flush."""

    def __init__(self, store: PostgresLedgerStore, *, durable: bool) -> None:
        super().__init__()
        self.store = store
        self.durable = durable

    async def _many(self, charges: list[NewCharge]) -> list[str]:
        rows = await self.store._step(
            _HOLD_MANY if self.durable else _HOLD_MANY_UNFLUSHED,
            [c.id for c in charges],
            [c.account_id for c in charges],
            [c.amount for c in charges],
            [c.api_key_id for c in charges],
            [c.kind for c in charges],
            [c.model for c in charges],
            [c.now for c in charges],
            [c.expires_at for c in charges],
            [c.request_id for c in charges],
        )
        admitted = {int(r["n"]) - 1 for r in rows}
        return ["held" if i in admitted else _UNFIT for i in range(len(charges))]

    async def _one(self, charge: NewCharge) -> str:
        return await self.store._hold_one(charge, durable=self.durable)


class PostgresLedgerStore:
    #: holds requests on leases (``ledger.leases``): a hold is a round trip here
    supports_leases = True

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.dsn = asyncpg_dsn(url)
        self.pool_size = pool_size
        self._pool: Any = None
        self._lock = asyncio.Lock()
        self._holds = _Holds(self, durable=True)
        self._unflushed_holds = _Holds(self, durable=False)
        self._lane = Lane(self.dsn)  # the hot path's steps, when it is free (lane.py)

    async def _acquire_pool(self) -> Any:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    import asyncpg

                    self._pool = await asyncpg.create_pool(
                        self.dsn,
                        min_size=1,
                        max_size=self.pool_size,
                        reset=_keep_session,
                        server_settings=SESSION,
                    )
        return self._pool

    async def _step(self, query: str, *args: Any, one: bool = False) -> Any:
        """A hot-path statement's rows (``one``: its one row or None), on the lane when it
        is free, else on the pool."""
        lane = self._lane
        conn = lane.take()
        if conn is None:
            pool = await self._acquire_pool()
            return await (pool.fetchrow if one else pool.fetch)(query, *args)
        try:
            result = await (conn.fetchrow if one else conn.fetch)(query, *args)
        except BaseException as exc:
            lane.give_back(conn, exc)
            raise
        lane.give_back(conn, None)
        return result

    # -- credit in ---------------------------------------------------------------------------

    async def top_up(
        self, account_id: int, amount: int, *, cap: int, note: str | None, now: datetime
    ) -> int | None:
        pool = await self._acquire_pool()
        balance = await pool.fetchval(_TOP_UP, account_id, amount, cap, note, now)
        return None if balance is None else int(balance)

    async def redeem_code(
        self, account_id: int, code_hash: str, *, cap: int, now: datetime
    ) -> CodeCredit | CodeRefusal:
        pool = await self._acquire_pool()
        # the steps before the last write nothing, so ending early commits nothing
        async with pool.acquire() as conn, conn.transaction():
            code = await conn.fetchrow(_CLAIM_CODE, code_hash, now)
            if code is None:
                return "invalid"
            amount, batch_id = int(code["amount"]), code["batch_id"]
            balance = await conn.fetchval(_CREDIT_CODE, account_id, amount, cap)
            if balance is None:
                return "refused"
            note = redeem_note(batch_id, code["last4"])
            await conn.execute(_PAY_CODE, account_id, amount, note, now, code["id"])
        return CodeCredit(batch_id, amount, int(balance))

    # -- spending ----------------------------------------------------------------------------

    async def hold(
        self, c: NewCharge, *, company: bool = False, durable: bool = True
    ) -> HoldOutcome | BudgetRow:
        # ``company`` is not needed: a hold in flight on the network is the company (``busy``)
        if c.budgets:
            return await self._hold_budgeted(await self._acquire_pool(), c)
        if c.idempotency_key is not None:  # its key must outlive a crash: always durable
            return await self._hold_one(c)
        holds = self._holds if durable else self._unflushed_holds
        if not holds.busy:  # nothing to batch it with: alone, in this task, at once
            holds.alone += 1
            try:
                return await self._hold_one(c, durable=durable)
            finally:
                holds.alone -= 1
        # batched with concurrent requests' holds; one unfit in its batch (or refused
        # alone) is tried alone now, after the batch, exactly
        if await holds.submit(c, release_if_held(self, c)) == "held":
            return "held"
        return await self._hold_one(c, durable=durable)

    async def _hold_one(self, c: NewCharge, *, durable: bool = True) -> HoldOutcome:
        import asyncpg

        try:
            row = await self._step(
                _HOLD if durable else _HOLD_UNFLUSHED,
                c.id,
                c.account_id,
                c.amount,
                c.api_key_id,
                c.kind,
                c.model,
                c.idempotency_key,
                c.now,
                c.expires_at,
                c.request_hash,
                c.request_id,
                one=True,
            )
        except asyncpg.UniqueViolationError:  # the statement rolled back whole: nothing held
            if c.idempotency_key is None:
                raise
            return "duplicate"
        return "held" if row["moved"] else "insufficient"

    async def _hold_budgeted(self, pool: Any, c: NewCharge) -> HoldOutcome | BudgetRow:
        """The hold and its budget counters in one transaction; a counter that refuses rolls
        both back."""
        import asyncpg

        assert c.budgets
        counters = c.budgets
        try:
            async with pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    _HOLD_BUDGETED,
                    c.id,
                    c.account_id,
                    c.amount,
                    c.api_key_id,
                    c.kind,
                    c.model,
                    c.idempotency_key,
                    c.now,
                    c.expires_at,
                    c.request_hash,
                    c.request_id,
                    c.budget_period,
                )
                if not row["moved"]:
                    return "insufficient"  # nothing was written
                took = await conn.fetch(
                    _BUDGET_HOLD,
                    [x.scope for x in counters],
                    [x.scope_id for x in counters],
                    [x.period for x in counters],
                    c.amount,
                    [x.cap for x in counters],
                )
                if len(took) < len(counters):
                    done = {(r["scope"], r["period"]) for r in took}
                    raise _OverBudget(next(x for x in counters if (x.scope, x.period) not in done))
        except asyncpg.UniqueViolationError:  # rolled back whole: nothing held
            if c.idempotency_key is None:
                raise
            return "duplicate"
        except _OverBudget as over:  # rolled back whole: nothing held
            return over.counter
        return "held"

    async def finish(self, s: Finish) -> Finished | None:
        if s.lease is not None:
            return (await self._finish_leased([s]))[0]
        row = await self._step(
            _FINISH,
            s.charge_id,
            s.status,
            s.now,
            s.cost,
            s.prompt_tokens,
            s.completion_tokens,
            s.units,
            s.estimated,
            s.served_by,
            _json(s.result),
            s.kind,
            s.note,
            s.expired_before,
            one=True,
        )
        return _finished(row)

    async def finish_many(self, steps: list[Finish]) -> list[Finished | None]:
        assert all(s.expired_before is None for s in steps)  # the sweeper's go one by one
        leased = [s for s in steps if s.lease is not None]
        if not leased:
            return await self._finish_plain(steps)
        if len(leased) == len(steps):
            return await self._finish_leased(steps)
        # both kinds in one batch: two statements, one transaction
        plain = [s for s in steps if s.lease is None]
        pool = await self._acquire_pool()
        async with pool.acquire() as conn, conn.transaction():
            done = dict(zip(map(id, plain), await self._finish_plain(plain, conn), strict=True))
            done |= zip(map(id, leased), await self._finish_leased(leased, conn), strict=True)
        return [done[id(s)] for s in steps]

    async def _finish_plain(self, steps: list[Finish], conn: Any = None) -> list[Finished | None]:
        columns = (
            [s.charge_id for s in steps],
            [s.status for s in steps],
            [s.cost for s in steps],
            [s.prompt_tokens for s in steps],
            [s.completion_tokens for s in steps],
            [s.units for s in steps],
            [s.estimated for s in steps],
            [s.served_by for s in steps],
            [_json(s.result) for s in steps],
            [s.kind for s in steps],
            [s.note for s in steps],
            [s.now for s in steps],
        )
        return _finished_rows(len(steps), await self._batch(_FINISH_MANY, columns, conn))

    async def _finish_leased(self, steps: list[Finish], conn: Any = None) -> list[Finished | None]:
        if len(steps) == 1:  # the writer had company for none (low load)
            return [await self._finish_leased_one(steps[0], conn)]
        rows = []
        for n, s in enumerate(steps, 1):
            c = s.charge
            if c is None:
                raise ValueError("a leased step carries its hold")
            rows.append(
                {
                    "n": n,
                    "id": s.charge_id,
                    "lease": s.lease,
                    "account_id": c.account_id,
                    "api_key_id": c.api_key_id,
                    "kind": c.kind,
                    "model": c.model,
                    "held_amount": c.amount,
                    "cost": s.cost,
                    "status": s.status,
                    "entry_kind": s.kind,
                    "prompt_tokens": s.prompt_tokens,
                    "completion_tokens": s.completion_tokens,
                    "units": s.units,
                    "estimated": s.estimated,
                    "served_by": s.served_by,
                    "result": s.result,
                    "note": s.note,
                    "held_at": c.now,
                    "expires_at": c.expires_at,
                    "now": s.now,
                    "request_id": c.request_id,
                }
            )
        # one JSON parameter, not an array per column: asyncpg's encoding of 21 arrays cost
        # more than orjson's of the rows
        columns = (orjson.dumps(rows).decode(),)
        return _finished_rows(len(steps), await self._batch(FINISH_LEASED, columns, conn))

    async def _finish_leased_one(self, s: Finish, conn: Any = None) -> Finished | None:
        c = s.charge
        if c is None:
            raise ValueError("a leased step carries its hold")
        charged = min(s.cost, c.amount) if s.status == "settled" else 0
        args = (
            s.charge_id,
            s.lease,
            c.account_id,
            c.api_key_id,
            c.kind,
            c.model,
            c.amount,
            charged,
            s.status,
            s.kind,
            s.prompt_tokens,
            s.completion_tokens,
            s.units,
            s.estimated,
            s.served_by,
            _json(s.result),
            s.note,
            c.now,
            c.expires_at,
            s.now,
            c.request_id,
        )
        if conn is not None:
            return _finished(await conn.fetchrow(FINISH_LEASED_ONE, *args))
        return _finished(await self._step(FINISH_LEASED_ONE, *args, one=True))

    async def _batch(self, query: str, columns: tuple[Any, ...], conn: Any) -> Any:
        """A batch statement's rows, tried again when PostgreSQL broke a lock cycle by
        aborting it (only outside a caller's transaction, which the abort ended)."""
        import asyncpg

        if conn is not None:
            return await conn.fetch(query, *columns)
        for attempt in range(_BATCH_TRIES):
            try:
                return await self._step(query, *columns)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == _BATCH_TRIES - 1:
                    raise
                await asyncio.sleep(0.001 * (attempt + 1))  # rolled back whole: try again
        raise AssertionError("unreachable")

    # -- leases (``ledger.leases``) ------------------------------------------------------------

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
        args = (lease_id, account_id, need, want, share, now, expires_at)
        if new:
            row = await self._retried(LEASE_OPEN, *args)
            return 0 if row is None else int(row["amount"])
        row = await self._retried(LEASE_GROW, *args)
        if row["added"] is not None:
            return int(row["added"])
        return 0 if row["found"] else None

    async def return_lease(self, lease_id: str, amount: int, now: datetime) -> None:
        await self._retried(LEASE_RETURN, lease_id, amount, now)

    async def renew_leases(self, lease_ids: list[str], deadline: datetime) -> set[str]:
        pool = await self._acquire_pool()
        renewed: set[str] = set()
        for i in range(0, len(lease_ids), RENEW_BATCH):
            rows = await pool.fetch(LEASE_RENEW, lease_ids[i : i + RENEW_BATCH], deadline)
            renewed |= {r["id"] for r in rows}
        return renewed

    async def _retried(self, query: str, *args: Any) -> Any:
        """A lease statement's one row, tried again after a deadlock (rolled back whole)."""
        import asyncpg

        for attempt in range(_BATCH_TRIES):
            try:
                return await self._step(query, *args, one=True)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == _BATCH_TRIES - 1:
                    raise
                await asyncio.sleep(0.001 * (attempt + 1))
        raise AssertionError("unreachable")

    async def settle_late(self, s: Finish, note: str) -> LateSettled | None:
        pool = await self._acquire_pool()
        async with pool.acquire() as conn, conn.transaction():
            charge = await conn.fetchrow(_LATE_CHARGE, s.charge_id)
            if charge is None:
                return None
            account_id, wanted = int(charge["account_id"]), min(s.cost, int(charge["held_amount"]))
            available = int(await conn.fetchval(_LATE_ACCOUNT, account_id))
            charged = max(0, min(wanted, available))
            day = charge["budget_period"]
            if day is not None:  # its hold was given back: never spend past the budget now
                rows = (charge["api_key_id"], account_id, list(period_keys(day)))
                room = await conn.fetchval(_LATE_BUDGET_ROOM, *rows)
                charged = charged if room is None else max(0, min(charged, int(room)))
                await conn.execute(_BUDGET_MOVE, *rows, charged)
            await conn.execute(
                _LATE_SETTLE,
                s.charge_id,
                account_id,
                charged,
                s.now,
                s.prompt_tokens,
                s.completion_tokens,
                s.units,
                s.estimated,
                s.served_by,
                _json(s.result),
                note,
            )
        return LateSettled(account_id, wanted, charged, charge["model"])

    async def settle_lost(self, c: NewCharge, s: Finish, note: str) -> LateSettled | None:
        pool = await self._acquire_pool()
        async with pool.acquire() as conn, conn.transaction():
            available = await conn.fetchval(_LATE_ACCOUNT, c.account_id)
            if available is None:
                return None
            wanted = min(s.cost, c.amount)
            charged = max(0, min(wanted, int(available)))
            created = await conn.fetchval(
                _LOST_CHARGE,
                c.id,
                c.account_id,
                c.api_key_id,
                c.kind,
                c.model,
                c.amount,
                charged,
                s.estimated,
                c.now,
                c.expires_at,
                s.now,
                s.prompt_tokens,
                s.completion_tokens,
                s.units,
                s.served_by,
                _json(s.result),
                c.request_id,
            )
            if created is None:
                return None
            await conn.execute(
                _LOST_ENTRIES, c.id, c.account_id, charged, c.amount, c.now, note, s.now
            )
        return LateSettled(c.account_id, wanted, charged, c.model)

    async def renew(self, charge_ids: list[str], deadline: datetime) -> None:
        pool = await self._acquire_pool()
        for i in range(0, len(charge_ids), RENEW_BATCH):
            await pool.execute(_RENEW, charge_ids[i : i + RENEW_BATCH], deadline)

    async def set_result(self, charge_id: str, result: Any) -> None:
        pool = await self._acquire_pool()
        await pool.execute(
            "UPDATE charges SET result = $2::json WHERE id = $1", charge_id, _json(result)
        )

    async def refund(self, charge_id: str, note: str | None, now: datetime) -> int | None:
        pool = await self._acquire_pool()
        cost = await pool.fetchval(_REFUND, charge_id, note, now)
        return None if cost is None else int(cost)

    async def expired(self, now: datetime, limit: int) -> list[str]:
        pool = await self._acquire_pool()
        rows = await pool.fetch(
            "SELECT id FROM charges WHERE status = 'held' AND expires_at < $1 LIMIT $2", now, limit
        )
        return [r["id"] for r in rows]

    # -- idempotency keys --------------------------------------------------------------------

    async def by_key(self, account_id: int, stored_key: str) -> KeyedCharge | None:
        pool = await self._acquire_pool()
        row = await pool.fetchrow(
            "SELECT id, held_amount, status, result, request_hash FROM charges"
            " WHERE account_id = $1 AND idempotency_key = $2",
            account_id,
            stored_key,
        )
        if row is None:
            return None
        return KeyedCharge(
            row["id"],
            int(row["held_amount"]),
            row["status"],
            _read_json(row["result"]),
            row["request_hash"],
        )

    async def free_key(self, charge_id: str) -> None:
        pool = await self._acquire_pool()
        await pool.execute(
            "UPDATE charges SET idempotency_key = NULL WHERE id = $1 AND status = 'released'",
            charge_id,
        )

    # -- reading -----------------------------------------------------------------------------

    async def available(self, account_id: int) -> int | None:
        pool = await self._acquire_pool()
        value = await pool.fetchval("SELECT balance - held FROM accounts WHERE id = $1", account_id)
        return None if value is None else int(value)

    async def balances(self, account_id: int) -> tuple[int, int] | None:
        pool = await self._acquire_pool()
        row = await pool.fetchrow("SELECT balance, held FROM accounts WHERE id = $1", account_id)
        return None if row is None else (int(row["balance"]), int(row["held"]))

    async def budget_spend(
        self, scope: str, scope_id: int, periods: list[str]
    ) -> dict[str, tuple[int, int]]:
        pool = await self._acquire_pool()
        rows = await pool.fetch(
            "SELECT period, spent, held FROM budget_spend WHERE scope = $1 AND scope_id = $2"
            " AND period = ANY($3::text[])",
            scope,
            scope_id,
            periods,
        )
        return {r["period"]: (int(r["spent"]), int(r["held"])) for r in rows}

    async def entry_sums(self, account_id: int) -> tuple[int, int]:
        pool = await self._acquire_pool()
        row = await pool.fetchrow(
            "SELECT COALESCE(SUM(amount), 0) AS amount, COALESCE(SUM(held), 0) AS held"
            " FROM ledger_entries WHERE account_id = $1",
            account_id,
        )
        return int(row["amount"]), int(row["held"])

    async def cost(self, charge_id: str) -> int | None:
        pool = await self._acquire_pool()
        row = await pool.fetchrow("SELECT cost FROM charges WHERE id = $1", charge_id)
        return None if row is None else int(row["cost"] or 0)

    async def entries(self, account_id: int, limit: int) -> list[Entry]:
        pool = await self._acquire_pool()
        rows = await pool.fetch(
            "SELECT kind, amount, held, charge_id, note, created_at FROM ledger_entries"
            " WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
            account_id,
            limit,
        )
        return [
            Entry(
                r["kind"],
                int(r["amount"]),
                int(r["held"]),
                r["charge_id"],
                r["note"],
                r["created_at"],
            )
            for r in rows
        ]

    async def open_holds(self, account_id: int) -> int:
        pool = await self._acquire_pool()
        count = await pool.fetchval(
            "SELECT count(*) FROM charges WHERE account_id = $1 AND status = 'held'"
            " AND kind <> 'lease'",
            account_id,
        )
        return int(count)

    async def usage(self, account_id: int, limit: int) -> list[UsageRow]:
        pool = await self._acquire_pool()
        rows = await pool.fetch(_USAGE, account_id, limit)
        return [
            UsageRow(
                r["id"],
                r["kind"],
                r["model"],
                r["served_by"],
                r["status"],
                r["prompt_tokens"],
                r["completion_tokens"],
                r["units"],
                bool(r["usage_estimated"]),
                int(r["cost"] or 0),
                r["created_at"],
                r["request_id"],
            )
            for r in rows
        ]

    async def close(self) -> None:
        await self._lane.close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- the operator's console (issue 14) ---------------------------------------------------

    async def debit(self, account_id: int, amount: int, *, note: str, now: datetime) -> int | None:
        pool = await self._acquire_pool()
        balance = await pool.fetchval(_DEBIT, account_id, amount, note, now)
        return None if balance is None else int(balance)

    async def revenue(self, since: datetime) -> list[RevenueRow]:
        pool = await self._acquire_pool()
        rows = await pool.fetch(_REVENUE, since)
        return [RevenueRow(r[0], r[1], *(int(v) for v in tuple(r)[2:])) for r in rows]

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
        pool = await self._acquire_pool()
        # the steps before the last write nothing, so ending early commits nothing
        async with pool.acquire() as conn, conn.transaction():
            order = await conn.fetchrow(_CLAIM_ORDER, order_id, session_id, amount_minor, currency)
            if order is None:
                return "done"
            account_id, amount = int(order["account_id"]), int(order["amount"])
            balance = await conn.fetchval(_CREDIT_CODE, account_id, amount, cap)
            if balance is None:
                return "refused"
            note = payment_note(order_id, session_id)
            await conn.execute(_PAY_ORDER, order_id, account_id, amount, note, now, payment_intent)
        return PaymentCredit(order_id, account_id, amount, int(balance))

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
        pool = await self._acquire_pool()
        async with pool.acquire() as conn, conn.transaction():
            order = await conn.fetchrow(_PAID_ORDER, payment_intent)
            if order is None:
                return "unknown"
            if order["status"] == "created":
                return "unpaid"
            order_id, account_id = order["id"], int(order["account_id"])
            if await conn.fetchval(_RECORD_EVENT, event_id, event_type, order_id, now) is None:
                return "seen"
            plan = plan_take_back(
                kind,
                minor,
                amount_minor=int(order["amount_minor"]),
                refunded_minor=int(order["refunded_minor"]),
                disputed_minor=int(order["disputed_minor"]),
                status=order["status"],
            )
            wanted = int(order["amount"]) * plan.minor // int(order["amount_minor"])
            available = int(await conn.fetchval(_LATE_ACCOUNT, account_id))
            taken = max(0, min(wanted, available))
            await conn.execute(
                _TAKE_BACK,
                order_id,
                account_id,
                taken,
                "payment_" + kind,
                take_back_note(kind, order_id, event_id, wanted, taken),
                now,
                event_id,
                plan.status,
                plan.refunded_minor,
                plan.disputed_minor,
                wanted - taken,
            )
        return TakeBack(order_id, account_id, wanted, taken, plan.status)

    async def credit_entries(self, account_id: int, limit: int) -> list[Entry]:
        pool = await self._acquire_pool()
        rows = await pool.fetch(
            "SELECT kind, amount, held, charge_id, note, created_at FROM ledger_entries"
            " WHERE account_id = $1 AND kind = ANY($2::text[]) ORDER BY id DESC LIMIT $3",
            account_id,
            list(CREDIT_KINDS),
            limit,
        )
        return [
            Entry(
                r["kind"],
                int(r["amount"]),
                int(r["held"]),
                r["charge_id"],
                r["note"],
                r["created_at"],
            )
            for r in rows
        ]

    # -- usage reports -------------------------------------------------------------------------

    async def spent(self, account_id: int, since: datetime) -> int:
        pool = await self._acquire_pool()
        # the literal status matches ix_charges_account_settled's WHERE, so the planner uses it
        total = await pool.fetchval(
            "SELECT COALESCE(SUM(cost), 0) FROM charges"
            " WHERE account_id = $1 AND status = 'settled' AND created_at >= $2",
            account_id,
            since,
        )
        return int(total)

    async def usage_rows(
        self, account_id: int, where: UsageFilter, limit: int, before: UsageCursor | None
    ) -> list[UsageRow]:
        sql, args = _usage_where(account_id, where)
        if before is not None:
            sql += f" AND (created_at, id) < (${len(args) + 1}, ${len(args) + 2})"
            args += (before.created_at, before.id)
        pool = await self._acquire_pool()
        rows = await pool.fetch(
            "SELECT id, kind, model, served_by, status, prompt_tokens, completion_tokens, units,"
            " usage_estimated, cost, created_at, request_id FROM charges WHERE "
            + sql
            + f" ORDER BY created_at DESC, id DESC LIMIT ${len(args) + 1}",
            *args,
            limit,
        )
        return [_usage_row(r) for r in rows]

    async def usage_by_day(self, account_id: int, where: UsageFilter, limit: int) -> list[UsageSum]:
        day = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        return await self._sums(day, "label DESC", account_id, where, limit)

    async def usage_by_model(
        self, account_id: int, where: UsageFilter, limit: int
    ) -> list[UsageSum]:
        return await self._sums("model", "cost DESC, label", account_id, where, limit)

    async def _sums(
        self, label: str, order: str, account_id: int, where: UsageFilter, limit: int
    ) -> list[UsageSum]:
        sql, args = _usage_where(account_id, where)
        pool = await self._acquire_pool()
        rows = await pool.fetch(
            f"SELECT {label} AS label, count(*) AS requests,"
            " COALESCE(SUM(CASE WHEN status = 'settled' THEN cost ELSE 0 END), 0) AS cost"
            f" FROM charges WHERE {sql} GROUP BY 1 ORDER BY {order} LIMIT ${len(args) + 1}",
            *args,
            limit,
        )
        return [UsageSum(r["label"], int(r["requests"]), int(r["cost"])) for r in rows]
