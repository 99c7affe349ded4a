"""Property: any sequence of top-ups, holds, settles, releases and refunds conserves money, on
SQLite and PostgreSQL (the shared test database: each example has an account of its own)."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minitoolai.accounts.service import AccountService
from minitoolai.errors import InsufficientCredit
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger
from tests.conftest import unique

op = st.one_of(
    st.tuples(st.just("topup"), st.integers(1, 10_000)),
    st.tuples(st.just("hold"), st.integers(0, 5_000)),
    st.tuples(st.just("settle"), st.integers(0, 10), st.integers(0, 6_000)),
    st.tuples(st.just("release"), st.integers(0, 10)),
    st.tuples(st.just("refund"), st.integers(0, 10)),
)


@settings(
    # 100 sequences of up to 30 steps: about 3 s on SQLite and 10 s on PostgreSQL on 2 busy cores
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(op, max_size=30))
def test_random_sequences_conserve_money(db: Database, ops: list[tuple[object, ...]]) -> None:
    asyncio.run(_check(db.url, ops))


async def _check(url: str, ops: list[tuple[object, ...]]) -> None:
    db = Database(url)  # a fresh engine: hypothesis runs each example in its own event loop
    ledger = Ledger(db)
    try:
        account, _ = await AccountService(db, ledger).create(unique())
        holds: list[str] = []
        expected_balance = 0  # a model of the account, kept by hand
        held: dict[str, int] = {}
        settled: dict[str, int] = {}
        for step in ops:
            kind = step[0]
            if kind == "topup":
                await ledger.top_up(account.id, int(step[1]))  # type: ignore[call-overload]
                expected_balance += int(step[1])  # type: ignore[call-overload]
            elif kind == "hold":
                amount = int(step[1])  # type: ignore[call-overload]
                available = expected_balance - sum(held.values())
                try:
                    h = await ledger.hold(account.id, amount, kind="chat", model="m")
                except InsufficientCredit:
                    assert amount > available
                    continue
                assert amount <= available
                holds.append(h.charge_id)
                held[h.charge_id] = amount
            elif holds:
                charge = holds[int(step[1]) % len(holds)]  # type: ignore[call-overload]
                if kind == "settle":
                    done = await ledger.settle(charge, int(step[2]))  # type: ignore[call-overload]
                    if charge in held:
                        assert done.applied and done.cost == min(int(step[2]), held[charge])  # type: ignore[call-overload]
                        expected_balance -= done.cost
                        settled[charge] = done.cost
                        del held[charge]
                    else:
                        assert not done.applied
                elif kind == "release":
                    done = await ledger.release(charge)
                    assert done.applied == (charge in held)
                    held.pop(charge, None)
                elif kind == "refund":
                    back = await ledger.refund(charge)
                    assert back == settled.pop(charge, 0)
                    expected_balance += back
            balance, on_hold = await ledger.balances(account.id)
            assert (balance, on_hold) == (expected_balance, sum(held.values()))
            assert balance - on_hold >= 0
            assert await ledger.entry_sums(account.id) == (balance, on_hold)
    finally:
        await ledger.close()
        await db.dispose()
