"""Redeem codes through the service, on SQLite and PostgreSQL: exact credit, once per code,
one message for every refused code, throttled guesses, hashes only in the database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from minitoolai.accounts.service import AccountService
from minitoolai.codes.service import INVALID_CODE, CodeService
from minitoolai.codes.text import ALPHABET, code_hash, normalise
from minitoolai.codes.throttle import FailedRedemptions
from minitoolai.errors import InvalidRequest, NotFound, RateLimited
from minitoolai.infra.db import Database
from minitoolai.infra.tables import redeem_codes
from minitoolai.ledger.service import Ledger
from minitoolai.money import MAX_BALANCE, usd_to_nano
from tests.conftest import unique

_open: list[Ledger] = []


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(autouse=True)
async def _close_ledgers() -> AsyncIterator[None]:
    yield
    while _open:
        await _open.pop().close()


def _service(db: Database, clock: Clock | None = None, limit: int = 10) -> CodeService:
    ledger = Ledger(db)
    _open.append(ledger)
    clock = clock or Clock()
    return CodeService(db, ledger, clock=clock, throttle=FailedRedemptions(limit, clock=clock))


async def _account(codes: CodeService, usd: str = "0") -> int:
    account, _ = await AccountService(codes.db, codes.ledger).create(unique(), usd_to_nano(usd))
    return account.id


async def _conserved(codes: CodeService, account_id: int) -> None:
    assert await codes.ledger.balances(account_id) == await codes.ledger.entry_sums(account_id)


async def test_a_code_credits_its_amount_once_with_an_entry_naming_its_batch(db: Database) -> None:
    codes = _service(db)
    acct = await _account(codes, "1")
    batch = await codes.create_batch(usd_to_nano("5.25"), 2, note="promo")
    assert batch.id.startswith("batch_") and batch.count == 2 and len(set(batch.codes)) == 2
    for code in batch.codes:
        assert code.startswith("MTAI-") and len(code) == 24
        assert normalise(code) is not None

    done = await codes.redeem(acct, batch.codes[0])
    assert (done.amount, done.batch_id) == (5_250_000_000, batch.id)
    assert done.balance == 6_250_000_000 == (await codes.ledger.balances(acct))[0]
    entry = (await codes.ledger.recent_entries(acct, 1))[0]
    assert (entry.kind, entry.amount, entry.held, entry.charge_id) == (
        "redeem",
        5_250_000_000,
        0,
        None,
    )
    assert batch.id in (entry.note or "") and batch.codes[0][-4:] in (entry.note or "")

    with pytest.raises(InvalidRequest) as again:
        await codes.redeem(acct, batch.codes[0])
    with pytest.raises(InvalidRequest) as unknown:
        await codes.redeem(acct, "MTAI-" + "-".join(["ZZZZ"] * 4))
    with pytest.raises(InvalidRequest) as garbage:
        await codes.redeem(acct, "not a code")
    for refused in (again.value, unknown.value, garbage.value):
        assert (refused.message, refused.param, refused.code) == (
            INVALID_CODE,
            "code",
            "invalid_code",
        )
    assert (await codes.ledger.balances(acct))[0] == 6_250_000_000
    await _conserved(codes, acct)

    info = await codes.batch(batch.id)
    assert (info.count, info.redeemed, info.note, info.amount) == (2, 1, "promo", 5_250_000_000)
    assert info.redemptions is not None and len(info.redemptions) == 1
    assert info.redemptions[0].last4 == batch.codes[0][-4:]
    listed = {b.id: b for b in await codes.batches()}
    assert listed[batch.id].redeemed == 1 and listed[batch.id].redemptions is None


async def test_what_people_type_is_forgiven(db: Database) -> None:
    codes = _service(db)
    acct = await _account(codes)
    batch = await codes.create_batch(usd_to_nano("1"), 3)
    first, second, third = batch.codes
    assert (await codes.redeem(acct, f"  {first.lower()}  ")).amount == 10**9
    assert (await codes.redeem(acct, second.replace("-", " ")[5:])).amount == 10**9  # no MTAI
    typo = third.replace("0", "o").replace("1", "l")
    assert (await codes.redeem(acct, typo)).amount == 10**9
    assert (await codes.ledger.balances(acct))[0] == 3 * 10**9


async def test_an_expired_code_is_refused_like_an_unknown_one(db: Database) -> None:
    clock = Clock()
    codes = _service(db, clock)
    acct = await _account(codes)
    batch = await codes.create_batch(10**9, 2, expires_at=clock.now + timedelta(hours=1))
    assert (await codes.redeem(acct, batch.codes[0])).amount == 10**9
    clock.advance(hours=1)
    with pytest.raises(InvalidRequest) as refused:
        await codes.redeem(acct, batch.codes[1])
    assert refused.value.message == INVALID_CODE
    assert (await codes.ledger.balances(acct))[0] == 10**9
    assert (await codes.batch(batch.id)).expired(clock.now)


async def test_fifty_redemptions_of_one_code_at_once_credit_once(db: Database) -> None:
    codes = _service(db, limit=100)
    accts = [await _account(codes) for _ in range(5)]
    batch = await codes.create_batch(usd_to_nano("2"))
    results = await asyncio.gather(
        *(codes.redeem(accts[i % 5], batch.codes[0]) for i in range(50)), return_exceptions=True
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 49
    assert all(isinstance(e, InvalidRequest) and e.code == "invalid_code" for e in lost)
    balances = [(await codes.ledger.balances(a))[0] for a in accts]
    assert sorted(balances) == [0, 0, 0, 0, 2 * 10**9]
    for a in accts:
        await _conserved(codes, a)
    assert (await codes.batch(batch.id)).redeemed == 1


async def test_one_account_racing_itself_is_credited_once(db: Database) -> None:
    """Its own burst counts against its throttle: one credit, the rest refused or throttled."""
    codes = _service(db)
    acct = await _account(codes)
    batch = await codes.create_batch(usd_to_nano("1"))
    results = await asyncio.gather(
        *(codes.redeem(acct, batch.codes[0]) for _ in range(50)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(
        isinstance(r, InvalidRequest | RateLimited) for r in results if isinstance(r, BaseException)
    )
    assert (await codes.ledger.balances(acct))[0] == 10**9
    await _conserved(codes, acct)


async def test_fifty_codes_of_one_batch_by_fifty_accounts_at_once_all_credit(db: Database) -> None:
    codes = _service(db)
    accts = [await _account(codes) for _ in range(50)]
    batch = await codes.create_batch(usd_to_nano("0.000000007"), 50)
    done = await asyncio.gather(
        *(codes.redeem(a, c) for a, c in zip(accts, batch.codes, strict=True))
    )
    assert {d.batch_id for d in done} == {batch.id} and all(d.balance == 7 for d in done)
    for a in accts:
        assert (await codes.ledger.balances(a))[0] == 7
        await _conserved(codes, a)
    assert (await codes.batch(batch.id)).redeemed == 50


async def test_failures_are_throttled_then_the_window_passes(db: Database) -> None:
    clock = Clock()
    codes = _service(db, clock, limit=10)
    acct, other = await _account(codes), await _account(codes)
    batch = await codes.create_batch(10**9, 2)
    for _ in range(10):
        with pytest.raises(InvalidRequest):
            await codes.redeem(acct, "MTAI-AAAA-AAAA-AAAA-AAAA")
    with pytest.raises(RateLimited) as throttled:
        await codes.redeem(acct, batch.codes[0])  # a valid code too, and it stays unused
    assert 1 <= throttled.value.retry_after <= 600
    assert (await codes.ledger.balances(acct))[0] == 0
    assert (await codes.redeem(other, batch.codes[1])).amount == 10**9  # per account
    clock.advance(minutes=9, seconds=59)
    with pytest.raises(RateLimited):
        await codes.redeem(acct, batch.codes[0])
    clock.advance(seconds=1)
    assert (await codes.redeem(acct, batch.codes[0])).balance == 10**9
    await _conserved(codes, acct)


async def test_a_burst_of_guesses_is_bounded_like_a_sequence(db: Database) -> None:
    codes = _service(db, limit=10)
    acct = await _account(codes)
    results = await asyncio.gather(
        *(codes.redeem(acct, f"MTAI-AAAA-AAAA-AAAA-{i:04d}") for i in range(50)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, InvalidRequest) for r in results) == 10  # reached the database
    assert sum(isinstance(r, RateLimited) for r in results) == 40


async def test_successes_do_not_count_against_the_throttle(db: Database) -> None:
    codes = _service(db, limit=2)
    acct = await _account(codes)
    batch = await codes.create_batch(1, 5)
    for code in batch.codes:
        await codes.redeem(acct, code)
    assert (await codes.ledger.balances(acct))[0] == 5


async def test_codes_are_stored_as_hashes_only(db: Database) -> None:
    codes = _service(db)
    batch = await codes.create_batch(10**9, 3)
    async with db.read() as conn:
        rows = (
            await conn.execute(select(redeem_codes).where(redeem_codes.c.batch_id == batch.id))
        ).all()
    stored = " ".join(str(v) for r in rows for v in r)
    for code in batch.codes:
        body = normalise(code)
        assert body is not None
        assert code not in stored and body not in stored and body[:12] not in stored
    assert sorted(r.code_hash for r in rows) == sorted(
        code_hash(normalise(c) or "") for c in batch.codes
    )
    assert all(len(r.code_hash) == 64 and len(r.last4) == 4 for r in rows)


async def test_bad_batches_are_refused(db: Database) -> None:
    clock = Clock()
    codes = _service(db, clock)
    for amount, count, expires in (
        (0, 1, None),
        (-5, 1, None),
        (MAX_BALANCE + 1, 1, None),
        (1, 0, None),
        (1, 1001, None),
        (1, 1, clock.now),
        (1, 1, clock.now - timedelta(days=1)),
    ):
        with pytest.raises(InvalidRequest):
            await codes.create_batch(amount, count, expires_at=expires)
    with pytest.raises(InvalidRequest):
        await codes.create_batch(1, note="a\x00b")
    with pytest.raises(NotFound):
        await codes.batch("batch_nope")


async def test_a_credit_past_the_cap_leaves_the_code_unused(db: Database) -> None:
    codes = _service(db)
    acct = await _account(codes, str(MAX_BALANCE // 10**9))
    batch = await codes.create_batch(1)
    with pytest.raises(InvalidRequest) as refused:
        await codes.redeem(acct, batch.codes[0])
    assert refused.value.code != "invalid_code"
    assert (await codes.batch(batch.id)).redeemed == 0
    await _conserved(codes, acct)
    with pytest.raises(NotFound):
        await codes.redeem(10**9, batch.codes[0])  # no such account


def test_codes_carry_80_bits() -> None:
    assert len(ALPHABET) == 32 and len(set(ALPHABET)) == 32
    assert not set("ILOU") & set(ALPHABET)
