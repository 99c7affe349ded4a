"""A live request keeps its hold; a settlement is never lost (regressions of an adversarial
test: a stream that outlived the hold timeout was never billed, because the sweeper released
the live hold and the later settle was a no-op)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
import requests
from sqlalchemy import func, select, text, update

from minitoolai.accounts.service import AccountService
from minitoolai.chat.tokens import count_messages
from minitoolai.clock import utcnow
from minitoolai.errors import Conflict, InsufficientCredit, InvalidRequest, NotFound
from minitoolai.infra.db import Database
from minitoolai.infra.tables import charges, ledger_entries
from minitoolai.ledger.finishing import Finisher
from minitoolai.ledger.idempotency import IdempotencyKey
from minitoolai.ledger.service import Ledger, UsageRecord
from minitoolai.money import MAX_BALANCE
from tests.chat.conftest import database_url
from tests.conftest import BACKENDS, unique
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import running_gateway
from tests.support.ledger_audit import audit

MESSAGES = [{"role": "user", "content": "Count for me, please."}]


async def account_with(db: Database, ledger: Ledger, nano: int) -> int:
    account, _ = await AccountService(db, ledger).create(unique(), nano)
    return account.id


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stream_longer_than_the_hold_timeout_is_billed_in_full(
    backend: str, tmp_path: Path
) -> None:
    slow = FakeUpstream(chunks=8, delay_s=0.4)  # ~3.2 s, three hold timeouts
    deps: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(
        tmp_path,
        database_url(backend, tmp_path),
        {"up": slow},
        deps,
        hold_timeout_s=1,
        sweep_interval_s=0.1,
    ) as gw:
        before = gw.balance_nano()
        events = requests.post(
            gw.url + "/api/chat-completions/",
            headers=gw.headers(),
            json={"model": "gpt-4o-mini", "messages": MESSAGES},
            timeout=30,
        ).text.split("\n\n")
        usage = orjson.loads(events[-3][6:])["usage"]
        assert usage["completion_tokens"] == 8
        assert before - gw.balance_nano() == count_messages(MESSAGES) * 150 + 8 * 600
        assert gw.idle_held_nano() == 0
        listed = requests.get(gw.url + "/api/usage/", headers=gw.headers(), timeout=10).json()
        assert listed["data"][0]["estimated"] is False


def test_a_long_journal_replay_does_not_hold_back_the_renewals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica that dies leaves a journal that a living one replays, a transaction per
    settle: under load that took longer than a hold timeout, and the renewals waited behind it,
    so the sweeper freed live holds (tests/replicas/test_fleet.py saw a release and a late
    settle on an answer that was streaming the whole time)."""
    replays = 0
    replay = Finisher.replay_journals

    async def long_replay(self: Finisher) -> int:
        nonlocal replays
        replays += 1
        if replays == 2:  # the first maintenance round: a dead replica's long journal
            await asyncio.sleep(30)
        return await replay(self)

    monkeypatch.setattr(Finisher, "replay_journals", long_replay)
    slow = FakeUpstream(chunks=8, delay_s=0.4)  # ~3.2 s, three hold timeouts
    deps: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    url = database_url("sqlite", tmp_path)
    with running_gateway(
        tmp_path, url, {"up": slow}, deps, hold_timeout_s=1, sweep_interval_s=0.1
    ) as gw:
        answer = requests.post(
            gw.url + "/api/chat-completions/",
            headers=gw.headers(),
            json={"model": "gpt-4o-mini", "messages": MESSAGES},
            timeout=30,
        )
        assert answer.status_code == 200
        assert replays >= 2  # the long replay was under way while the answer streamed
        (charge,) = audit(url, gw.account).charges
        assert charge.entries == Counter(hold=1, settle=1), charge  # never swept


