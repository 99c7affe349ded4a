"""The ledger on SQLite: each write one ``BEGIN IMMEDIATE`` transaction, run right on the loop.

A WAL-mode write with ``synchronous=NORMAL`` takes tens of microseconds, less than a hop to a
thread and back, so the loop runs it inline with ``busy_timeout=0``: it never waits there. When
another process holds the write lock (a CLI top-up, a worker), the step goes to a writer thread
whose connection waits up to 30 s instead. Checkpoints, the one slow part of WAL, are kept off
the loop: the inline connection never checkpoints itself; the writer thread does, every few
hundred commits. ``BEGIN IMMEDIATE`` takes the write lock first, so each transaction reads and
writes with no other writer in between (what ``FOR UPDATE`` does on PostgreSQL).

Reads of a row by its key run inline too (a WAL reader never waits for the writer); reads that
add up or list an account's rows, whose cost grows with the account, run in a reader thread.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from minitoolai.infra.db import sqlite_pragmas
from minitoolai.ledger.budgets import BudgetRow, period_keys
from minitoolai.ledger.group_commit import GroupCommit
from minitoolai.ledger.store import sqlite_leases as leased
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
from minitoolai.ledger.store.sqlite_rows import (
    INSERT_FINISHED,
    add_entry,
    finished_row,
    read_json,
    read_time,
    stored_json,
    stored_time,
)

T = TypeVar("T")
log = logging.getLogger("minitoolai.ledger")


def _busy(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _statement(sql: str, args: tuple[Any, ...]) -> Callable[[sqlite3.Connection], None]:
    """A transaction of one statement, for ``_run``."""

    def run(conn: sqlite3.Connection) -> None:
        conn.execute(sql, args)

    return run


def _usage_where(account_id: int, where: UsageFilter) -> tuple[str, tuple[Any, ...]]:
    """The WHERE clause of an account's finished charges under ``where``, and its arguments."""
    sql = "account_id = ? AND status != 'held' AND kind != 'lease'"
    args: list[Any] = [account_id]
    for column, value in (("model", where.model), ("kind", where.kind)):
        if value is not None:
            sql += f" AND {column} = ?"
            args.append(value)
    if where.since is not None:
        sql += " AND created_at >= ?"
        args.append(stored_time(where.since))
    if where.until is not None:
        sql += " AND created_at < ?"
        args.append(stored_time(where.until))
    return sql, tuple(args)


def _usage_row(r: Any) -> UsageRow:
    return UsageRow(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), int(r[9] or 0),
        read_time(r[10]), r[11],
    )  # fmt: skip


class _Duplicate(Exception):
    pass


class _OverBudget(Exception):
    """A budget counter refused the hold: the transaction rolls back whole."""

    def __init__(self, counter: BudgetRow) -> None:
        self.counter = counter


# A budget counter takes the hold only if it stays under its cap (a new row: the service has
# checked the amount against the cap). ``BEGIN IMMEDIATE`` makes the check and the write one.
_BUDGET_HOLD = (
    "INSERT INTO budget_spend (scope, scope_id, period, spent, held, cap)"
    " VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (scope, scope_id, period) DO UPDATE"
    " SET held = held + excluded.held, cap = excluded.cap"
    " WHERE excluded.cap IS NULL OR spent + held + excluded.held <= excluded.cap"
)
# the counters of a budgeted charge: its key's and its account's, for the day it was held in
_BUDGET_ROWS = (
    " WHERE ((scope = 'key' AND scope_id = ?) OR (scope = 'account' AND scope_id = ?))"
    " AND period IN (?, ?, ?)"
)


def _budget_move(
    conn: sqlite3.Connection,
    key_id: int | None,
    account_id: int,
    day: str,
    *,
    held: int = 0,
    spent: int = 0,
) -> None:
    """Move a budgeted charge's counters: ``held`` freed, ``spent`` added (either negative)."""
    conn.execute(
        "UPDATE budget_spend SET held = held - ?, spent = spent + ?" + _BUDGET_ROWS,
        (held, spent, key_id, account_id, *period_keys(day)),
    )


