"""Property: any sequence of code batches, redemptions (new, used, unknown, racing), top-ups
and charges conserves money, on SQLite and PostgreSQL: the balance is the sum of the entries,
every redeem entry is paid by exactly one code, and the balance is what a model of the
account says."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minitoolai.accounts.service import AccountService
from minitoolai.codes.service import CodeService
from minitoolai.codes.throttle import FailedRedemptions
from minitoolai.errors import InsufficientCredit, InvalidRequest
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger
from tests.conftest import unique
from tests.support.ledger_audit import audit

op = st.one_of(
    st.tuples(st.just("make"), st.integers(1, 10_000), st.integers(1, 3)),
    st.tuples(st.just("redeem"), st.integers(0, 20)),  # a code by index: new or used
    st.tuples(st.just("race"), st.integers(0, 20), st.integers(2, 6)),
    st.tuples(
        st.just("unknown"),
    ),
    st.tuples(st.just("topup"), st.integers(1, 10_000)),
    st.tuples(st.just("spend"), st.integers(0, 5_000), st.integers(0, 6_000)),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(op, max_size=25))
def test_random_sequences_conserve_money(db: Database, ops: list[tuple[int | str, ...]]) -> None:
    name, expected = asyncio.run(_check(db.url, ops))
    ledger = audit(db.url, name)
    assert ledger.problems() == []
    assert ledger.balance == expected


async def _check(url: str, ops: list[tuple[int | str, ...]]) -> tuple[str, int]:
    db = Database(url)  # a fresh engine: hypothesis runs each example in its own event loop
    ledger = Ledger(db)
    codes = CodeService(db, ledger, throttle=FailedRedemptions(limit=10_000))
    try:
        account, _ = await AccountService(db, ledger).create(unique())
        made: list[tuple[str, int]] = []  # (code, amount)
        used: set[str] = set()
        expected = 0
        for step in ops:
            kind = step[0]
            if kind == "make":
                batch = await codes.create_batch(int(step[1]), int(step[2]))
                made += [(c, batch.amount) for c in batch.codes]
            elif kind in ("redeem", "race") and made:
                code, amount = made[int(step[1]) % len(made)]
                tries = 1 if kind == "redeem" else int(step[2])
                results = await asyncio.gather(
                    *(codes.redeem(account.id, code) for _ in range(tries)),
                    return_exceptions=True,
                )
                won = [r for r in results if not isinstance(r, BaseException)]
                assert all(isinstance(r, InvalidRequest) for r in results if r not in won)
                assert len(won) == (0 if code in used else 1)
                if won:
                    used.add(code)
                    expected += amount
                    assert won[0].balance == expected
            elif kind == "unknown":
                try:
                    await codes.redeem(account.id, "MTAI-0000-0000-0000-0000")
                except InvalidRequest:
                    pass
                else:
                    raise AssertionError("an unknown code credited")
            elif kind == "topup":
                await ledger.top_up(account.id, int(step[1]))
                expected += int(step[1])
            elif kind == "spend":
                try:
                    hold = await ledger.hold(account.id, int(step[1]), kind="chat", model="m")
                except InsufficientCredit:
                    assert int(step[1]) > expected
                    continue
                done = await ledger.settle(hold.charge_id, int(step[2]))
                expected -= done.cost
        assert await ledger.balances(account.id) == (expected, 0)
        assert await ledger.entry_sums(account.id) == (expected, 0)
        return account.name, expected
    finally:
        await ledger.close()
        await db.dispose()