async def test_a_settle_after_the_sweeper_expired_the_hold_still_charges(db: Database) -> None:
    ledger = Ledger(db, hold_timeout_s=60)
    acct = await account_with(db, ledger, 10_000)
    hold = await ledger.hold(acct, 4_000, kind="chat", model="m")
    # the owner stops renewing (its event loop was stuck, say) and the sweeper frees the hold
    assert await ledger.sweep_expired(utcnow() + timedelta(seconds=61)) == 1
    assert await ledger.balances(acct) == (10_000, 0)
    done = await ledger.settle(hold.charge_id, 2_500, UsageRecord(10, 5))
    assert done.applied and done.cost == 2_500
    assert await ledger.balances(acct) == (7_500, 0)
    assert await ledger.entry_sums(acct) == (7_500, 0)
    # settling again changes nothing
    assert not (await ledger.settle(hold.charge_id, 2_500)).applied
    assert await ledger.balances(acct) == (7_500, 0)
    await ledger.close()


async def test_a_late_settle_never_takes_the_balance_below_zero(db: Database) -> None:
    ledger = Ledger(db, hold_timeout_s=60)
    acct = await account_with(db, ledger, 10_000)
    first = await ledger.hold(acct, 8_000, kind="chat", model="m")
    await ledger.sweep_expired(utcnow() + timedelta(seconds=61))
    spender = await ledger.hold(acct, 7_000, kind="chat", model="m")  # the freed money is spent
    await ledger.settle(spender.charge_id, 7_000)
    done = await ledger.settle(first.charge_id, 8_000)
    assert done.cost == 3_000  # what was left; the shortfall is logged
    assert await ledger.balances(acct) == (0, 0)
    assert await ledger.entry_sums(acct) == (0, 0)
    await ledger.close()


async def test_live_holds_are_renewed_and_finished_ones_forgotten(db: Database) -> None:
    ledger = Ledger(db, hold_timeout_s=60)
    acct = await account_with(db, ledger, 10_000)
    live = await ledger.hold(acct, 1_000, kind="chat", model="m")
    job = await ledger.hold(acct, 1_000, kind="image", model="m", ttl=timedelta(seconds=-1))
    done = await ledger.hold(acct, 1_000, kind="chat", model="m")
    await ledger.settle(done.charge_id, 10)
    assert ledger.live_holds == 1  # the image hold has its own deadline; the settled one is gone
    async with db.write() as conn:  # time passes: the live hold's deadline is behind us
        await conn.execute(
            update(charges)
            .where(charges.c.id == live.charge_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    await ledger.maintain()
    # the sweep frees the image hold (nobody renews it) but not the live one
    assert await ledger.sweep_expired() == 1
    assert await ledger.balances(acct) == (10_000 - 10, 1_000)
    await ledger.release(live.charge_id)
    await ledger.release(job.charge_id)
    await ledger.close()


async def test_a_settle_the_database_refused_is_retried_until_it_lands(db: Database) -> None:
    ledger = Ledger(db, hold_timeout_s=60)
    acct = await account_with(db, ledger, 10_000)
    hold = await ledger.hold(acct, 4_000, kind="chat", model="m")
    async with db.engine.begin() as conn:  # the ledger's table goes away: a real DB failure
        await conn.execute(text("ALTER TABLE ledger_entries RENAME TO ledger_entries_away"))
    try:
        done = await ledger.settle(hold.charge_id, 1_234, UsageRecord(1, 2))
        assert done.deferred and not done.applied
        await ledger.maintain()  # still failing: kept, and the hold is still renewed
        assert ledger.live_holds == 1
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE ledger_entries_away RENAME TO ledger_entries"))
    await ledger.maintain()
    assert await ledger.balances(acct) == (10_000 - 1_234, 0)
    assert await ledger.entry_sums(acct) == (10_000 - 1_234, 0)
    assert ledger.live_holds == 0
    await ledger.close()


async def test_usage_counts_past_32_bits_settle_on_both_databases(db: Database) -> None:
    ledger = Ledger(db)
    acct = await account_with(db, ledger, 10_000)
    hold = await ledger.hold(acct, 4_000, kind="chat", model="m")
    done = await ledger.settle(hold.charge_id, 4_000, UsageRecord(2**40, 3 * 2**31))
    assert done.applied
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(charges.c.prompt_tokens, charges.c.completion_tokens).where(
                    charges.c.id == hold.charge_id
                )
            )
        ).one()
    assert tuple(row) == (2**40, 3 * 2**31)
    await ledger.close()


