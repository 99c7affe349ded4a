from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from minitoolai.accounts.service import AccountService
from minitoolai.errors import Conflict, InsufficientCredit, InvalidRequest, NotFound
from minitoolai.infra.db import Database
from minitoolai.ledger.idempotency import IdempotencyKey
from minitoolai.ledger.service import Ledger, UsageRecord
from minitoolai.money import usd_to_nano
from tests.conftest import unique
from tests.support.ledgers import OPEN as _open
from tests.support.ledgers import close_ledgers as close_ledgers  # autouse


async def _account(db: Database, usd: str = "1") -> tuple[Ledger, int]:
    ledger = Ledger(db)
    _open.append(ledger)
    account, _ = await AccountService(db, ledger).create(unique(), usd_to_nano(usd))
    return ledger, account.id


async def _assert_conserved(ledger: Ledger, account_id: int) -> None:
    assert await ledger.balances(account_id) == await ledger.entry_sums(account_id)


async def test_hold_settle_charges_exact_cost_and_frees_rest(db: Database) -> None:
    ledger, acct = await _account(db, "1")
    hold = await ledger.hold(acct, 600_000, kind="chat", model="gpt-4o-mini")
    assert await ledger.balances(acct) == (1_000_000_000, 600_000)
    done = await ledger.settle(hold.charge_id, 4_350, UsageRecord(17, 3))
    assert done.applied and done.cost == 4_350
    assert await ledger.balances(acct) == (1_000_000_000 - 4_350, 0)
    await _assert_conserved(ledger, acct)


async def test_settle_is_idempotent_and_release_after_settle_changes_nothing(db: Database) -> None:
    ledger, acct = await _account(db)
    hold = await ledger.hold(acct, 1000, kind="chat", model="m")
    await ledger.settle(hold.charge_id, 700)
    again = await ledger.settle(hold.charge_id, 900)
    released = await ledger.release(hold.charge_id)
    assert not again.applied and again.cost == 700
    assert not released.applied
    assert await ledger.balances(acct) == (1_000_000_000 - 700, 0)
    await _assert_conserved(ledger, acct)


async def test_cost_above_hold_is_capped_at_the_hold(db: Database) -> None:
    ledger, acct = await _account(db)
    hold = await ledger.hold(acct, 1000, kind="chat", model="m")
    assert (await ledger.settle(hold.charge_id, 5000)).cost == 1000
    await _assert_conserved(ledger, acct)


async def test_hold_over_available_is_refused_with_402_and_changes_nothing(db: Database) -> None:
    ledger, acct = await _account(db, "0.000001")  # 1000 nano
    await ledger.hold(acct, 600, kind="chat", model="m")
    with pytest.raises(InsufficientCredit) as err:
        await ledger.hold(acct, 401, kind="chat", model="m")
    assert err.value.status_code == 402
    assert "available balance is US$0.000000400" in err.value.message
    assert await ledger.balances(acct) == (1000, 600)
    await _assert_conserved(ledger, acct)


async def test_release_returns_everything(db: Database) -> None:
    ledger, acct = await _account(db)
    hold = await ledger.hold(acct, 12345, kind="image", model="realvision")
    assert (await ledger.release(hold.charge_id)).applied
    assert await ledger.balances(acct) == (1_000_000_000, 0)


async def test_refund_once(db: Database) -> None:
    ledger, acct = await _account(db)
    hold = await ledger.hold(acct, 1000, kind="image", model="realvision")
    await ledger.settle(hold.charge_id, 1000)
    assert await ledger.refund(hold.charge_id, "bad image") == 1000
    assert await ledger.refund(hold.charge_id) == 0
    assert await ledger.balances(acct) == (1_000_000_000, 0)
    await _assert_conserved(ledger, acct)


