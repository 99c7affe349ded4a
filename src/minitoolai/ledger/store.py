"""The two ledger steps every request pays for, in one round trip each.

``hold`` and ``finish`` (settle or release) run on every charged request, so they skip the ORM
layers: on PostgreSQL each is a single statement of data-modifying CTEs sent through asyncpg
(prepared once, one network round trip, the account row locked only for that statement); on
SQLite each is one transaction run in a dedicated writer thread (one thread hop instead of one
per statement). Everything else in the ledger goes through SQLAlchemy.

Both keep the invariant of ``ledger.service``: every change to ``accounts`` is written in the
same transaction as its ``ledger_entries`` row.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

import orjson
from sqlalchemy.engine import make_url

T = TypeVar("T")
log = logging.getLogger("minitoolai.ledger")
HoldOutcome = Literal["held", "insufficient", "duplicate"]


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


@dataclass(slots=True)
class Finish:
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

    @property
    def status(self) -> str:
        if self.kind == "settle":
            return "settled"
        return "released" if self.expired_before is None else "expired"


@dataclass(slots=True)
class Finished:
    account_id: int
    held_amount: int
    charged: int


class LedgerStore(Protocol):
    async def hold(self, charge: NewCharge) -> HoldOutcome: ...

    async def finish(self, step: Finish) -> Finished | None:
        """None when the charge was not ``held`` (already finished, or not expired yet)."""
        ...

    async def close(self) -> None: ...


# -- SQLite --------------------------------------------------------------------------------


def _sqlite_time(value: datetime) -> str:
    """The storage format SQLAlchemy's SQLite DateTime uses (naive UTC), so both agree."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