async def test_amounts_are_bounded_so_a_balance_stays_an_exact_integer(db: Database) -> None:
    ledger = Ledger(db)
    acct = await account_with(db, ledger, 0)
    with pytest.raises(InvalidRequest):
        await ledger.top_up(acct, 10**30)
    await ledger.top_up(acct, MAX_BALANCE)
    with pytest.raises(InvalidRequest):
        await ledger.top_up(acct, 1)
    assert await ledger.balances(acct) == (MAX_BALANCE, 0)
    if db.is_sqlite:
        async with db.read() as conn:
            kind = (
                await conn.execute(text(f"SELECT typeof(balance) FROM accounts WHERE id={acct}"))
            ).scalar_one()
        assert kind == "integer"
    async with db.read() as conn:
        total = (
            await conn.execute(
                select(func.sum(ledger_entries.c.amount)).where(ledger_entries.c.account_id == acct)
            )
        ).scalar_one()
    assert int(total) == MAX_BALANCE
    await ledger.close()


async def test_an_account_with_too_much_initial_credit_is_not_created(db: Database) -> None:
    ledger = Ledger(db)
    service = AccountService(db, ledger)
    name = unique()
    with pytest.raises(InvalidRequest):
        await service.create(name, MAX_BALANCE + 1)
    with pytest.raises(NotFound):
        await service.get(name)
    await ledger.close()


async def _attempt(ledger: Ledger, acct: int, key: IdempotencyKey) -> str:
    """One request with ``key``: how the ledger answered it."""
    try:
        hold = await ledger.hold(acct, 1_000, kind="chat", model="m", idempotency=key)
    except Conflict:
        return "in progress"
    return "replay" if hold.is_replay else "held"


async def test_racing_retries_of_one_key_hold_once(db: Database) -> None:
    """40 concurrent requests with one key: one hold; the rest are told it is in progress."""
    ledger = Ledger(db)
    acct = await account_with(db, ledger, 1_000_000)
    key = IdempotencyKey.for_body("/v1/chat/completions", unique("k"), {"q": 1})

    outcomes = await asyncio.gather(*(_attempt(ledger, acct, key) for _ in range(40)))
    assert outcomes.count("held") == 1 and outcomes.count("in progress") == 39
    assert await ledger.balances(acct) == (1_000_000, 1_000)
    await ledger.close()


async def test_racing_retries_of_a_failed_request_take_its_key_over_once(db: Database) -> None:
    ledger = Ledger(db)
    acct = await account_with(db, ledger, 1_000_000)
    key = IdempotencyKey.for_body("/v1/chat/completions", unique("k"), {"q": 1})
    failed = await ledger.hold(acct, 1_000, kind="chat", model="m", idempotency=key)
    await ledger.release(failed.charge_id)  # a 502: nothing charged, the key is free again

    outcomes = await asyncio.gather(*(_attempt(ledger, acct, key) for _ in range(40)))
    assert outcomes.count("held") == 1, outcomes
    assert await ledger.balances(acct) == (1_000_000, 1_000)
    assert await ledger.entry_sums(acct) == (1_000_000, 1_000)
    await ledger.close()


async def test_late_settles_racing_new_holds_never_overdraw(db: Database) -> None:
    """Expired holds settling late while new requests hold the freed money: the balance
    never goes below what is held, and every nano-dollar is in the entries."""
    ledger = Ledger(db, hold_timeout_s=60)
    acct = await account_with(db, ledger, 100_000)
    old = [await ledger.hold(acct, 5_000, kind="chat", model="m") for _ in range(20)]
    await ledger.sweep_expired(utcnow() + timedelta(seconds=61))

    async def new_request() -> None:
        try:
            hold = await ledger.hold(acct, 5_000, kind="chat", model="m")
        except InsufficientCredit:
            return
        await ledger.settle(hold.charge_id, 5_000)

    await asyncio.gather(
        *(ledger.settle(h.charge_id, 5_000) for h in old), *(new_request() for _ in range(20))
    )
    balance, held = await ledger.balances(acct)
    assert held == 0 and balance >= 0
    assert (balance, held) == await ledger.entry_sums(acct)
    assert balance == 0  # 40 requests of 5,000 wanted 200,000: the 100,000 was all spent
    await ledger.close()
