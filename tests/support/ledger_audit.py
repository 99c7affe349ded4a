"""Read a gateway's ledger straight from its database and say what is wrong with it.

Used after crashes, where the server that wrote the ledger may be dead: the database is the
only witness. Works on SQLite and PostgreSQL (plain SQL through SQLAlchemy).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

#: the ledger entries each state of a charge may have (exactly one of these multisets). The
#: sweeper marks a hold whose deadline passed ``expired`` (a release entry); if its request
#: still finishes later, a settle entry charges it then (``settled`` after a release).
ALLOWED_ENTRIES: dict[str, list[Counter[str]]] = {
    "held": [Counter(hold=1)],
    "settled": [Counter(hold=1, settle=1), Counter(hold=1, release=1, settle=1)],
    "released": [Counter(hold=1, release=1)],
    "expired": [Counter(hold=1, release=1)],
    "refunded": [
        Counter(hold=1, settle=1, refund=1),
        Counter(hold=1, release=1, settle=1, refund=1),
    ],
}
#: a lease (``ledger.leases``): opened with a ``hold``, then grown, drawn on by its requests'
#: settles and partly given back any number of times, and finally released (by its process, or
#: by the sweeper when that process died: ``expired``); it never moves the balance itself
LEASE_STEPS = ("hold", "grow", "draw", "return", "release")
#: the states a charge may end in: paid, or given back whole
FINAL = ("settled", "released", "expired", "refunded")
#: the entries that belong to no charge: money in, by the operator or by a redeem code
CREDIT_KINDS = ("topup", "redeem", "adjustment")  # adjustment: an operator's debit
#: and card payments (Stripe): the credit, and what refunds and disputes took back
CREDIT_KINDS += ("payment", "payment_refund", "payment_dispute")


@dataclass
class Charge:
    id: str
    kind: str
    model: str
    status: str
    held_amount: int
    cost: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    entries: Counter[str] = field(default_factory=Counter)
    amount_sum: int = 0  # this charge's entries' change to the balance
    held_sum: int = 0  # and to the held amount

    @property
    def doubled(self) -> bool:
        """A step that happened twice: charged twice, freed twice, refunded twice."""
        return any(self.entries[k] > 1 for k in ("hold", "settle", "release", "refund"))


@dataclass
class Audit:
    balance: int
    held: int
    entries_amount: int
    entries_held: int
    charges: list[Charge]
    topups: int
    redeemed: int = 0  # what ``redeem`` entries credited
    #: what is wrong with the entries that belong to no charge, and with the codes that paid
    credit_problems: list[str] = field(default_factory=list)
    #: the leases of the account's balance its processes held (``ledger.leases``), apart from
    #: ``charges``, which are its requests'
    leases: list[Charge] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Every broken invariant, in words; empty when the ledger is sound."""
        out = list(self.credit_problems)
        if self.balance != self.entries_amount:
            out.append(f"balance {self.balance} != sum of entries {self.entries_amount}")
        if self.held != self.entries_held:
            out.append(f"held {self.held} != sum of held entries {self.entries_held}")
        for c in self.leases:
            out += _lease_problems(c)
        for c in self.charges:
            if c.doubled:
                out.append(f"{c.id}: a step twice, a double charge ({dict(c.entries)})")
            allowed = ALLOWED_ENTRIES.get(c.status)
            if allowed is None:
                out.append(f"{c.id}: unknown status {c.status!r}")
            elif c.entries not in allowed:
                out.append(f"{c.id}: status {c.status} but entries {dict(c.entries)}")
            if c.status != "held" and c.held_sum != 0:
                out.append(f"{c.id}: {c.status} but still holds {c.held_sum}")
            net = {"settled": -(c.cost or 0)}.get(c.status, 0)
            if c.amount_sum != net:
                out.append(f"{c.id}: {c.status} with cost {c.cost} but moved {c.amount_sum}")
        return out

    @property
    def leased(self) -> int:
        """What leases hold now: part of ``held``, no request's until one is held on it."""
        return sum(c.held_amount for c in self.leases if c.status == "held")

    def by_status(self) -> Counter[str]:
        return Counter(c.status for c in self.charges)


def _lease_problems(c: Charge) -> list[str]:
    out = []
    if c.entries["hold"] != 1 or c.entries["release"] > 1 or set(c.entries) - set(LEASE_STEPS):
        out.append(f"{c.id}: a lease with entries {dict(c.entries)}")
    if c.status not in ("held", "released", "expired"):
        out.append(f"{c.id}: a lease {c.status}")
    if (c.status == "held") == (c.entries["release"] == 1):
        out.append(f"{c.id}: a lease {c.status} with entries {dict(c.entries)}")
    if c.held_sum != (c.held_amount if c.status == "held" else 0):
        out.append(f"{c.id}: a lease {c.status} of {c.held_amount} whose entries hold {c.held_sum}")
    if c.amount_sum != 0 or c.held_sum < 0:
        out.append(f"{c.id}: a lease that moved the balance by {c.amount_sum}")
    return out


