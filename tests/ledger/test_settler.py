"""The group-commit settle path on both databases: ``finish_many`` moves exactly what each step
would alone, and many requests' settles racing through two writers (two replicas) stay exact."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from minitoolai.accounts.service import AccountService
from minitoolai.errors import InsufficientCredit, NotFound
from minitoolai.infra.db import Database
from minitoolai.ledger.budgets import Budgets, Caps
from minitoolai.ledger.journal import Journal
from minitoolai.ledger.service import Ledger, Settlement, UsageRecord
from minitoolai.ledger.store import Finish
from tests.conftest import unique
from tests.support.ledger_audit import budget_problems

_open: list[Ledger] = []
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
async def _close_ledgers() -> AsyncIterator[None]:
    yield
    while _open:
        await _open.pop().close()


def _ledger(db: Database) -> Ledger:
    ledger = Ledger(db)
    _open.append(ledger)
    return ledger


async def _accounts(ledger: Ledger, db: Database, n: int, credit: int) -> list[tuple[int, int]]:
    """``n`` fresh accounts: (account id, first key id)."""
    svc = AccountService(db, ledger)
    out = []
    for _ in range(n):
        account, _ = await svc.create(unique("gc"), credit)
        (key,) = await svc.list_keys(account.name)
        out.append((account.id, key.id))
    return out


def _step(charge_id: str, kind: str, cost: int, tokens: int | None = None) -> Finish:
    return Finish(
        charge_id=charge_id,
        kind="settle" if kind == "settle" else "release",
        cost=cost,
        prompt_tokens=tokens,
        completion_tokens=tokens,
        units=None,
        estimated=False,
        served_by="test",
        result=None,
        note=None,
        now=NOW,
    )


async def test_finish_many_moves_exactly_what_each_step_would(db: Database) -> None:
    ledger = _ledger(db)
    (a, key_a), (b, _) = await _accounts(ledger, db, 2, 100_000)
    budgets = Budgets(key=Caps(daily=50_000), account=Caps(monthly=60_000))
    holds = [
        await ledger.hold(a, 1_000, kind="chat", model="m1"),
        await ledger.hold(a, 2_000, kind="chat", model="m1"),  # a second charge of account a
        await ledger.hold(a, 3_000, kind="chat", model="m2", api_key_id=key_a, budgets=budgets),
        await ledger.hold(a, 4_000, kind="chat", model="m2", api_key_id=key_a, budgets=budgets),
        await ledger.hold(b, 5_000, kind="chat", model="m1"),
        await ledger.hold(b, 6_000, kind="chat", model="m1"),
    ]
    ids = [h.charge_id for h in holds]
    await ledger.settle(ids[5], 10)  # settled before the batch: the batch's step is a no-op
    steps = [
        _step(ids[0], "settle", 400, 7),
        _step(ids[1], "release", 0),
        _step(ids[2], "settle", 9_999),  # capped at its hold (3000)
        _step(ids[3], "settle", 1_500),
        _step(ids[4], "settle", 5_000),
        _step(ids[5], "settle", 777),  # already settled: None
        _step(ids[0], "release", 0),  # the same charge twice in one batch: only the first
    ]
    done = await ledger.store.finish_many(steps)
    got = [None if d is None else (d.account_id, d.held_amount, d.charged, d.model) for d in done]
    assert got == [
        (a, 1_000, 400, "m1"),
        (a, 2_000, 0, "m1"),
        (a, 3_000, 3_000, "m2"),
        (a, 4_000, 1_500, "m2"),
        (b, 5_000, 5_000, "m1"),
        None,
        None,
    ]
    assert await ledger.balances(a) == (100_000 - 400 - 3_000 - 1_500, 0)
    assert await ledger.balances(b) == (100_000 - 10 - 5_000, 0)
    for account in (a, b):
        assert await ledger.balances(account) == await ledger.entry_sums(account)
        assert await budget_problems(db, account) == []
    spend = await ledger.budget_spend("key", key_a)
    assert spend["daily"] == (4_500, 0)
    assert (await ledger.budget_spend("account", a))["monthly"] == (4_500, 0)
    usage = {row.id: row for row in await ledger.usage(a, 10)}
    assert usage[ids[0]].prompt_tokens == 7 and usage[ids[0]].served_by == "test"
    assert usage[ids[1]].status == "released" and usage[ids[1]].cost == 0
    assert await ledger.store.finish_many(steps) == [None] * len(steps)  # idempotent


async def test_settles_of_concurrent_requests_share_batches(db: Database) -> None:
    """Settles handed over while a batch is in flight go together in the next one."""
    ledger = _ledger(db)
    ((acct, _),) = await _accounts(ledger, db, 1, 1_000_000)
    holds = [await ledger.hold(acct, 100, kind="chat", model="m") for _ in range(40)]
    before = ledger.writer.batches
    got = await asyncio.gather(*(ledger.settle(h.charge_id, 60) for h in holds))
    assert got == [Settlement(h.charge_id, 60, True) for h in holds]
    assert ledger.writer.batches - before < 40
    assert await ledger.balances(acct) == (1_000_000 - 40 * 60, 0)
    assert await ledger.balances(acct) == await ledger.entry_sums(acct)


async def test_a_settle_after_a_batch_settled_it_charges_once(db: Database) -> None:
    ledger = _ledger(db)
    ((acct, _),) = await _accounts(ledger, db, 1, 10_000)
    hold = await ledger.hold(acct, 1_000, kind="chat", model="m")
    first, second = await asyncio.gather(
        ledger.settle(hold.charge_id, 300), ledger.settle(hold.charge_id, 500)
    )
    assert {first.applied, second.applied} == {True, False}
    assert first.cost == second.cost == 300
    assert await ledger.balances(acct) == (10_000 - 300, 0)


async def test_two_writers_race_over_the_same_accounts(db: Database) -> None:
    """500 holds and settles from many tasks through two ledgers (two replicas' writers)
    batching the same accounts at once, in shuffled orders: every balance exact, nothing held,
    no deadlock error escapes (every settle applied, none deferred)."""
    one, two = _ledger(db), _ledger(db)
    accounts = [acct for acct, _ in await _accounts(one, db, 5, 10_000_000)]
    rng = random.Random(16)
    plan = [(rng.choice(accounts), rng.randint(1, 999), rng.random() < 0.2) for _ in range(500)]

    async def request(i: int, account: int, cost: int, release: bool) -> tuple[int, int]:
        ledger = one if i % 2 else two
        hold = await ledger.hold(account, 1_000, kind="chat", model="m")
        await asyncio.sleep(0)
        if release:
            done = await ledger.release(hold.charge_id)
        else:
            done = await ledger.settle(hold.charge_id, cost, UsageRecord(1, 1))
        assert done.applied and not done.deferred, done
        return account, done.cost

    results = await asyncio.gather(*(request(i, *p) for i, p in enumerate(plan)))
    for account in accounts:
        spent = sum(cost for acct, cost in results if acct == account)
        assert await one.balances(account) == (10_000_000 - spent, 0)
        assert await one.balances(account) == await one.entry_sums(account)
    assert one.writer.batches + two.writer.batches < 1000


async def test_a_step_the_database_refuses_fails_alone(db: Database) -> None:
    """PostgreSQL refuses a NUL in text: that settle's batch fails, is tried one step at a
    time, and only that step is kept for a retry (SQLite stores the NUL: both land)."""
    ledger = _ledger(db)
    ((acct, _),) = await _accounts(ledger, db, 1, 10_000)
    good, bad = [await ledger.hold(acct, 1_000, kind="chat", model="m") for _ in range(2)]
    before = ledger.writer.batches
    done = await asyncio.gather(
        ledger.settle(good.charge_id, 100, UsageRecord(1, 1, served_by="fine")),
        ledger.settle(bad.charge_id, 200, UsageRecord(1, 1, served_by="nul\x00here")),
    )
    assert done[0] == Settlement(good.charge_id, 100, True)
    if db.is_sqlite:
        assert done[1] == Settlement(bad.charge_id, 200, True)
        assert await ledger.balances(acct) == (10_000 - 300, 0)
    else:
        assert done[1] == Settlement(bad.charge_id, 0, False, deferred=True)
        assert ledger.writer.batches == before  # one batch, refused, then step by step
        assert await ledger.balances(acct) == (10_000 - 100, 1_000)
    assert await ledger.balances(acct) == await ledger.entry_sums(acct)


async def _try_hold(
    ledger: Ledger, account: int, amount: int, *, unknown: bool = False
) -> str | None:
    """The hold's charge id, or None when refused (``unknown``: or the account is unknown)."""
    try:
        return (await ledger.hold(account, amount, kind="chat", model="m")).charge_id
    except InsufficientCredit:
        return None
    except NotFound:
        if not unknown:
            raise
        return None


async def test_concurrent_holds_never_hold_more_than_the_balance(db: Database) -> None:
    """200 holds at once (batched together on PostgreSQL) on a balance that covers 142."""
    ledger = _ledger(db)
    ((acct, _),) = await _accounts(ledger, db, 1, 1_000)
    held = await asyncio.gather(*(_try_hold(ledger, acct, 7) for _ in range(200)))
    assert sum(h is not None for h in held) == 1_000 // 7
    assert await ledger.balances(acct) == (1_000, 7 * (1_000 // 7))
    assert await ledger.balances(acct) == await ledger.entry_sums(acct)


async def test_holds_in_one_batch_are_decided_as_one_by_one(db: Database) -> None:
    """A hold too big for the account does not stop the smaller ones after it, in the same
    batch, from taking what is left: as if each had been tried alone (in some order), every
    refused hold is more than what is left after the others."""
    ledger = _ledger(db)
    ((acct, _),) = await _accounts(ledger, db, 1, 100)
    amounts = (150, 10, 60, 40)
    held = await asyncio.gather(*(_try_hold(ledger, acct, x) for x in amounts))
    taken = sum(x for x, h in zip(amounts, held, strict=True) if h is not None)
    refused = [x for x, h in zip(amounts, held, strict=True) if h is None]
    assert 150 in refused and 0 < taken <= 100
    assert all(x > 100 - taken for x in refused), (taken, refused)
    assert await ledger.balances(acct) == (100, taken)
    assert await ledger.balances(acct) == await ledger.entry_sums(acct)


async def test_a_batch_of_holds_over_several_accounts_decides_each_account_alone(
    db: Database,
) -> None:
    """Holds of three accounts (one of them unknown) in the same batches: each account's holds
    fit in its own balance, in the order they came, and nothing of one touches another."""
    ledger = _ledger(db)
    (a, _), (b, _) = await _accounts(ledger, db, 2, 100)
    opened = await _try_hold(ledger, a, 1)  # company: the rest are batched on both databases
    assert opened is not None
    wanted = [(a, 60), (b, 30), (a, 60), (b, 30), (10**9, 5), (b, 30), (a, 39)]
    held = await asyncio.gather(*(_try_hold(ledger, acct, x, unknown=True) for acct, x in wanted))
    got = [(acct, x) for (acct, x), h in zip(wanted, held, strict=True) if h is not None]
    assert got == [(a, 60), (b, 30), (b, 30), (b, 30), (a, 39)]  # each in turn, as if alone
    for acct in (a, b):
        total = sum(x for who, x in got if who == acct) + (1 if acct == a else 0)
        assert await ledger.balances(acct) == (100, total)
        assert await ledger.balances(acct) == await ledger.entry_sums(acct)
    assert ledger.store._holds.batches >= 1  # type: ignore[attr-defined]


async def test_a_lone_hold_goes_at_once_and_concurrent_ones_in_batches(db: Database) -> None:
    """A hold with nothing to go with runs alone, in its caller's task (no batch of one, no
    task made): on PostgreSQL when no hold is in flight, on SQLite when the process holds
    nothing else (a SQLite hold never waits on the network: its company is the other open
    holds). Holds that arrive together share batches. Exact either way."""
    ledger = _ledger(db)
    holds = ledger.store._holds  # type: ignore[attr-defined]
    ((acct, _),) = await _accounts(ledger, db, 1, 1_000)
    for _ in range(5):
        charge_id = await _try_hold(ledger, acct, 10)
        assert charge_id is not None
        await ledger.release(charge_id)
    assert holds.batches == 0 and holds.alone == 0
    held = await asyncio.gather(*(_try_hold(ledger, acct, 10) for _ in range(60)))
    assert all(h is not None for h in held)
    assert 0 < holds.batches < 60 and holds.alone == 0
    assert await ledger.balances(acct) == (1_000, 600)
    assert await ledger.balances(acct) == await ledger.entry_sums(acct)


async def test_a_hold_whose_caller_left_while_it_waited_in_a_batch_is_released(
    db: Database,
) -> None:
    """A request cancelled (its client gone) while its hold waits for a batch: the batch still
    takes the hold, which is then released at once, not left held until the sweeper."""
    ledger = _ledger(db)
    holds = ledger.store._holds  # type: ignore[attr-defined]
    ((acct, _),) = await _accounts(ledger, db, 1, 1_000)
    opened = await _try_hold(ledger, acct, 10)  # SQLite: the company that makes a batch
    lone = asyncio.create_task(_try_hold(ledger, acct, 10))  # PostgreSQL: a hold in flight
    await asyncio.sleep(0)
    left = asyncio.create_task(_try_hold(ledger, acct, 100))
    await asyncio.sleep(0)
    left.cancel()
    with pytest.raises(asyncio.CancelledError):
        await left
    assert opened is not None and await lone is not None
    await holds.flush()
    for _ in range(500):
        if await ledger.balances(acct) == (1_000, 20):
            break
        await asyncio.sleep(0.01)
    assert await ledger.balances(acct) == (1_000, 20)
    assert await ledger.balances(acct) == await ledger.entry_sums(acct)
    assert holds.batches >= 1  # it did wait in a batch


async def test_a_settle_cancelled_while_its_batch_commits_is_still_finished_whole(
    db: Database, tmp_path: Path
) -> None:
    """The client leaves while its settle waits for its batch (the request's task cancelled by
    asyncio, which anyio's shield does not stop): the batch commits the settle, and the
    process still forgets the hold (no more renewals) and its journal line (the segment may
    go), as for a settle nobody cancelled."""
    journal = Journal(tmp_path / "journal")
    ledger = Ledger(db, journal=journal)
    _open.append(ledger)
    ((acct, _),) = await _accounts(ledger, db, 1, 1_000)
    hold = await ledger.hold(acct, 100, kind="chat", model="m")
    settling = asyncio.create_task(ledger.settle(hold.charge_id, 40))
    await asyncio.sleep(0)  # journaled, and waiting for its batch
    settling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await settling
    await ledger.finisher.flush()
    assert await ledger.balances(acct) == (960, 0)
    assert hold.charge_id not in ledger._live
    assert journal.pending == 0


async def test_a_settle_cancelled_while_its_batch_fails_is_kept_for_the_retry(
    db: Database, tmp_path: Path
) -> None:
    """As above, with the database refusing the batch: the settle is kept and retried by
    ``maintain`` (not left to the journal's replay after a restart, with the sweeper
    releasing the hold meanwhile)."""
    ledger = Ledger(db, journal=Journal(tmp_path / "journal"))
    _open.append(ledger)
    ((acct, _),) = await _accounts(ledger, db, 1, 1_000)
    hold = await ledger.hold(acct, 100, kind="chat", model="m")
    store = ledger.store

    class Away:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        async def finish(self, step: Finish) -> None:
            raise ConnectionError("the database is away")

        async def finish_many(self, steps: list[Finish]) -> None:
            raise ConnectionError("the database is away")

    ledger.store = Away()  # type: ignore[assignment]
    settling = asyncio.create_task(ledger.settle(hold.charge_id, 40))
    await asyncio.sleep(0)
    settling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await settling
    await ledger.finisher.flush()
    ledger.store = store
    await ledger.catch_up()
    assert await ledger.balances(acct) == (960, 0)
    assert hold.charge_id not in ledger._live