class SqliteLedgerStore:
    """Each step is one ``BEGIN IMMEDIATE`` transaction, run right on the event loop.

    A WAL-mode write with ``synchronous=NORMAL`` takes tens of microseconds, less than a hop to
    a thread and back, so the loop runs it inline with ``busy_timeout=0``: it never waits
    there. When another process holds the write lock (a CLI top-up, a worker), the step goes
    to a writer thread whose connection waits up to 30 s instead. Checkpoints, the one slow
    part of WAL, are kept off the loop: the inline connection never checkpoints itself; the
    writer thread does, every few hundred commits.
    """

    CHECKPOINT_EVERY = 500

    def __init__(self, path: str, write_lock: asyncio.Lock | None = None) -> None:
        self.path = path
        # shared with ``Database.write`` so this process's writers queue instead of colliding
        self._write_lock = write_lock or asyncio.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite")
        self._inline: sqlite3.Connection | None = None
        self._threaded: sqlite3.Connection | None = None
        self._commits = 0

    def _connect(self, busy_ms: int, autocheckpoint: int) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            f"busy_timeout={busy_ms}",
            "foreign_keys=ON",
            f"wal_autocheckpoint={autocheckpoint}",
        ):
            conn.execute(f"PRAGMA {pragma}")
        return conn

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
        loop = asyncio.get_running_loop()
        async with self._write_lock:
            if self._inline is None:
                self._inline = self._connect(busy_ms=0, autocheckpoint=0)
            try:
                result = self._transaction(self._inline, fn)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                # another process is writing: wait for it in the writer thread, not here
                result = await loop.run_in_executor(self._pool, self._in_thread, fn)
            self._commits += 1
            if self._commits % self.CHECKPOINT_EVERY == 0:
                loop.run_in_executor(self._pool, self._checkpoint)
            return result

    async def hold(self, c: NewCharge) -> HoldOutcome:
        now, expires = _sqlite_time(c.now), _sqlite_time(c.expires_at)

        def run(conn: sqlite3.Connection) -> HoldOutcome:
            moved = conn.execute(
                "UPDATE accounts SET held = held + ? WHERE id = ? AND balance - held >= ?",
                (c.amount, c.account_id, c.amount),
            ).rowcount
            if not moved:
                return "insufficient"
            try:
                conn.execute(
                    "INSERT INTO charges (id, account_id, api_key_id, kind, model, status,"
                    " held_amount, usage_estimated, idempotency_key, request_hash, created_at,"
                    " expires_at) VALUES (?, ?, ?, ?, ?, 'held', ?, 0, ?, ?, ?, ?)",
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
                        expires,
                    ),
                )
            except sqlite3.IntegrityError:
                if c.idempotency_key is None:
                    raise
                raise _Duplicate from None
            conn.execute(
                "INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, created_at)"
                " VALUES (?, ?, 'hold', 0, ?, ?)",
                (c.account_id, c.id, c.amount, now),
            )
            return "held"

        try:
            return await self._run(run)
        except _Duplicate:
            return "duplicate"

    async def finish(self, s: Finish) -> Finished | None:
        now = _sqlite_time(s.now)
        result = None if s.result is None else orjson.dumps(s.result).decode()
        expiry = "" if s.expired_before is None else " AND expires_at < ?"
        expiry_args = () if s.expired_before is None else (_sqlite_time(s.expired_before),)

        def run(conn: sqlite3.Connection) -> Finished | None:
            row = conn.execute(
                "UPDATE charges SET status = ?, settled_at = ?, cost = MIN(held_amount, ?),"
                " prompt_tokens = ?, completion_tokens = ?, units = ?, usage_estimated = ?,"
                " served_by = ?, result = COALESCE(?, result)"
                " WHERE id = ? AND status = 'held'"
                + expiry
                + " RETURNING account_id, held_amount, cost",
                (
                    s.status,
                    now,
                    s.cost,
                    s.prompt_tokens,
                    s.completion_tokens,
                    s.units,
                    int(s.estimated),
                    s.served_by,
                    result,
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
            conn.execute(
                "INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, note,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (account_id, s.charge_id, s.kind, -charged, -held_amount, s.note, now),
            )
            return Finished(account_id, held_amount, charged)

        return await self._run(run)

    async def close(self) -> None:
        def shut() -> None:
            for conn in (self._inline, self._threaded):
                if conn is not None:
                    conn.close()
            self._inline = self._threaded = None

        await asyncio.get_running_loop().run_in_executor(self._pool, shut)
        self._pool.shutdown(wait=False)


class _Duplicate(Exception):
    pass


# -- PostgreSQL ----------------------------------------------------------------------------

_PG_HOLD = """
WITH acct AS (
    UPDATE accounts SET held = held + $3
    WHERE id = $2 AND balance - held >= $3
    RETURNING id
), charge AS (
    INSERT INTO charges (id, account_id, api_key_id, kind, model, status, held_amount,
                         usage_estimated, idempotency_key, request_hash, created_at, expires_at)
    SELECT $1, id, $4, $5, $6, 'held', $3, false, $7, $10, $8, $9 FROM acct
    RETURNING id
), entry AS (
    INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, created_at)
    SELECT $2, id, 'hold', 0, $3, $8 FROM charge
)
SELECT count(*) AS moved FROM charge
"""

_PG_FINISH = """
WITH charge AS (
    UPDATE charges SET status = $2, settled_at = $3, cost = LEAST(held_amount, $4),
        prompt_tokens = $5, completion_tokens = $6, units = $7, usage_estimated = $8,
        served_by = $9, result = COALESCE($10::json, result)
    WHERE id = $1 AND status = 'held' AND ($13::timestamptz IS NULL OR expires_at < $13)
    RETURNING account_id, held_amount, cost
), acct AS (
    UPDATE accounts a SET balance = a.balance - c.cost, held = a.held - c.held_amount
    FROM charge c WHERE a.id = c.account_id
    RETURNING a.id
), entry AS (
    INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, note, created_at)
    SELECT account_id, $1, $11, -cost, -held_amount, $12, $3 FROM charge
)
SELECT account_id, held_amount, cost FROM charge
"""


class PostgresLedgerStore:
    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.pool_size = pool_size
        self._pool: Any = None
        self._lock = asyncio.Lock()

    async def _acquire_pool(self) -> Any:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    import asyncpg

                    self._pool = await asyncpg.create_pool(
                        self.dsn, min_size=1, max_size=self.pool_size
                    )
        return self._pool

    async def hold(self, c: NewCharge) -> HoldOutcome:
        import asyncpg

        pool = await self._acquire_pool()
        try:
            row = await pool.fetchrow(
                _PG_HOLD,
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
            )
        except asyncpg.UniqueViolationError:  # the statement rolled back whole: nothing held
            if c.idempotency_key is None:
                raise
            return "duplicate"
        return "held" if row["moved"] else "insufficient"

    async def finish(self, s: Finish) -> Finished | None:
        pool = await self._acquire_pool()
        result = None if s.result is None else orjson.dumps(s.result).decode()
        row = await pool.fetchrow(
            _PG_FINISH,
            s.charge_id,
            s.status,
            s.now,
            s.cost,
            s.prompt_tokens,
            s.completion_tokens,
            s.units,
            s.estimated,
            s.served_by,
            result,
            s.kind,
            s.note,
            s.expired_before,
        )
        if row is None:
            return None
        return Finished(int(row["account_id"]), int(row["held_amount"]), int(row["cost"]))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def store_for(url: str, write_lock: asyncio.Lock | None = None) -> LedgerStore:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return SqliteLedgerStore(parsed.database or ":memory:", write_lock)
    return PostgresLedgerStore(url)