async def test_a_top_up_is_a_positive_amount_to_an_existing_account(db: Database) -> None:
    ledger, acct = await _account(db, "0.000001")
    await ledger.hold(acct, 600, kind="chat", model="m")
    for amount in (0, -400):
        with pytest.raises(InvalidRequest):
            await ledger.top_up(acct, amount)
    with pytest.raises(NotFound):
        await ledger.top_up(2**31 - 1, 400)
    assert await ledger.top_up(acct, 400, "goodwill") == 1400
    assert await ledger.balances(acct) == (1400, 600)
    await _assert_conserved(ledger, acct)


async def test_the_account_reports_read_the_ledger(db: Database) -> None:
    """What ``accounts show`` and ``/api/usage/`` list: entries, open holds, finished charges."""
    ledger, acct = await _account(db)
    open_hold = await ledger.hold(acct, 500, kind="chat", model="gpt-4o-mini")
    done = await ledger.hold(acct, 1000, kind="speech", model="tts-1")
    await ledger.settle(done.charge_id, 300, UsageRecord(units=12, served_by="up"))
    assert await ledger.open_holds(acct) == 1
    kinds = [(e.kind, e.amount, e.held, e.charge_id) for e in await ledger.recent_entries(acct)]
    assert kinds == [
        ("settle", -300, -1000, done.charge_id),
        ("hold", 0, 1000, done.charge_id),
        ("hold", 0, 500, open_hold.charge_id),
        ("topup", 1_000_000_000, 0, None),
    ]
    assert len(await ledger.recent_entries(acct, limit=2)) == 2
    [row] = await ledger.usage(acct)  # the open hold is not usage yet
    assert (row.id, row.kind, row.model, row.status, row.cost) == (
        done.charge_id,
        "speech",
        "tts-1",
        "settled",
        300,
    )
    assert (row.units, row.served_by, row.estimated, row.prompt_tokens) == (12, "up", False, None)
    assert row.created_at.tzinfo is not None


async def test_sweeper_releases_only_expired_holds(db: Database) -> None:
    ledger, acct = await _account(db)
    old = await ledger.hold(acct, 100, kind="chat", model="m", ttl=timedelta(seconds=-1))
    live = await ledger.hold(acct, 200, kind="chat", model="m")
    await ledger.sweep_expired()
    assert await ledger.balances(acct) == (1_000_000_000, 200)
    # its request still settles: charged after the fact, from what the balance still has
    assert (await ledger.settle(old.charge_id, 100)).applied
    assert not (await ledger.settle(old.charge_id, 100)).applied  # once
    assert (await ledger.settle(live.charge_id, 150)).applied
    assert await ledger.balances(acct) == (1_000_000_000 - 250, 0)
    await _assert_conserved(ledger, acct)


async def test_idempotency_key_replays_instead_of_charging_twice(db: Database) -> None:
    ledger, acct = await _account(db)
    key = IdempotencyKey.for_body("/v1/chat/completions", "abc", {"q": 1})
    first = await ledger.hold(acct, 1000, kind="chat", model="m", idempotency=key)
    with pytest.raises(Conflict):  # still running
        await ledger.hold(acct, 1000, kind="chat", model="m", idempotency=key)
    await ledger.settle(first.charge_id, 800, UsageRecord(result={"answer": 42}))
    retry = await ledger.hold(acct, 1000, kind="chat", model="m", idempotency=key)
    assert retry.is_replay and retry.charge_id == first.charge_id
    assert retry.replayed_result == {"answer": 42}
    assert await ledger.balances(acct) == (1_000_000_000 - 800, 0)


async def test_hundreds_of_concurrent_holds_never_overdraw(db: Database) -> None:
    """300 holds of 7 race for 1000: exactly 142 win, the rest get 402, sums stay exact."""
    ledger, acct = await _account(db, "0.000001")

    async def attempt() -> int:
        try:
            hold = await ledger.hold(acct, 7, kind="chat", model="m")
        except InsufficientCredit:
            return 0
        await ledger.settle(hold.charge_id, 7)
        return 1

    wins = sum(await asyncio.gather(*(attempt() for _ in range(300))))
    balance, held = await ledger.balances(acct)
    assert wins == 1000 // 7
    assert (balance, held) == (1000 - 7 * wins, 0)
    assert balance >= 0
    await _assert_conserved(ledger, acct)
