"""Leases on SQLite (``ledger.leases``): the statements of ``store/pg_leases.py``, as the steps
of one ``BEGIN IMMEDIATE`` transaction each (the caller's, ``SqliteLedgerStore._run``).

``BEGIN IMMEDIATE`` takes the write lock first, so what a step reads (the account's available
balance, what a lease still holds) cannot change before it writes: the reads and writes of each
function are one, as ``FOR UPDATE`` makes them on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from minitoolai.ledger.store.base import RENEW_BATCH, Finish, Finished
from minitoolai.ledger.store.sqlite_rows import (
    INSERT_FINISHED,
    add_entry,
    finished_row,
    stored_time,
)

_ENTRY = (
    "INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held, note, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def finish_leased(conn: sqlite3.Connection, steps: list[Finish]) -> list[Finished | None]:
    """Requests held on leases: each one's charge row written settled (or released), with
    its ``hold`` and ``settle``/``release`` entries, and the costs drawn from each lease at
    once (one update of the lease and of its account, one ``draw`` entry, per lease): the
    statement ``FINISH_LEASED`` is on PostgreSQL. None for a step that writes nothing: its
    charge has a row already (it landed before), or its lease does not hold its cost (swept:
    the caller re-creates the charge from the balance); what fits goes in ``steps``' order."""
    ids = [s.charge_id for s in steps]
    landed = {r[0] for r in conn.execute(_ids_in("SELECT id FROM charges WHERE id", ids), ids)}
    names = sorted({s.lease for s in steps if s.lease is not None})
    room = {
        str(r[0]): (int(r[1]), int(r[2]))
        for r in conn.execute(
            _ids_in("SELECT id, account_id, held_amount FROM charges WHERE id", names)
            + " AND kind = 'lease' AND status = 'held'",
            names,
        )
    }
    drawn: dict[str, tuple[int, int, str]] = {}  # lease -> (account, cost, last step's time)
    charges: list[tuple[Any, ...]] = []
    entries: list[tuple[Any, ...]] = []
    done: list[Finished | None] = []
    for s in steps:
        c = s.charge
        if c is None:
            raise ValueError("a leased step carries its hold")
        charged = min(s.cost, c.amount) if s.status == "settled" else 0
        lease = s.lease or ""
        if s.charge_id in landed:
            done.append(None)
            continue
        now = stored_time(s.now)
        if charged:
            account, left = room.get(lease, (None, 0))
            if account != c.account_id or left < charged:  # gone, or another account's
                done.append(None)
                continue
            room[lease] = (account, left - charged)
            drawn[lease] = (account, drawn.get(lease, (0, 0, ""))[1] + charged, now)
        landed.add(s.charge_id)  # the same step twice in one batch lands once
        held_at = stored_time(c.now)
        charges.append(finished_row(c, s, s.status, charged))
        entries.append((c.account_id, s.charge_id, "hold", 0, c.amount, None, held_at))
        entries.append((c.account_id, s.charge_id, s.kind, -charged, -c.amount, s.note, now))
        done.append(Finished(c.account_id, c.amount, charged, c.model))
    for lease, (account, cost, now) in drawn.items():
        conn.execute("UPDATE charges SET held_amount = held_amount - ? WHERE id = ?", (cost, lease))
        conn.execute(
            "UPDATE accounts SET balance = balance - ?, held = held - ? WHERE id = ?",
            (cost, cost, account),
        )
        entries.append((account, lease, "draw", 0, -cost, None, now))
    conn.executemany(INSERT_FINISHED, charges)
    conn.executemany(_ENTRY, entries)
    return done


def _ids_in(sql: str, ids: list[str]) -> str:
    return f"{sql} IN ({', '.join('?' * len(ids))})"


def lease_more(
    conn: sqlite3.Connection,
    lease_id: str,
    account_id: int,
    need: int,
    want: int,
    share: int,
    now: str,
    expires_at: str,
    *,
    new: bool,
) -> int | None:
    """``LeaseStore.lease_more``: a new lease's row and ``hold`` entry, or a ``grow`` of one
    still ``held`` (its deadline moved on too); what it added, 0 when refused, None when the
    lease is no longer ``held``."""
    if (
        not new
        and not conn.execute(
            "SELECT 1 FROM charges WHERE id = ? AND kind = 'lease' AND status = 'held'"
            " AND account_id = ?",
            (lease_id, account_id),
        ).fetchone()
    ):
        return None
    row = conn.execute("SELECT balance - held FROM accounts WHERE id = ?", (account_id,)).fetchone()
    if row is None or int(row[0]) < need:
        return 0
    amount = min(want, int(row[0]) // share)
    conn.execute("UPDATE accounts SET held = held + ? WHERE id = ?", (amount, account_id))
    if new:
        conn.execute(
            "INSERT INTO charges (id, account_id, kind, model, status, held_amount,"
            " usage_estimated, created_at, expires_at)"
            " VALUES (?, ?, 'lease', 'lease', 'held', ?, 0, ?, ?)",
            (lease_id, account_id, amount, now, expires_at),
        )
    else:
        conn.execute(
            "UPDATE charges SET held_amount = held_amount + ?, expires_at = ? WHERE id = ?",
            (amount, expires_at, lease_id),
        )
    add_entry(conn, account_id, lease_id, "hold" if new else "grow", 0, amount, None, now)
    return amount


def return_lease(conn: sqlite3.Connection, lease_id: str, amount: int, now: str) -> None:
    """``LeaseStore.return_lease``: ``amount`` of a ``held`` lease back to its account (a
    ``return`` entry); a lease left holding nothing is ``released`` (a ``release`` entry)."""
    row = conn.execute(
        "SELECT account_id, held_amount FROM charges WHERE id = ? AND kind = 'lease'"
        " AND status = 'held' AND held_amount >= ?",
        (lease_id, amount),
    ).fetchone()
    if row is None:
        return
    account_id, closing = int(row[0]), int(row[1]) == amount
    if closing:
        conn.execute(
            "UPDATE charges SET held_amount = 0, status = 'released', cost = 0, settled_at = ?"
            " WHERE id = ?",
            (now, lease_id),
        )
    else:
        conn.execute(
            "UPDATE charges SET held_amount = held_amount - ? WHERE id = ?", (amount, lease_id)
        )
    conn.execute("UPDATE accounts SET held = held - ? WHERE id = ?", (amount, account_id))
    kind = "release" if closing else "return"
    add_entry(conn, account_id, lease_id, kind, 0, -amount, None, now)


def renew_leases(conn: sqlite3.Connection, lease_ids: list[str], deadline: str) -> set[str]:
    """``LeaseStore.renew_leases``: the deadline of those still ``held`` moved; their ids."""
    renewed: set[str] = set()
    for i in range(0, len(lease_ids), RENEW_BATCH):
        batch = lease_ids[i : i + RENEW_BATCH]
        marks = ", ".join("?" * len(batch))
        rows = conn.execute(
            "UPDATE charges SET expires_at = ? WHERE kind = 'lease' AND status = 'held'"
            f" AND id IN ({marks}) RETURNING id",
            (deadline, *batch),
        ).fetchall()
        renewed |= {str(r[0]) for r in rows}
    return renewed
