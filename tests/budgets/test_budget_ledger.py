"""Spend budgets in the ledger, on SQLite and PostgreSQL: checked in the hold's atomic step,
moved from held to spent exactly, per UTC period."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from minitoolai.accounts.service import AccountService
from minitoolai.errors import InsufficientCredit
from minitoolai.infra.db import Database
from minitoolai.ledger.budgets import Budgets, Caps
from minitoolai.ledger.service import Ledger
from minitoolai.money import usd_to_nano
from minitoolai.observability import REGISTRY
from tests.conftest import unique
from tests.support.ledger_audit import budget_problems

_open: list[Ledger] = []
DAY1 = datetime(2026, 12, 1, 23, 59, 30, tzinfo=UTC)
DAY2 = datetime(2026, 12, 2, 0, 0, 30, tzinfo=UTC)
NEXT_MONTH = datetime(2027, 1, 1, 0, 0, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
async def _close_ledgers() -> AsyncIterator[None]:
    yield
    while _open:
        await _open.pop().close()


async def _account(db: Database, usd: str = "10") -> tuple[Ledger, AccountService, str, int, int]:
    """A ledger, the account service, and a fresh account's name, id and first key's id."""
    ledger = Ledger(db)
    _open.append(ledger)
    svc = AccountService(db, ledger)
    account, _ = await svc.create(unique(), usd_to_nano(usd))
    (key,) = await svc.list_keys(account.name)
    return ledger, svc, account.name, account.id, key.id


async def _assert_sound(ledger: Ledger, db: Database, account_id: int) -> None:
    assert await ledger.balances(account_id) == await ledger.entry_sums(account_id)
    assert await budget_problems(db, account_id) == []


def _key_budget(**caps: int) -> Budgets:
    return Budgets(key=Caps(**caps), account=Caps())


async def _try_hold(ledger: Ledger, account_id: int, key_id: int, amount: int, budgets: Budgets,
                    now: datetime | None = None) -> str | None:  # fmt: skip
    try:
        hold = await ledger.hold(
            account_id, amount, kind="chat", model="m", api_key_id=key_id, budgets=budgets, now=now
        )
    except InsufficientCredit as exc:
        assert exc.code == "budget_exceeded", exc.message
        return None
    return hold.charge_id


async def test_a_daily_budget_admits_exactly_n_of_200_concurrent_holds(db: Database) -> None:
    ledger, _, _, acct, key = await _account(db)
    budgets = _key_budget(daily=7 * 1000)
    held = await asyncio.gather(*(_try_hold(ledger, acct, key, 1000, budgets) for _ in range(200)))
    wins = [c for c in held if c is not None]
    assert len(wins) == 7
    assert await ledger.balances(acct) == (usd_to_nano("10"), 7000)
    await asyncio.gather(*(ledger.settle(c, 400) for c in wins))
    assert await ledger.balances(acct) == (usd_to_nano("10") - 7 * 400, 0)
    await _assert_sound(ledger, db, acct)


async def test_concurrent_holds_and_settles_never_spend_past_the_budget(db: Database) -> None:
    ledger, _, _, acct, key = await _account(db)
    budgets = _key_budget(daily=10_000)

    async def one() -> int:
        charge = await _try_hold(ledger, acct, key, 900, budgets)
        if charge is None:
            return 0
        return (await ledger.settle(charge, 700)).cost

    spent = sum(await asyncio.gather(*(one() for _ in range(200))))
    assert 0 < spent <= 10_000
    assert usd_to_nano("10") - (await ledger.balances(acct))[0] == spent
    await _assert_sound(ledger, db, acct)


async def test_the_refusal_names_the_budget_its_amount_and_reset(db: Database) -> None:
    ledger, _, _, acct, key = await _account(db)
    budgets = Budgets(key=Caps(daily=usd_to_nano("0.01")), account=Caps(monthly=usd_to_nano("1")))
    refused = {"scope": "key", "period": "daily"}
    counted = REGISTRY.get_sample_value("minitoolai_budget_refused_total", refused) or 0
    with pytest.raises(InsufficientCredit) as err:
        await ledger.hold(acct, usd_to_nano("0.02"), kind="chat", model="m", api_key_id=key,
                          budgets=budgets, now=DAY1)  # fmt: skip
    assert err.value.status_code == 402 and err.value.code == "budget_exceeded"
    assert "API key's daily budget of US$0.010000000" in err.value.message
    assert "resets at 2026-12-02T00:00:00Z" in err.value.message
    assert REGISTRY.get_sample_value("minitoolai_budget_refused_total", refused) == counted + 1
    first = await ledger.hold(acct, usd_to_nano("0.01"), kind="chat", model="m", api_key_id=key,
                              budgets=budgets, now=DAY1)  # fmt: skip
    await ledger.settle(first.charge_id, usd_to_nano("0.01"))
    # nothing was held by the refusals
    assert await ledger.balances(acct) == (usd_to_nano("10") - usd_to_nano("0.01"), 0)
    big = Budgets(key=Caps(), account=Caps(monthly=usd_to_nano("0.015")))
    with pytest.raises(InsufficientCredit) as err:
        await ledger.hold(acct, usd_to_nano("0.01"), kind="chat", model="m", api_key_id=key,
                          budgets=big, now=DAY1)  # fmt: skip
    assert "account's monthly budget of US$0.015000000" in err.value.message
    assert "resets at 2027-01-01T00:00:00Z" in err.value.message
    total = Budgets(key=Caps(total=usd_to_nano("0.01")), account=Caps())
    with pytest.raises(InsufficientCredit) as err:
        await ledger.hold(acct, 1, kind="chat", model="m", api_key_id=key, budgets=total)
    assert "total budget" in err.value.message and "does not reset" in err.value.message
    await _assert_sound(ledger, db, acct)


async def test_settle_moves_held_to_spent_exactly_and_release_gives_it_back(db: Database) -> None:
    ledger, _, _, acct, key = await _account(db)
    budgets = _key_budget(daily=10_000)
    a = await _try_hold(ledger, acct, key, 6_000, budgets, DAY1)
    assert a is not None
    assert await _try_hold(ledger, acct, key, 5_000, budgets, DAY1) is None  # 6000 held
    await ledger.settle(a, 1_234)  # spent 1234: 8766 left
    b = await _try_hold(ledger, acct, key, 8_766, budgets, DAY1)
    assert b is not None
    assert await _try_hold(ledger, acct, key, 1, budgets, DAY1) is None
    await ledger.release(b)
    c = await _try_hold(ledger, acct, key, 8_766, budgets, DAY1)
    assert c is not None
    await ledger.settle(c, 99_999)  # capped at the hold, like the balance
    assert await _try_hold(ledger, acct, key, 1, budgets, DAY1) is None
    spend = await ledger.budget_spend("key", key, DAY1)
    assert spend["daily"] == (10_000, 0)
    # a refund gives its cost back to the budget
    await ledger.refund(a)
    assert (await ledger.budget_spend("key", key, DAY1))["daily"] == (10_000 - 1_234, 0)
    await _assert_sound(ledger, db, acct)


async def test_a_new_day_resets_the_daily_budget_not_the_monthly(db: Database) -> None:
    ledger, _, _, acct, key = await _account(db)
    budgets = _key_budget(daily=1_000, monthly=1_500)
    late = await _try_hold(ledger, acct, key, 1_000, budgets, DAY1)
    assert late is not None
    assert await _try_hold(ledger, acct, key, 1, budgets, DAY1) is None
    # the next day: the daily budget is fresh, the monthly one still counts yesterday's hold
    early = await _try_hold(ledger, acct, key, 500, budgets, DAY2)
    assert early is not None
    assert await _try_hold(ledger, acct, key, 1, budgets, DAY2) is None  # monthly: 1500 used
    # yesterday's hold settles today: it moves yesterday's counters, not today's
    await ledger.settle(late, 200)
    more = await _try_hold(ledger, acct, key, 500, budgets, DAY2)
    assert more is not None  # daily 500 + 500 <= 1000, monthly 200 + 1000 <= 1500
    assert await _try_hold(ledger, acct, key, 300, budgets, NEXT_MONTH) is not None
    await ledger.release(early)
    await ledger.release(more)
    await _assert_sound(ledger, db, acct)


async def test_an_account_budget_is_shared_by_its_keys(db: Database) -> None:
    ledger, svc, name, acct, key1 = await _account(db)
    _, second = await svc.create_key(name)
    budgets = Budgets(key=Caps(), account=Caps(daily=3_000))

    async def on(key: int) -> str | None:
        return await _try_hold(ledger, acct, key, 1_000, budgets)

    held = await asyncio.gather(*(on(key1 if i % 2 else second.id) for i in range(40)))
    assert sum(c is not None for c in held) == 3
    await asyncio.gather(*(ledger.settle(c, 1_000) for c in held if c is not None))
    await _assert_sound(ledger, db, acct)


async def test_a_total_budget_never_resets(db: Database) -> None:
    ledger, _, _, acct, key = await _account(db)
    budgets = _key_budget(total=2_000)
    for now in (DAY1, DAY2):
        charge = await _try_hold(ledger, acct, key, 1_000, budgets, now)
        assert charge is not None
        await ledger.settle(charge, 1_000)
    assert await _try_hold(ledger, acct, key, 1, budgets, NEXT_MONTH) is None
    await _assert_sound(ledger, db, acct)


async def test_budgets_set_through_the_service_reach_the_principal(db: Database) -> None:
    _, svc, name, _, _ = await _account(db)
    key, record = await svc.create_key(name, daily_budget=5_000, total_budget=9_000)
    assert record.budgets == Caps(daily=5_000, total=9_000)
    await svc.set_account_budget(name, monthly=7_000)
    from minitoolai.accounts.auth import Authenticator

    principal = await Authenticator(db, ttl=0).authenticate(f"Bearer {key}")
    assert principal.budgets == Budgets(key=Caps(5_000, None, 9_000), account=Caps(None, 7_000))
    await svc.set_key_budget(record.prefix, daily=None, total=None)
    await svc.set_account_budget(name, monthly=None)
    principal = await Authenticator(db, ttl=0).authenticate(f"Bearer {key}")
    assert principal.budgets is None


async def test_a_late_settle_never_spends_past_the_budget(db: Database) -> None:
    """A hold the sweeper released gave its room back; a settle landing after that charges
    only what the budget still has (like the balance)."""
    ledger, _, _, acct, key = await _account(db)
    budgets = _key_budget(daily=1_000)
    long_ago = datetime(2020, 1, 1, 0, 0, tzinfo=UTC)  # its holds expire before anyone else's
    first = await _try_hold(ledger, acct, key, 1_000, budgets, long_ago)
    assert first is not None
    assert await ledger.sweep_expired(now=datetime(2020, 1, 1, 1, 0, tzinfo=UTC)) >= 1
    second = await _try_hold(ledger, acct, key, 800, budgets, long_ago)  # the room is back
    assert second is not None
    late = await ledger.settle(first, 1_000)
    assert late.applied and late.cost == 200  # 1000 - 800 held
    await ledger.settle(second, 800)
    assert (await ledger.budget_spend("key", key, long_ago))["daily"] == (1_000, 0)
    assert await _try_hold(ledger, acct, key, 1, budgets, long_ago) is None
    await _assert_sound(ledger, db, acct)
