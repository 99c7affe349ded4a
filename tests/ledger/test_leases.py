"""Leases (``ledger.leases``, both databases): a request's hold made in memory on a slice of its
account's balance this process holds, its charge row written by its settle or release.

What must hold: the database still holds, at every moment, at least what running requests may
cost (the lease); every settle draws its cost exactly once; a request is refused for credit
only when running requests hold the money; a lease the sweeper took (its process gone, or
renewals failing) never lets a request go unpaid while the balance has the money; and the
ledger audit (every charge's entries, the balance as the sum of the entries) stays clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from minitoolai.accounts.service import AccountService
from minitoolai.clock import utcnow
from minitoolai.errors import InsufficientCredit
from minitoolai.infra.db import Database
from minitoolai.ledger import leases as leases_module
from minitoolai.ledger.journal import Journal, decode_entry, encode
from minitoolai.ledger.leases import LEASE_HOLDS, MIN_HOLDS, SHARE
from minitoolai.ledger.service import Hold, Ledger, UsageRecord
from tests.conftest import unique
from tests.support.ledger_audit import _audit
from tests.support.ledgers import OPEN as _open
from tests.support.ledgers import close_ledgers as close_ledgers  # autouse

H = 1_000  # one request's hold


async def _ledger_and_account(
    db: Database, credit: int, journal: Path | None = None, **kwargs: Any
) -> tuple[Ledger, int, str]:
    ledger = Ledger(db, journal=None if journal is None else Journal(journal), **kwargs)
    _open.append(ledger)
    name = unique("lease")
    account, _ = await AccountService(db, ledger).create(name, credit)
    return ledger, account.id, name


async def _hold(ledger: Ledger, account_id: int, amount: int = H) -> Hold:
    return await ledger.hold(account_id, amount, kind="chat", model="m", durable=False)


async def _rows(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def _clean(db: Database, name: str) -> Any:
    books = await _audit(db.url, name)
    assert books.problems() == []
    return books


async def test_a_request_on_a_lease_writes_its_charge_when_it_settles(
    db: Database,
) -> None:
    ledger, acct, name = await _ledger_and_account(db, 1_000_000)
    first = await _hold(ledger, acct)
    assert ledger.leases is not None
    lease = ledger.leases.of(acct)
    assert lease is not None and lease.amount == LEASE_HOLDS * H and lease.running == H
    # the database holds the lease, and no row of the request yet
    assert await ledger.balances(acct) == (1_000_000, LEASE_HOLDS * H)
    assert await _rows(db, "SELECT id FROM charges WHERE id = :i", i=first.charge_id) == []
    second = await _hold(ledger, acct)
    assert ledger.leases.of(acct) is lease and lease.running == 2 * H
    assert len(await _rows(db, "SELECT id FROM charges WHERE account_id = :a", a=acct)) == 1
    # what the lease holds free is the account's to spend, here
    assert await ledger.available(acct) == 1_000_000 - 2 * H
    assert await ledger.open_holds(acct) == 2  # the requests, not the lease

    done = await ledger.settle(first.charge_id, 300, UsageRecord(prompt_tokens=3))
    assert (done.applied, done.cost) == (True, 300)
    await ledger.release(second.charge_id)
    assert await ledger.balances(acct) == (999_700, LEASE_HOLDS * H - 300)
    assert lease.amount == LEASE_HOLDS * H - 300 and lease.running == 0
    assert await ledger.open_holds(acct) == 0
    rows = await _rows(
        db,
        "SELECT id, status, held_amount, cost, prompt_tokens FROM charges"
        " WHERE account_id = :a AND kind = 'chat' ORDER BY status DESC",
        a=acct,
    )
    assert [tuple(r) for r in rows] == [
        (first.charge_id, "settled", H, 300, 3),
        (second.charge_id, "released", H, 0, None),
    ]
    books = await _clean(db, name)
    assert books.leased == LEASE_HOLDS * H - 300
    again = await ledger.settle(first.charge_id, 300)  # once only
    assert again.applied is False
    assert await ledger.balances(acct) == (999_700, LEASE_HOLDS * H - 300)
    assert [c.id for c in books.charges] != [] and all(c.kind == "chat" for c in books.charges)


async def test_an_idle_lease_is_given_back(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leases_module, "IDLE_S", 0.05)
    ledger, acct, name = await _ledger_and_account(db, 1_000_000)
    for cost in (10, 20, 30):
        await ledger.settle((await _hold(ledger, acct)).charge_id, cost)
    assert ledger.leases is not None and ledger.leases.of(acct) is not None
    await asyncio.sleep(0.3)
    assert ledger.leases.of(acct) is None
    assert await ledger.balances(acct) == (1_000_000 - 60, 0)
    books = await _clean(db, name)
    assert [(c.status, dict(c.entries)) for c in books.leases] == [
        ("released", {"hold": 1, "draw": 3, "release": 1})
    ]
    # the next request opens a new one
    await _hold(ledger, acct)
    assert ledger.leases.of(acct) is not None


async def test_a_lease_grows_and_never_takes_more_than_its_share(db: Database) -> None:
    credit = MIN_HOLDS * H * 3  # a lease of 1/SHARE of it: 6 holds
    ledger, acct, name = await _ledger_and_account(db, credit)
    holds = [await _hold(ledger, acct) for _ in range(7)]
    assert ledger.leases is not None
    lease = ledger.leases.of(acct)
    assert lease is not None and lease.running == 7 * H and lease.amount >= 7 * H
    await asyncio.sleep(0.05)  # a growth ahead of need lands
    growths = await _rows(
        db,
        "SELECT kind, held FROM ledger_entries WHERE charge_id = :i ORDER BY id",
        i=lease.id,
    )
    assert [k for k, _ in growths][:2] == ["hold", "grow"]
    available = credit
    for _kind, held in growths:  # each took at most its share of what was left
        assert 0 < held <= available // SHARE
        available -= held
    assert lease.amount == credit - available
    for h in holds:
        await ledger.settle(h.charge_id, H)
    assert await ledger.balances(acct) == (credit - 7 * H, lease.amount)
    books = await _clean(db, name)
    assert books.leases[0].entries["draw"] == 7


async def test_a_request_is_refused_only_when_running_requests_hold_the_money(
    db: Database,
) -> None:
    """20 holds' worth and 25 requests at once: exactly 20 are held, whatever part of the
    balance leases held when the others were refused."""
    ledger, acct, name = await _ledger_and_account(db, 20 * H)
    got = await asyncio.gather(*(_hold(ledger, acct) for _ in range(25)), return_exceptions=True)
    held = [g for g in got if isinstance(g, Hold)]
    refused = [g for g in got if isinstance(g, InsufficientCredit)]
    assert (len(held), len(refused)) == (20, 5)
    assert (await ledger.balances(acct))[1] == 20 * H
    for h in held:
        await ledger.settle(h.charge_id, H)
    balance, held_now = await ledger.balances(acct)
    assert balance == 0 and held_now == 0
    await _clean(db, name)


async def test_many_requests_at_once_are_each_charged_once(db: Database) -> None:
    """Leased and plain holds, settles and releases of 300 requests at once on one account."""
    credit = 100_000_000
    ledger, acct, name = await _ledger_and_account(db, credit)
    rng = random.Random(7)
    charged = 0

    async def request(i: int) -> None:
        nonlocal charged
        amount = rng.randrange(1, 5_000)
        hold = await ledger.hold(acct, amount, kind="chat", model="m", durable=i % 5 == 0)
        await asyncio.sleep(rng.random() / 100)
        if i % 7 == 0:
            await ledger.release(hold.charge_id)
            return
        cost = rng.randrange(0, amount + 2_000)  # some past their hold: capped at it
        done = await ledger.settle(hold.charge_id, cost)
        charged += done.cost

    await asyncio.gather(*(request(i) for i in range(300)))
    assert ledger.leases is not None
    await ledger.leases.close()
    assert await ledger.balances(acct) == (credit - charged, 0)
    books = await _clean(db, name)
    assert books.by_status() == {"settled": 300 - 43, "released": 43}


async def test_a_settle_whose_lease_was_swept_is_charged_from_the_balance(
    db: Database,
) -> None:
    """Renewals failing for a hold timeout (the database away) let another replica's sweeper
    release the lease while a request still runs on it: its settle re-creates its charge from
    what the balance has, and the next request opens a new lease."""
    ledger, acct, name = await _ledger_and_account(db, 1_000_000)
    running = await _hold(ledger, acct)
    assert ledger.leases is not None
    old = ledger.leases.of(acct)
    assert old is not None
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE charges SET expires_at = :t WHERE id = :i"),
            {"t": utcnow() - timedelta(seconds=1), "i": old.id},
        )
    sweeper = Ledger(db)
    _open.append(sweeper)
    assert await sweeper.sweep_expired() == 1
    assert await ledger.balances(acct) == (1_000_000, 0)

    done = await ledger.settle(running.charge_id, 400)
    assert (done.applied, done.cost) == (True, 400)
    assert await ledger.balances(acct) == (999_600, 0)
    await ledger.renew()  # finds the lease gone: dropped
    assert ledger.leases.of(acct) is None
    fresh = await _hold(ledger, acct)
    lease = ledger.leases.of(acct)
    assert lease is not None and lease.id != old.id
    await ledger.settle(fresh.charge_id, 100)
    books = await _clean(db, name)
    assert sorted(c.status for c in books.leases) == ["expired", "held"]
    assert books.by_status() == {"settled": 2}


async def test_a_dead_process_journal_draws_from_its_lease(db: Database, tmp_path: Path) -> None:
    """A process killed after journaling a settle that had not landed: the next process
    replays it, drawn from the dead process's lease if it is still held, else from the
    balance; the sweeper frees what the lease still holds."""
    ledger, acct, name = await _ledger_and_account(
        db, 1_000_000, journal=tmp_path, settle_wait="journal"
    )
    a, b = await _hold(ledger, acct), await _hold(ledger, acct)
    assert ledger.leases is not None
    lease = ledger.leases.of(acct)
    assert lease is not None
    ledger.writer.submit = _never  # type: ignore[method-assign]  # the process dies first
    await ledger.settle(a.charge_id, 250)
    await ledger.settle(b.charge_id, 150)
    lines = [decode_entry(x) for x in _journal_lines(tmp_path)]
    assert [(s.lease, h is not None) for s, h in lines] == [(lease.id, True)] * 2
    assert ledger.journal is not None
    ledger.journal.close()  # what the kill leaves: segments unlocked, nothing committed
    _open.remove(ledger)
    await ledger.store.close()

    async with db.engine.begin() as conn:  # the second settle's lease is gone meanwhile
        await conn.execute(
            text("UPDATE charges SET held_amount = 250 WHERE id = :i"), {"i": lease.id}
        )
        await conn.execute(text("UPDATE accounts SET held = 250 WHERE id = :a"), {"a": acct})
        await conn.execute(
            text(
                "INSERT INTO ledger_entries (account_id, charge_id, kind, amount, held,"
                " created_at) VALUES (:a, :i, 'return', 0, :h, :t)"
            ),
            {"a": acct, "i": lease.id, "h": 250 - LEASE_HOLDS * H, "t": utcnow()},
        )
    after = Ledger(db, journal=Journal(tmp_path))
    _open.append(after)
    assert await after.replay_journals() == 2
    assert await after.balances(acct) == (1_000_000 - 400, 0)
    rows = await _rows(db, "SELECT held_amount FROM charges WHERE id = :i", i=lease.id)
    assert rows[0][0] == 0
    books = await _clean(db, name)
    assert books.by_status() == {"settled": 2}


def _never(step: Any, orphaned: Any = None) -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


def _journal_lines(directory: Path) -> list[bytes]:
    return [line for path in sorted(directory.iterdir()) for line in path.read_bytes().splitlines()]


def test_a_leased_journal_line_needs_its_hold() -> None:
    from minitoolai.ledger.store import Finish

    step = Finish("req_1", "settle", 5, None, None, None, False, None, None, None, utcnow())
    step.lease = "lease_1"
    line = orjson.loads(encode(step))
    with pytest.raises(ValueError, match="lease"):
        decode_entry(orjson.dumps(line))
    line["lease"] = 7
    with pytest.raises(ValueError):
        decode_entry(orjson.dumps(line))


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_steps_keep_the_books(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Random sequences of holds (on leases and in rows), settles (below, at and past their
    holds), releases, idle leases given back, sweeps that take leases in use, and process
    deaths replayed from the journal: after each step the audit is clean and the balance is
    the credit less exactly what the settles reported charged."""
    monkeypatch.setattr(leases_module, "IDLE_S", 0.0)
    rng = random.Random(seed)
    credit = rng.choice([40 * H, 400 * H, 40_000 * H])
    ledger, acct, name = await _ledger_and_account(
        db, credit, journal=tmp_path, settle_wait=rng.choice(["commit", "journal"])
    )
    running: list[Hold] = []
    charged = 0  # what the settles said they charged (a journaled one: what it asked)

    async def new_process(old: Ledger) -> Ledger:
        nonlocal charged
        await old.flush()
        if old.leases is not None and old.leases._timer is not None:
            old.leases._timer.cancel()
        assert old.journal is not None
        old.journal.close()
        await old.store.close()
        _open.remove(old)
        fresh = Ledger(db, journal=Journal(tmp_path), settle_wait=old.finisher.settle_wait)
        _open.append(fresh)
        await fresh.replay_journals()
        return fresh

    for _ in range(120):
        op = rng.random()
        if op < 0.45 or not running:
            amount = rng.choice([1, H, 5 * H, 50 * H])
            with contextlib.suppress(InsufficientCredit):
                running.append(
                    await ledger.hold(
                        acct, amount, kind="chat", model="m", durable=rng.random() < 0.2
                    )
                )
        elif op < 0.8:
            hold = running.pop(rng.randrange(len(running)))
            cost = rng.choice([0, 1, hold.amount // 2, hold.amount, hold.amount + 7])
            done = await ledger.settle(hold.charge_id, cost)
            charged += min(cost, hold.amount) if done.pending else done.cost
        elif op < 0.9:
            await ledger.release(running.pop(rng.randrange(len(running))).charge_id)
        elif op < 0.94:
            await asyncio.sleep(0.01)  # idle leases go back
            await ledger.renew()
        elif op < 0.97:  # the sweeper, as if the hold timeout passed: leases in use go too
            await ledger.flush()
            sweeper = Ledger(db)
            _open.append(sweeper)
            await sweeper.sweep_expired(utcnow() + timedelta(hours=1))
        else:  # the process dies with its running requests (never settled: free)
            await ledger.flush()
            running.clear()
            ledger = await new_process(ledger)
        await ledger.flush()
        books = await _audit(db.url, name)
        assert books.problems() == []
        assert books.balance <= credit
        assert credit - books.balance <= charged
    for hold in running:
        done = await ledger.settle(hold.charge_id, hold.amount)
        charged += hold.amount if done.pending else done.cost
    await ledger.flush()
    books = await _clean(db, name)
    assert books.leases  # requests were held on leases
    if ledger.finisher.settle_wait == "commit":  # each settle said what it charged
        assert books.balance == credit - charged
    else:  # a journaled one said what it asked: a late one may have found less
        assert credit - charged <= books.balance


def test_a_lease_spent_fast_grows_by_twice_its_last_growth() -> None:
    import time

    from minitoolai.ledger.leases import Lease, _growth

    lease = Lease("lease_1", 1, 40 * H, good_until=time.monotonic() + 60, running=3 * H)
    assert _growth(lease, H) == LEASE_HOLDS * H  # never grown: its holds' worth
    lease.grown, lease.grown_at = 50 * H, time.monotonic()
    assert _growth(lease, H) == 100 * H  # grown a moment ago: twice that
    lease.grown_at -= leases_module.GROWTH_WINDOW_S
    assert _growth(lease, H) == LEASE_HOLDS * H  # a while ago: back to its holds' worth
    lease.running = 90 * H
    assert _growth(lease, H) == 90 * H  # at least what runs on it


async def test_a_hold_in_a_row_gets_what_the_lease_holds_free(db: Database) -> None:
    """An image's hold (durable, never on a lease) on an account whose balance this process's
    lease partly holds: the lease gives its free part back rather than the image being
    refused."""
    ledger, acct, name = await _ledger_and_account(db, 100 * H)
    chat = await _hold(ledger, acct)
    assert ledger.leases is not None and ledger.leases.of(acct) is not None
    image = await ledger.hold(acct, 98 * H, kind="image", model="m", ttl=timedelta(hours=1))
    assert await ledger.balances(acct) == (100 * H, 99 * H)
    with pytest.raises(InsufficientCredit):
        await ledger.hold(acct, 2 * H, kind="image", model="m", ttl=timedelta(hours=1))
    await ledger.settle(chat.charge_id, H)
    await ledger.settle(image.charge_id, 98 * H)
    lease = ledger.leases.of(acct)
    assert lease is not None and lease.amount == 0  # its free part went back; now spent
    assert await ledger.balances(acct) == (H, 0)
    await _clean(db, name)


async def test_a_lease_past_its_good_until_holds_nothing_more(db: Database) -> None:
    """Renewals failing for half a hold timeout: the lease holds no new request (its deadline
    may be near) unless a growth moves that deadline; refused, the request is held in a row."""
    ledger, acct, name = await _ledger_and_account(db, MIN_HOLDS * H)
    first = await _hold(ledger, acct)
    assert ledger.leases is not None
    lease = ledger.leases.of(acct)
    assert lease is not None and lease.free >= H  # 2 holds' worth, one running
    lease.good_until = 0.0
    second = await _hold(ledger, acct)  # a growth is refused: 14 holds' worth are left
    assert lease.running == H
    rows = await _rows(db, "SELECT status FROM charges WHERE id = :i", i=second.charge_id)
    assert [r[0] for r in rows] == ["held"]
    await ledger.settle(first.charge_id, H)
    await ledger.settle(second.charge_id, H)
    books = await _clean(db, name)
    assert books.by_status() == {"settled": 2}


async def test_a_lone_step_on_a_lease_runs_its_own_statement_and_lands_once(
    postgres_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A settle or release with nothing else in flight goes to the database alone
    (``FINISH_LEASED_ONE``, plain parameters): charged its cost capped at its hold, a release
    moves no money, and the same step again changes nothing."""
    db = postgres_db
    ledger, acct, name = await _ledger_and_account(db, 100_000)
    store = ledger.finisher.store
    lone: list[Any] = []
    run_one = store._finish_leased_one  # type: ignore[attr-defined]

    async def counted(step: Any, conn: Any = None) -> Any:
        lone.append(step)
        return await run_one(step, conn)

    monkeypatch.setattr(store, "_finish_leased_one", counted)
    within, over, released = [await _hold(ledger, acct) for _ in range(3)]
    assert (await ledger.settle(within.charge_id, 400)).cost == 400
    assert (await ledger.settle(over.charge_id, 5 * H)).cost == H  # capped at the hold
    assert (await ledger.release(released.charge_id)).cost == 0
    assert len(lone) == 3 and all(step.lease is not None for step in lone)
    assert (await ledger.balances(acct))[0] == 100_000 - 400 - H
    for step in list(lone):  # each again, as a replay from a journal would
        assert await store.finish(step) is None
    assert (await ledger.balances(acct))[0] == 100_000 - 400 - H
    books = await _clean(db, name)
    assert books.by_status() == {"settled": 2, "released": 1}


async def test_a_batch_of_leased_steps_lands_each_that_fits_once(db: Database) -> None:
    """One ``finish_many`` batch of steps on two accounts' leases: each lease drawn by what
    its steps cost, a step its lease cannot cover, one naming another account's lease and a
    step given twice each write nothing, a release writes its row and moves no money; the
    books stay exact."""
    from minitoolai.ledger.store import Finish, NewCharge

    ledger, a, name_a = await _ledger_and_account(db, 100 * H)
    _, b, name_b = await _ledger_and_account(db, 100 * H)
    store = ledger.store
    now = utcnow()
    until = now + timedelta(minutes=5)
    lease_a, lease_b = "lease_" + unique("a"), "lease_" + unique("b")
    assert await store.lease_more(lease_a, a, H, 5 * H, 1, now, until, new=True) == 5 * H  # type: ignore[attr-defined]
    assert await store.lease_more(lease_b, b, H, 5 * H, 1, now, until, new=True) == 5 * H  # type: ignore[attr-defined]

    def step(account: int, lease: str, cost: int, kind: str = "settle") -> Finish:
        charge = NewCharge(unique("req"), account, None, "chat", "m", 2 * H, None, None, now, until)
        return Finish(
            charge.id, kind, cost, 1, 2, None, False, "up", None, None, now,  # type: ignore[arg-type]
            lease=lease, charge=charge,
        )  # fmt: skip

    within, also, past, released = (step(a, lease_a, c) for c in (2 * H, 2 * H, 2 * H, 0))
    released.kind = "release"
    on_b = step(b, lease_b, 3 * H)  # capped at its hold: 2 H
    stranger = step(a, lease_b, H)  # account a's request on account b's lease
    done = await store.finish_many([within, on_b, also, stranger, past, released, within])
    costs = [None if d is None else d.charged for d in done]
    assert costs == [2 * H, 2 * H, 2 * H, None, None, 0, None]
    assert await ledger.balances(a) == (96 * H, H)  # 4 H drawn from its 5 H lease
    assert await ledger.balances(b) == (98 * H, 3 * H)
    for name in (name_a, name_b):
        books = await _clean(db, name)
        assert books.leases[0].entries["draw"] == 1  # one draw per lease and batch
    assert books.by_status() == {"settled": 1}
    again = await store.finish_many([within, on_b, released])
    assert again == [None, None, None]