async def _audit(database_url: str, account: str) -> Audit:
    # one snapshot for every read (PostgreSQL): a step that commits between two of them (a
    # lease given back in the background) would otherwise look like money moved without entries
    isolation = {"isolation_level": "REPEATABLE READ"} if "postgresql" in database_url else {}
    engine = create_async_engine(database_url, **isolation)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT id, balance, held FROM accounts WHERE name = :n"), {"n": account}
                )
            ).one()
            account_id, balance, held = int(row[0]), int(row[1]), int(row[2])
            sums = (
                await conn.execute(
                    text(
                        "SELECT COALESCE(SUM(amount), 0), COALESCE(SUM(held), 0),"
                        " COALESCE(SUM(CASE WHEN kind = 'topup' THEN amount ELSE 0 END), 0)"
                        " FROM ledger_entries WHERE account_id = :a"
                    ),
                    {"a": account_id},
                )
            ).one()
            charges: dict[str, Charge] = {}
            orphans: list[str] = []
            for r in await conn.execute(
                text(
                    "SELECT id, kind, model, status, held_amount, cost, prompt_tokens,"
                    " completion_tokens FROM charges WHERE account_id = :a"
                ),
                {"a": account_id},
            ):
                charges[r[0]] = Charge(*r)
            for charge_id, kind, amount, held_change in await conn.execute(
                text(
                    "SELECT charge_id, kind, amount, held FROM ledger_entries"
                    " WHERE account_id = :a AND charge_id IS NOT NULL"
                ),
                {"a": account_id},
            ):
                c = charges.get(charge_id)
                if c is None:  # PostgreSQL has no foreign keys here (migration 0015)
                    orphans.append(f"a {kind} entry of charge {charge_id}, not the account's")
                    continue
                c.entries[kind] += 1
                c.amount_sum += int(amount)
                c.held_sum += int(held_change)
            orphans += await _strangers(conn, account_id)
            redeemed, credit_problems = await _credits(conn, account_id)
            credit_problems += orphans
            credit_problems += await _payments(conn, account_id)
            credit_problems += await budget_counter_problems(conn, account_id)
    finally:
        await engine.dispose()
    return Audit(
        balance,
        held,
        int(sums[0]),
        int(sums[1]),
        [c for c in charges.values() if c.kind != "lease"],
        int(sums[2]),
        redeemed,
        credit_problems,
        [c for c in charges.values() if c.kind == "lease"],
    )


async def _strangers(conn: Any, account_id: int) -> list[str]:
    """The account's charges that name a key that is not the account's: what the foreign keys
    of ``charges`` refused until migration 0015 (PostgreSQL), and the audit checks instead."""
    rows = await conn.execute(
        text(
            "SELECT c.id, c.api_key_id FROM charges c WHERE c.account_id = :a"
            " AND c.api_key_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM api_keys k"
            " WHERE k.id = c.api_key_id AND k.account_id = :a)"
        ),
        {"a": account_id},
    )
    return [f"{charge_id}: charged to key {key}, not the account's" for charge_id, key in rows]


async def _credits(conn: Any, account_id: int) -> tuple[int, list[str]]:
    """Entries without a charge: each a known kind that holds nothing, and each ``redeem``
    entry paid by exactly one code of this account, for its batch's amount, and no code of
    this account redeemed without its entry. Returns what the codes credited, and problems."""
    problems, redeemed = [], 0
    for entry_id, kind, amount, held_change in await conn.execute(
        text(
            "SELECT id, kind, amount, held FROM ledger_entries"
            " WHERE account_id = :a AND charge_id IS NULL"
        ),
        {"a": account_id},
    ):
        if kind not in CREDIT_KINDS:
            problems.append(f"entry {entry_id}: {kind!r} with no charge")
        if int(held_change) != 0:
            problems.append(f"entry {entry_id}: a {kind} that changes the held amount")
        if kind == "redeem":
            redeemed += int(amount)
    paid: Counter[int] = Counter()
    for entry_id, amount, entry_account, code_amount in await conn.execute(
        text(
            "SELECT e.id, e.amount, e.account_id, b.amount FROM redeem_codes c"
            " JOIN code_batches b ON b.id = c.batch_id"
            " LEFT JOIN ledger_entries e ON e.id = c.entry_id"
            " WHERE c.redeemed_by = :a"
        ),
        {"a": account_id},
    ):
        if entry_id is None:
            problems.append("a code redeemed by the account with no entry paying it")
            continue
        paid[int(entry_id)] += 1
        if int(entry_account) != account_id or int(amount) != int(code_amount):
            problems.append(f"entry {entry_id}: a code of {code_amount} paid {amount}")
    for (entry_id,) in await conn.execute(
        text("SELECT id FROM ledger_entries WHERE account_id = :a AND kind = 'redeem'"),
        {"a": account_id},
    ):
        if paid[int(entry_id)] != 1:
            problems.append(f"redeem entry {entry_id} is paid by {paid[int(entry_id)]} codes")
    return redeemed, problems