def _budget_room(
    conn: sqlite3.Connection, key_id: int | None, account_id: int, day: str
) -> int | None:
    """What the tightest capped counter of a charge still allows (None: no cap)."""
    (room,) = conn.execute(
        "SELECT MIN(cap - spent - held) FROM budget_spend" + _BUDGET_ROWS + " AND cap IS NOT NULL",
        (key_id, account_id, *period_keys(day)),
    ).fetchone()
    return None if room is None else max(0, int(room))


def _hold_in(conn: sqlite3.Connection, c: NewCharge) -> HoldOutcome:
    """One hold, inside the caller's transaction: nothing written unless ``held``
    (``_Duplicate`` and ``_OverBudget`` roll the caller's transaction back)."""
    moved = conn.execute(
        "UPDATE accounts SET held = held + ? WHERE id = ? AND balance - held >= ?",
        (c.amount, c.account_id, c.amount),
    ).rowcount
    if not moved:
        return "insufficient"
    now = stored_time(c.now)
    try:
        conn.execute(
            "INSERT INTO charges (id, account_id, api_key_id, kind, model, status,"
            " held_amount, usage_estimated, idempotency_key, request_hash, created_at,"
            " expires_at, request_id, budget_period)"
            " VALUES (?, ?, ?, ?, ?, 'held', ?, 0, ?, ?, ?, ?, ?, ?)",
            (
                c.id,
                c.account_id,
                c.api_key_id,
                c.kind,
                c.model,
                c.amount,
                c.idempotency_key,
                c.request_hash,
                now,
                stored_time(c.expires_at),
                c.request_id,
                c.budget_period,
            ),
        )
    except sqlite3.IntegrityError:
        if c.idempotency_key is None:
            raise
        raise _Duplicate from None
    add_entry(conn, c.account_id, c.id, "hold", 0, c.amount, None, now)
    for counter in c.budgets or ():
        taken = conn.execute(
            _BUDGET_HOLD, (counter.scope, counter.scope_id, counter.period, c.amount, counter.cap)
        ).rowcount
        if not taken:
            raise _OverBudget(counter)
    return "held"


class _Holds(GroupCommit[NewCharge, HoldOutcome]):
    """The plain holds (no idempotency key, no budget) of concurrent requests in one
    transaction: one commit, and the pages they share (the account's row, the tables' last
    leaves, the indexes' appended ends) written once. A batch SQLite refuses rolls back whole
    and is tried one by one (``GroupCommit``), so a hold it cannot take fails alone."""

    def __init__(self, store: SqliteLedgerStore) -> None:
        super().__init__()
        self.store = store

    async def _many(self, charges: list[NewCharge]) -> list[HoldOutcome]:
        return await self.store._run(lambda conn: [_hold_in(conn, c) for c in charges])

    async def _one(self, charge: NewCharge) -> HoldOutcome:
        return await self.store._run(lambda conn: _hold_in(conn, charge))


def _finish_in(conn: sqlite3.Connection, s: Finish) -> Finished | None:
    """One settle or release, inside the caller's transaction."""
    if s.lease is not None:  # held in memory: no row yet
        return leased.finish_leased(conn, [s])[0]
    now = stored_time(s.now)
    expiry = "" if s.expired_before is None else " AND expires_at < ?"
    expiry_args = () if s.expired_before is None else (stored_time(s.expired_before),)
    row = conn.execute(
        "UPDATE charges SET status = ?, settled_at = ?, cost = MIN(held_amount, ?),"
        " prompt_tokens = ?, completion_tokens = ?, units = ?, usage_estimated = ?,"
        " served_by = ?, result = COALESCE(?, result)"
        " WHERE id = ? AND status = 'held'"
        + expiry
        + " RETURNING account_id, held_amount, cost, model, api_key_id, budget_period",
        (
            s.status,
            now,
            s.cost,
            s.prompt_tokens,
            s.completion_tokens,
            s.units,
            int(s.estimated),
            s.served_by,
            stored_json(s.result),
            s.charge_id,
            *expiry_args,
        ),
    ).fetchone()
    if row is None:
        return None
    account_id, held_amount, charged = int(row[0]), int(row[1]), int(row[2])
    conn.execute(
        "UPDATE accounts SET balance = balance - ?, held = held - ? WHERE id = ?",
        (charged, held_amount, account_id),
    )
    add_entry(conn, account_id, s.charge_id, s.kind, -charged, -held_amount, s.note, now)
    if row[5] is not None:
        _budget_move(conn, row[4], account_id, row[5], held=held_amount, spent=charged)
    return Finished(account_id, held_amount, charged, str(row[3]))


