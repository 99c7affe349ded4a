"""How SQLite's ledger writes its rows: times, JSON, a ledger entry (``store/sqlite.py`` and
``store/sqlite_leases.py``)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import orjson

from minitoolai.ledger.store.base import Finish, NewCharge


def stored_time(value: datetime) -> str:
    """The storage format SQLAlchemy's SQLite DateTime uses (naive UTC), so both agree.

    Written out by hand: ``replace(tzinfo=None).isoformat(sep=" ", timespec=...)`` spends
    ~18 k instructions on keyword parsing and formatting, three times per request."""
    u = value if value.tzinfo is UTC else value.astimezone(UTC)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 (twice an f-string's speed)
        u.year,
        u.month,
        u.day,
        u.hour,
        u.minute,
        u.second,
        u.microsecond,
    )


def read_time(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def stored_json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def read_json(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def add_entry(
    conn: sqlite3.Connection,
    account_id: int,
    charge_id: str | None,
    kind: str,
    amount: int,
    held: int,
    note: str | None,
    now: str,
) -> None:
    conn.execute(
        "INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, note, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (account_id, charge_id, kind, amount, held, note, now),
    )


#: a charge written finished in one step (a leased request's settle or release, a lost hold's
#: settle): its hold and its finish in one row; nothing if the row is there already
INSERT_FINISHED = (
    "INSERT INTO charges (id, account_id, api_key_id, kind, model, status, held_amount, cost,"
    " usage_estimated, created_at, expires_at, settled_at, prompt_tokens, completion_tokens,"
    " units, served_by, result, request_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)


def finished_row(c: NewCharge, s: Finish, status: str, charged: int) -> tuple[Any, ...]:
    """``INSERT_FINISHED``'s parameters: hold ``c`` finished by ``s``, ``charged`` taken."""
    return (
        c.id,
        c.account_id,
        c.api_key_id,
        c.kind,
        c.model,
        status,
        c.amount,
        charged,
        int(s.estimated),
        stored_time(c.now),
        stored_time(c.expires_at),
        stored_time(s.now),
        s.prompt_tokens,
        s.completion_tokens,
        s.units,
        s.served_by,
        stored_json(s.result),
        c.request_id,
    )