async def _payments(conn: Any, account_id: int) -> list[str]:
    """Card payments: each ``payment`` entry is the credit of exactly one paid order of this
    account, for its amount; each refund or dispute entry is named by one applied Stripe event
    of such an order, takes back (never gives), and an order never has more taken back (plus
    what could not be taken) than it paid."""
    problems = []
    orders = {
        r[0]: r
        for r in await conn.execute(
            text(
                "SELECT id, status, amount, entry_id, taken_back, shortfall FROM payment_orders"
                " WHERE account_id = :a"
            ),
            {"a": account_id},
        )
    }
    paid_by = {int(r[3]): r for r in orders.values() if r[3] is not None}
    for order_id, status, _amount, entry_id, _taken, _short in orders.values():
        if (status == "created") != (entry_id is None):
            problems.append(f"order {order_id}: {status} with payment entry {entry_id}")
    taken: Counter[str] = Counter()
    for entry_id, kind, amount, order_id, events in await conn.execute(
        text(
            "SELECT e.id, e.kind, e.amount, MIN(p.order_id), COUNT(p.id) FROM ledger_entries e"
            " LEFT JOIN payment_events p ON p.entry_id = e.id"
            " WHERE e.account_id = :a AND e.kind IN ('payment', 'payment_refund',"
            " 'payment_dispute') GROUP BY e.id, e.kind, e.amount"
        ),
        {"a": account_id},
    ):
        if kind == "payment":
            order = paid_by.get(int(entry_id))
            if order is None or int(order[2]) != int(amount):
                problems.append(
                    f"payment entry {entry_id} of {amount} pays no order of that amount"
                )
            continue
        if int(events) != 1 or order_id not in orders:
            problems.append(f"{kind} entry {entry_id} is named by {events} events of its orders")
            continue
        if int(amount) > 0:
            problems.append(f"{kind} entry {entry_id} gives {amount} instead of taking")
        taken[order_id] -= int(amount)
    for order_id, _status, amount, _entry, taken_back, shortfall in orders.values():
        if taken[order_id] != int(taken_back):
            problems.append(
                f"order {order_id}: entries took {taken[order_id]}, it says {taken_back}"
            )
        if int(taken_back) + int(shortfall) > int(amount):
            problems.append(f"order {order_id}: {taken_back} + {shortfall} asked back of {amount}")
    return problems


async def budget_counter_problems(conn: Any, account_id: int) -> list[str]:
    """Spend budgets' counters (``budget_spend``): for the account and each of its keys, per
    period, ``spent`` is exactly the costs of its settled budgeted charges held in that period
    and ``held`` exactly the holds of its live ones (a period is the UTC day, month, or all
    time of the hold: ``charges.budget_period``)."""
    want: Counter[tuple[str, int, str, str]] = Counter()
    for key_id, status, held_amount, cost, day in await conn.execute(
        text(
            "SELECT api_key_id, status, held_amount, cost, budget_period FROM charges"
            " WHERE account_id = :a AND budget_period IS NOT NULL"
        ),
        {"a": account_id},
    ):
        scopes = [("account", account_id)] + ([] if key_id is None else [("key", int(key_id))])
        for scope, scope_id in scopes:
            for period in ("day:" + day, "month:" + day[:7], "total"):
                if status == "settled":
                    want[(scope, scope_id, period, "spent")] += int(cost or 0)
                elif status == "held":
                    want[(scope, scope_id, period, "held")] += int(held_amount)
    have: Counter[tuple[str, int, str, str]] = Counter()
    for scope, scope_id, period, spent, held in await conn.execute(
        text(
            "SELECT scope, scope_id, period, spent, held FROM budget_spend"
            " WHERE (scope = 'account' AND scope_id = :a) OR (scope = 'key' AND scope_id IN"
            " (SELECT id FROM api_keys WHERE account_id = :a))"
        ),
        {"a": account_id},
    ):
        have[(scope, int(scope_id), period, "spent")] += int(spent)
        have[(scope, int(scope_id), period, "held")] += int(held)
    return [
        f"budget {k[0]} {k[1]} {k[2]}: {k[3]} {have[k]} != {want[k]} by its charges"
        for k in sorted(set(want) | set(have))
        if have[k] != want[k]
    ]


async def budget_problems(db: Any, account_id: int) -> list[str]:
    """``budget_counter_problems`` through a running ``Database`` (for async tests)."""
    async with db.read() as conn:
        return await budget_counter_problems(conn, account_id)


def audit(database_url: str, account: str) -> Audit:
    """The account's ledger as its database has it (call from synchronous tests)."""
    return asyncio.run(_audit(database_url, account))


def rows(database_url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as conn:
                return [dict(r._mapping) for r in await conn.execute(text(sql), params)]
        finally:
            await engine.dispose()

    return asyncio.run(read())