def _finish_all(conn: sqlite3.Connection, steps: list[Finish]) -> list[Finished | None]:
    """Steps in the caller's transaction; those on leases together (``finish_leased``)."""
    on_leases = [s for s in steps if s.lease is not None]
    if not on_leases:
        return [_finish_in(conn, s) for s in steps]
    done = iter(leased.finish_leased(conn, on_leases))  # in their order
    return [next(done) if s.lease is not None else _finish_in(conn, s) for s in steps]


class SqliteLedgerStore:
    #: holds requests on leases (``ledger.leases``): a hold in memory is no transaction here
    #: (its commit and the pages it writes, twice per request with the settle's)
    supports_leases = True

    CHECKPOINT_EVERY = 500

    def __init__(self, path: str, write_lock: asyncio.Lock | None = None) -> None:
        self.path = path
        # shared with ``Database.write`` so this process's writers queue instead of colliding
        self._write_lock = write_lock or asyncio.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite")
        self._scans = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite-read")
        self._inline: sqlite3.Connection | None = None
        self._threaded: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._commits = 0
        self._holds = _Holds(self)

    # -- running a step ----------------------------------------------------------------------

    def _connect(self, busy_ms: int, autocheckpoint: int) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in sqlite_pragmas(busy_ms, autocheckpoint):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def _on_loop(self) -> sqlite3.Connection:
        if self._inline is None:
            self._inline = self._connect(busy_ms=0, autocheckpoint=0)
        return self._inline

    @staticmethod
    def _transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._threaded is None:
            self._threaded = self._connect(busy_ms=30_000, autocheckpoint=1000)
        return self._transaction(self._threaded, fn)

    def _checkpoint(self) -> None:
        try:
            if self._threaded is None:
                self._threaded = self._connect(busy_ms=30_000, autocheckpoint=1000)
            self._threaded.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the next one will catch up
            log.warning("WAL checkpoint failed: %s", exc)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` as one write transaction."""
        loop = asyncio.get_running_loop()
        async with self._write_lock:
            try:
                result = self._transaction(self._on_loop(), fn)
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise
                # another process is writing: wait for it in the writer thread, not here
                result = await loop.run_in_executor(self._pool, self._in_thread, fn)
            self._commits += 1
            if self._commits % self.CHECKPOINT_EVERY == 0:
                loop.run_in_executor(self._pool, self._checkpoint)
            return result

    def _on_reader(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None:
            self._reader = self._connect(busy_ms=30_000, autocheckpoint=0)
        return fn(self._reader)

    async def _scan(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn``, reading many rows, in the reader thread."""
        return await asyncio.get_running_loop().run_in_executor(self._scans, self._on_reader, fn)

    async def _lookup(self, sql: str, args: tuple[Any, ...]) -> Any:
        """The one row (or None) a key names, read inline; in the reader thread only in the
        rare case SQLite says busy to a reader."""
        try:
            return self._on_loop().execute(sql, args).fetchone()
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
        return await self._scan(lambda conn: conn.execute(sql, args).fetchone())

    # -- credit in ---------------------------------------------------------------------------

    async def top_up(
        self, account_id: int, amount: int, *, cap: int, note: str | None, now: datetime
    ) -> int | None:
        def run(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "UPDATE accounts SET balance = balance + ? WHERE id = ? AND balance + ? <= ?"
                " RETURNING balance",
                (amount, account_id, amount, cap),
            ).fetchone()
            if row is None:
                return None
            add_entry(conn, account_id, None, "topup", amount, 0, note, stored_time(now))
            return int(row[0])

        return await self._run(run)

    async def redeem_code(
        self, account_id: int, code_hash: str, *, cap: int, now: datetime
    ) -> CodeCredit | CodeRefusal:
        at = stored_time(now)

        def run(conn: sqlite3.Connection) -> CodeCredit | CodeRefusal:
            # BEGIN IMMEDIATE: no other writer between reading the code unused and marking it
            code = conn.execute(
                "SELECT c.id, c.batch_id, c.last4, b.amount FROM redeem_codes c"
                " JOIN code_batches b ON b.id = c.batch_id"
                " WHERE c.code_hash = ? AND c.redeemed_at IS NULL"
                " AND (b.expires_at IS NULL OR b.expires_at > ?)",
                (code_hash, at),
            ).fetchone()
            if code is None:
                return "invalid"
            code_id, batch_id, last4, amount = (
                int(code[0]),
                str(code[1]),
                str(code[2]),
                int(code[3]),
            )
            row = conn.execute(
                "UPDATE accounts SET balance = balance + ? WHERE id = ? AND balance + ? <= ?"
                " RETURNING balance",
                (amount, account_id, amount, cap),
            ).fetchone()
            if row is None:
                return "refused"
            (entry_id,) = conn.execute(
                "INSERT INTO ledger_entries (account_id, kind, amount, held, note, created_at)"
                " VALUES (?, 'redeem', ?, 0, ?, ?) RETURNING id",
                (account_id, amount, redeem_note(batch_id, last4), at),
            ).fetchone()
            conn.execute(
                "UPDATE redeem_codes SET redeemed_by = ?, redeemed_at = ?, entry_id = ?"
                " WHERE id = ?",
                (account_id, at, int(entry_id), code_id),
            )
            return CodeCredit(batch_id, amount, int(row[0]))

        return await self._run(run)

    # -- spending ----------------------------------------------------------------------------

    async def hold(
        self, c: NewCharge, *, company: bool = False, durable: bool = True
    ) -> HoldOutcome | BudgetRow:
        # ``durable`` changes nothing: every commit here is as durable as the others (WAL,
        # synchronous=NORMAL: none is lost with this process; an OS crash may lose the last)
        if company and c.idempotency_key is None and not c.budgets:
            # batched with the holds of the requests that reach theirs in this loop turn
            return await self._holds.submit(c, release_if_held(self, c))
        try:
            return await self._run(lambda conn: _hold_in(conn, c))
        except _Duplicate:
            return "duplicate"
        except _OverBudget as over:
            return over.counter

    async def finish(self, s: Finish) -> Finished | None:
        return await self._run(lambda conn: _finish_in(conn, s))

    async def finish_many(self, steps: list[Finish]) -> list[Finished | None]:
        """The steps in one transaction: one commit (one WAL append) for them all."""
        return await self._run(lambda conn: _finish_all(conn, steps))

    async def settle_late(self, s: Finish, note: str) -> LateSettled | None:
        now = stored_time(s.now)
        result = stored_json(s.result)

        def run(conn: sqlite3.Connection) -> LateSettled | None:
            row = conn.execute(
                "SELECT account_id, held_amount, model, api_key_id, budget_period FROM charges"
                " WHERE id = ? AND status = 'expired'",
                (s.charge_id,),
            ).fetchone()
            if row is None:
                return None
            account_id, wanted = int(row[0]), min(s.cost, int(row[1]))
            (available,) = conn.execute(
                "SELECT balance - held FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()
            charged = max(0, min(wanted, int(available)))
            if row[4] is not None:  # its hold was given back: never spend past the budget now
                room = _budget_room(conn, row[3], account_id, row[4])
                charged = charged if room is None else min(charged, room)
                _budget_move(conn, row[3], account_id, row[4], spent=charged)
            conn.execute(
                "UPDATE accounts SET balance = balance - ? WHERE id = ?", (charged, account_id)
            )
            conn.execute(
                "UPDATE charges SET status = 'settled', cost = ?, settled_at = ?,"
                " prompt_tokens = ?, completion_tokens = ?, units = ?, usage_estimated = ?,"
                " served_by = ?, result = COALESCE(?, result) WHERE id = ?",
                (
                    charged,
                    now,
                    s.prompt_tokens,
                    s.completion_tokens,
                    s.units,
                    int(s.estimated),
                    s.served_by,
                    result,
                    s.charge_id,
                ),
            )
            add_entry(conn, account_id, s.charge_id, "settle", -charged, 0, note, now)
            return LateSettled(account_id, wanted, charged, str(row[2]))

        return await self._run(run)

    async def settle_lost(self, c: NewCharge, s: Finish, note: str) -> LateSettled | None:
        def run(conn: sqlite3.Connection) -> LateSettled | None:
            row = conn.execute(
                "SELECT balance - held FROM accounts WHERE id = ?", (c.account_id,)
            ).fetchone()
            if row is None:
                return None
            wanted = min(s.cost, c.amount)
            charged = max(0, min(wanted, int(row[0])))
            now = stored_time(s.now)
            created = conn.execute(INSERT_FINISHED, finished_row(c, s, "settled", charged)).rowcount
            if not created:
                return None
            conn.execute(
                "UPDATE accounts SET balance = balance - ? WHERE id = ?", (charged, c.account_id)
            )
            add_entry(conn, c.account_id, c.id, "hold", 0, c.amount, None, stored_time(c.now))
            add_entry(conn, c.account_id, c.id, "settle", -charged, -c.amount, note, now)
            return LateSettled(c.account_id, wanted, charged, c.model)

        return await self._run(run)

    async def renew(self, charge_ids: list[str], deadline: datetime) -> None:
        at = stored_time(deadline)
        for i in range(0, len(charge_ids), RENEW_BATCH):
            batch = charge_ids[i : i + RENEW_BATCH]
            marks = ", ".join("?" * len(batch))
            sql = f"UPDATE charges SET expires_at = ? WHERE status = 'held' AND id IN ({marks})"
            await self._run(_statement(sql, (at, *batch)))

    # -- leases (``ledger.leases``, ``store/sqlite_leases.py``) --------------------------------

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
        at, until = stored_time(now), stored_time(expires_at)
        return await self._run(
            lambda conn: leased.lease_more(
                conn, lease_id, account_id, need, want, share, at, until, new=new
            )
        )

    async def return_lease(self, lease_id: str, amount: int, now: datetime) -> None:
        at = stored_time(now)
        await self._run(lambda conn: leased.return_lease(conn, lease_id, amount, at))

    async def renew_leases(self, lease_ids: list[str], deadline: datetime) -> set[str]:
        at = stored_time(deadline)
        return await self._run(lambda conn: leased.renew_leases(conn, lease_ids, at))

    async def set_result(self, charge_id: str, result: Any) -> None:
        await self._run(
            _statement(
                "UPDATE charges SET result = ? WHERE id = ?", (stored_json(result), charge_id)
            )
        )

    async def refund(self, charge_id: str, note: str | None, now: datetime) -> int | None:
        def run(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "UPDATE charges SET status = 'refunded' WHERE id = ? AND status = 'settled'"
                " RETURNING account_id, cost, api_key_id, budget_period",
                (charge_id,),
            ).fetchone()
            if row is None:
                return None
            account_id, cost = int(row[0]), int(row[1] or 0)
            if row[3] is not None:  # what was refunded was not spent
                _budget_move(conn, row[2], account_id, row[3], spent=-cost)
            if cost:
                conn.execute(
                    "UPDATE accounts SET balance = balance + ? WHERE id = ?", (cost, account_id)
                )
            add_entry(conn, account_id, charge_id, "refund", cost, 0, note, stored_time(now))
            return cost

        return await self._run(run)

    async def expired(self, now: datetime, limit: int) -> list[str]:
        rows = await self._scan(
            lambda conn: conn.execute(
                "SELECT id FROM charges WHERE status = 'held' AND expires_at < ? LIMIT ?",
                (stored_time(now), limit),
            ).fetchall()
        )
        return [str(r[0]) for r in rows]

    # -- idempotency keys --------------------------------------------------------------------

    async def by_key(self, account_id: int, stored_key: str) -> KeyedCharge | None:
        row = await self._lookup(
            "SELECT id, held_amount, status, result, request_hash FROM charges"
            " WHERE account_id = ? AND idempotency_key = ?",
            (account_id, stored_key),
        )
        if row is None:
            return None
        return KeyedCharge(str(row[0]), int(row[1]), str(row[2]), read_json(row[3]), row[4])

    async def free_key(self, charge_id: str) -> None:
        await self._run(
            _statement(
                "UPDATE charges SET idempotency_key = NULL WHERE id = ? AND status = 'released'",
                (charge_id,),
            )
        )

    # -- reading -----------------------------------------------------------------------------

    async def available(self, account_id: int) -> int | None:
        row = await self._lookup("SELECT balance - held FROM accounts WHERE id = ?", (account_id,))
        return None if row is None else int(row[0])

    async def balances(self, account_id: int) -> tuple[int, int] | None:
        row = await self._lookup("SELECT balance, held FROM accounts WHERE id = ?", (account_id,))
        return None if row is None else (int(row[0]), int(row[1]))

    async def budget_spend(
        self, scope: str, scope_id: int, periods: list[str]
    ) -> dict[str, tuple[int, int]]:
        marks = ", ".join("?" * len(periods))
        rows = await self._scan(
            lambda conn: conn.execute(
                "SELECT period, spent, held FROM budget_spend WHERE scope = ? AND scope_id = ?"
                f" AND period IN ({marks})",
                (scope, scope_id, *periods),
            ).fetchall()
        )
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    async def entry_sums(self, account_id: int) -> tuple[int, int]:
        row = await self._scan(
            lambda conn: conn.execute(
                "SELECT COALESCE(SUM(amount), 0), COALESCE(SUM(held), 0) FROM ledger_entries"
                " WHERE account_id = ?",
                (account_id,),
            ).fetchone()
        )
        return int(row[0]), int(row[1])

    async def cost(self, charge_id: str) -> int | None:
        row = await self._lookup("SELECT cost FROM charges WHERE id = ?", (charge_id,))
        return None if row is None else int(row[0] or 0)

    async def entries(self, account_id: int, limit: int) -> list[Entry]:
        rows = await self._scan(
            lambda conn: conn.execute(
                "SELECT kind, amount, held, charge_id, note, created_at FROM ledger_entries"
                " WHERE account_id = ? ORDER BY id DESC LIMIT ?",
                (account_id, limit),
            ).fetchall()
        )
        return [Entry(r[0], int(r[1]), int(r[2]), r[3], r[4], read_time(r[5])) for r in rows]

    async def open_holds(self, account_id: int) -> int:
        row = await self._scan(
            lambda conn: conn.execute(
                "SELECT count(*) FROM charges WHERE account_id = ? AND status = 'held'"
                " AND kind != 'lease'",
                (account_id,),
            ).fetchone()
        )
        return int(row[0])

    async def usage(self, account_id: int, limit: int) -> list[UsageRow]:
        rows = await self._scan(
            lambda conn: conn.execute(
                "SELECT id, kind, model, served_by, status, prompt_tokens, completion_tokens,"
                " units, usage_estimated, cost, created_at, request_id FROM charges"
                " WHERE account_id = ? AND status != 'held' AND kind != 'lease'"
                " ORDER BY created_at DESC LIMIT ?",
                (account_id, limit),
            ).fetchall()
        )
        return [
            UsageRow(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                bool(r[8]),
                int(r[9] or 0),
                read_time(r[10]),
                r[11],
            )
            for r in rows
        ]

    async def close(self) -> None:
        def shut(*conns: sqlite3.Connection | None) -> None:
            for conn in conns:
                if conn is not None:
                    conn.close()

        loop = asyncio.get_running_loop()
        shut(self._inline)
        await loop.run_in_executor(self._pool, shut, self._threaded)
        await loop.run_in_executor(self._scans, shut, self._reader)
        self._inline = self._threaded = self._reader = None
        self._pool.shutdown(wait=False)
        self._scans.shutdown(wait=False)

    # -- the operator's console (issue 14) ---------------------------------------------------

    async def debit(self, account_id: int, amount: int, *, note: str, now: datetime) -> int | None:
        def run(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance - held >= ?"
                " RETURNING balance",
                (amount, account_id, amount),
            ).fetchone()
            if row is None:
                return None
            add_entry(conn, account_id, None, "adjustment", -amount, 0, note, stored_time(now))
            return int(row[0])

        return await self._run(run)

    async def revenue(self, since: datetime) -> list[RevenueRow]:
        rows = await self._scan(
            lambda conn: conn.execute(
                "SELECT substr(settled_at, 1, 10) AS day, model, count(*), COALESCE(SUM(cost), 0),"
                " COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0),"
                " COALESCE(SUM(units), 0) FROM charges"
                " WHERE status = 'settled' AND settled_at >= ?"
                " GROUP BY day, model ORDER BY day DESC, model",
                (stored_time(since),),
            ).fetchall()
        )
        return [RevenueRow(str(r[0]), str(r[1]), *(int(v) for v in r[2:])) for r in rows]

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
        at = stored_time(now)

        def run(conn: sqlite3.Connection) -> PaymentCredit | PaymentRefusal:
            # BEGIN IMMEDIATE: no other writer between reading the order unpaid and paying it
            order = conn.execute(
                "SELECT account_id, amount FROM payment_orders WHERE id = ?"
                " AND stripe_session_id = ? AND status = 'created' AND amount_minor = ?"
                " AND currency = ?",
                (order_id, session_id, amount_minor, currency),
            ).fetchone()
            if order is None:
                return "done"
            account_id, amount = int(order[0]), int(order[1])
            row = conn.execute(
                "UPDATE accounts SET balance = balance + ? WHERE id = ? AND balance + ? <= ?"
                " RETURNING balance",
                (amount, account_id, amount, cap),
            ).fetchone()
            if row is None:
                return "refused"
            (entry_id,) = conn.execute(
                "INSERT INTO ledger_entries (account_id, kind, amount, held, note, created_at)"
                " VALUES (?, 'payment', ?, 0, ?, ?) RETURNING id",
                (account_id, amount, payment_note(order_id, session_id), at),
            ).fetchone()
            conn.execute(
                "UPDATE payment_orders SET status = 'paid', entry_id = ?, paid_at = ?,"
                " updated_at = ?, payment_intent_id = COALESCE(?, payment_intent_id)"
                " WHERE id = ?",
                (int(entry_id), at, at, payment_intent, order_id),
            )
            return PaymentCredit(order_id, account_id, amount, int(row[0]))

        return await self._run(run)

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
        at = stored_time(now)

        def run(conn: sqlite3.Connection) -> TakeBack | TakeBackRefusal:
            order = conn.execute(
                "SELECT id, account_id, amount, amount_minor, status, refunded_minor,"
                " disputed_minor FROM payment_orders WHERE payment_intent_id = ?",
                (payment_intent,),
            ).fetchone()
            if order is None:
                return "unknown"
            order_id, account_id, amount, amount_minor = (
                str(order[0]),
                int(order[1]),
                int(order[2]),
                int(order[3]),
            )
            if order[4] == "created":
                return "unpaid"
            seen = conn.execute(
                "INSERT INTO payment_events (id, type, order_id, processed_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (event_id, event_type, order_id, at),
            ).rowcount
            if not seen:
                return "seen"
            plan = plan_take_back(
                kind,
                minor,
                amount_minor=amount_minor,
                refunded_minor=int(order[5]),
                disputed_minor=int(order[6]),
                status=str(order[4]),
            )
            wanted = amount * plan.minor // amount_minor
            (available,) = conn.execute(
                "SELECT balance - held FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()
            taken = max(0, min(wanted, int(available)))
            conn.execute(
                "UPDATE accounts SET balance = balance - ? WHERE id = ?", (taken, account_id)
            )
            (entry_id,) = conn.execute(
                "INSERT INTO ledger_entries (account_id, kind, amount, held, note, created_at)"
                " VALUES (?, ?, ?, 0, ?, ?) RETURNING id",
                (
                    account_id,
                    "payment_" + kind,
                    -taken,
                    take_back_note(kind, order_id, event_id, wanted, taken),
                    at,
                ),
            ).fetchone()
            conn.execute(
                "UPDATE payment_events SET entry_id = ? WHERE id = ?", (int(entry_id), event_id)
            )
            conn.execute(
                "UPDATE payment_orders SET status = ?, refunded_minor = ?, disputed_minor = ?,"
                " taken_back = taken_back + ?, shortfall = shortfall + ?, updated_at = ?"
                " WHERE id = ?",
                (
                    plan.status,
                    plan.refunded_minor,
                    plan.disputed_minor,
                    taken,
                    wanted - taken,
                    at,
                    order_id,
                ),
            )
            return TakeBack(order_id, account_id, wanted, taken, plan.status)

        return await self._run(run)

    async def credit_entries(self, account_id: int, limit: int) -> list[Entry]:
        marks = ", ".join("?" * len(CREDIT_KINDS))
        rows = await self._scan(
            lambda conn: conn.execute(
                "SELECT kind, amount, held, charge_id, note, created_at FROM ledger_entries"
                f" WHERE account_id = ? AND kind IN ({marks}) ORDER BY id DESC LIMIT ?",
                (account_id, *CREDIT_KINDS, limit),
            ).fetchall()
        )
        return [Entry(r[0], int(r[1]), int(r[2]), r[3], r[4], read_time(r[5])) for r in rows]

    # -- usage reports -------------------------------------------------------------------------

    async def spent(self, account_id: int, since: datetime) -> int:
        # the literal status matches ix_charges_account_settled's WHERE, so SQLite uses it
        row = await self._scan(
            lambda conn: conn.execute(
                "SELECT COALESCE(SUM(cost), 0) FROM charges"
                " WHERE account_id = ? AND status = 'settled' AND created_at >= ?",
                (account_id, stored_time(since)),
            ).fetchone()
        )
        return int(row[0])

    async def usage_rows(
        self, account_id: int, where: UsageFilter, limit: int, before: UsageCursor | None
    ) -> list[UsageRow]:
        sql, args = _usage_where(account_id, where)
        if before is not None:
            sql += " AND (created_at, id) < (?, ?)"
            args += (stored_time(before.created_at), before.id)
        rows = await self._scan(
            lambda conn: conn.execute(
                "SELECT id, kind, model, served_by, status, prompt_tokens, completion_tokens,"
                " units, usage_estimated, cost, created_at, request_id FROM charges WHERE "
                + sql
                + " ORDER BY created_at DESC, id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        )
        return [_usage_row(r) for r in rows]

    async def usage_by_day(self, account_id: int, where: UsageFilter, limit: int) -> list[UsageSum]:
        # created_at is stored as "YYYY-MM-DD HH:MM:SS.ffffff" in UTC: its first 10 characters
        # are the UTC day
        return await self._sums("substr(created_at, 1, 10)", "label DESC", account_id, where, limit)

    async def usage_by_model(
        self, account_id: int, where: UsageFilter, limit: int
    ) -> list[UsageSum]:
        return await self._sums("model", "cost DESC, label", account_id, where, limit)

    async def _sums(
        self, label: str, order: str, account_id: int, where: UsageFilter, limit: int
    ) -> list[UsageSum]:
        sql, args = _usage_where(account_id, where)
        rows = await self._scan(
            lambda conn: conn.execute(
                f"SELECT {label} AS label, count(*),"
                " COALESCE(SUM(CASE WHEN status = 'settled' THEN cost ELSE 0 END), 0) AS cost"
                f" FROM charges WHERE {sql} GROUP BY label ORDER BY {order} LIMIT ?",
                (*args, limit),
            ).fetchall()
        )
        return [UsageSum(str(r[0]), int(r[1]), int(r[2])) for r in rows]
