"""A plain hold its process settles may be answered before the database flushed it
(``Ledger.hold(durable=False)``, PostgreSQL's asynchronous commit). A database crash can then
lose it; its settle re-creates the charge and charges what the balance still has, as a late
settle does. Here the loss is made by hand, as a crash leaves it (the hold's transaction never
happened), on both databases; ``tests/reliability/test_lost_hold_crash.py`` crashes a real
PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from minitoolai.accounts.service import AccountService
from minitoolai.infra.db import Database
from minitoolai.ledger.journal import Journal
from minitoolai.ledger.service import Ledger, UsageRecord
from minitoolai.ledger.store import Finish
from tests.conftest import unique
from tests.support.ledgers import OPEN as _open
from tests.support.ledgers import close_ledgers as close_ledgers  # autouse


async def _ledger_and_account(db: Database, credit: int) -> tuple[Ledger, int]:
    ledger = Ledger(db, leases=False)  # holds in rows, which a database crash could lose
    _open.append(ledger)
    account, _ = await AccountService(db, ledger).create(unique("lost"), credit)
    return ledger, account.id


async def lose(db: Database, charge_id: str) -> None:
    """Undo a hold as a database crash before its flush does: its charge, its entry and the
    account's ``held`` are as if its transaction never ran."""
    async with db.engine.begin() as conn:
        amount = (
            await conn.execute(
                text("SELECT held_amount, account_id FROM charges WHERE id = :id"),
                {"id": charge_id},
            )
        ).one()
        await conn.execute(
            text("DELETE FROM ledger_entries WHERE charge_id = :id"), {"id": charge_id}
        )
        await conn.execute(text("DELETE FROM charges WHERE id = :id"), {"id": charge_id})
        await conn.execute(
            text("UPDATE accounts SET held = held - :amount WHERE id = :acct"),
            {"amount": amount[0], "acct": amount[1]},
        )


async def _charge(db: Database, charge_id: str) -> tuple[Any, ...] | None:
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT status, held_amount, cost, prompt_tokens, completion_tokens, model"
                    " FROM charges WHERE id = :id"
                ),
                {"id": charge_id},
            )
        ).first()
        entries = (
            await conn.execute(
                text("SELECT kind, amount, held FROM ledger_entries WHERE charge_id = :id"),
                {"id": charge_id},
            )
        ).all()
    return None if row is None else (*row, sorted(tuple(e) for e in entries))


async def test_a_settle_recreates_a_hold_the_database_lost(db: Database) -> None:
    ledger, acct = await _ledger_and_account(db, 1_000)
    hold = await ledger.hold(acct, 300, kind="chat", model="m", durable=False)
    await lose(db, hold.charge_id)
    assert await ledger.balances(acct) == (1_000, 0)

    done = await ledger.settle(
        hold.charge_id, 120, UsageRecord(prompt_tokens=7, completion_tokens=5)
    )
    assert (done.applied, done.cost) == (True, 120)
    assert await ledger.balances(acct) == (880, 0)
    assert await ledger.balances(acct) == await ledger.entry_sums(acct)
    assert await _charge(db, hold.charge_id) == (
        "settled",
        300,
        120,
        7,
        5,
        "m",
        [("hold", 0, 300), ("settle", -120, -300)],
    )
    assert hold.charge_id not in ledger._live
    again = await ledger.settle(hold.charge_id, 120)  # once only
    assert again.applied is False
    assert await ledger.balances(acct) == (880, 0)


async def test_a_lost_hold_is_charged_only_what_the_balance_still_has(db: Database) -> None:
    """Its money was no longer reserved: other requests may have spent it meanwhile. The
    balance never goes below zero, nor below what others hold."""
    ledger, acct = await _ledger_and_account(db, 1_000)
    hold = await ledger.hold(acct, 600, kind="chat", model="m", durable=False)
    await lose(db, hold.charge_id)
    other = await ledger.hold(acct, 900, kind="chat", model="m")  # fits now that it is gone
    done = await ledger.settle(hold.charge_id, 500)
    assert (done.applied, done.cost) == (True, 100)
    assert await ledger.balances(acct) == (900, 900)
    assert await ledger.balances(acct) == await ledger.entry_sums(acct)
    await ledger.settle(other.charge_id, 900)
    assert await ledger.balances(acct) == (0, 0)


async def test_a_release_of_a_lost_hold_moves_nothing(db: Database) -> None:
    ledger, acct = await _ledger_and_account(db, 1_000)
    hold = await ledger.hold(acct, 300, kind="chat", model="m", durable=False)
    await lose(db, hold.charge_id)
    done = await ledger.release(hold.charge_id)
    assert done.applied is False
    assert await _charge(db, hold.charge_id) is None
    assert await ledger.balances(acct) == (1_000, 0)
    assert hold.charge_id not in ledger._live


async def test_a_deferred_settle_of_a_lost_hold_recreates_it_when_the_database_is_back(
    db: Database,
) -> None:
    """The crash that lost the hold also refused its settle: kept, retried by ``maintain``,
    which re-creates the charge once the database answers."""
    ledger, acct = await _ledger_and_account(db, 1_000)
    hold = await ledger.hold(acct, 300, kind="chat", model="m", durable=False)
    store = ledger.store
    ledger.store = _Away(store)  # type: ignore[assignment]
    done = await ledger.settle(hold.charge_id, 200)
    assert done.deferred
    ledger.store = store
    await lose(db, hold.charge_id)
    await ledger.catch_up()
    assert await ledger.balances(acct) == (800, 0)
    assert await ledger.balances(acct) == await ledger.entry_sums(acct)
    assert (await _charge(db, hold.charge_id) or ())[:3] == ("settled", 300, 200)
    assert hold.charge_id not in ledger._live


async def test_a_settle_of_a_charge_this_process_never_held_is_still_not_found(
    db: Database,
) -> None:
    """Only this process's own holds are re-created: an unknown charge id is a 404, as
    before, and writes nothing."""
    from minitoolai.errors import NotFound

    ledger, acct = await _ledger_and_account(db, 1_000)
    with pytest.raises(NotFound):
        await ledger.settle("req_" + "0" * 24, 100)
    assert await ledger.balances(acct) == (1_000, 0)


async def test_a_replay_recreates_a_hold_lost_with_the_database_after_its_process_died(
    db: Database, tmp_path: Path
) -> None:
    """PostgreSQL crashed (the hold gone, the settle refused) and then the process died with
    its settle only in its journal: the line carries the hold, so the next process's replay
    re-creates and charges it, once."""
    directory = tmp_path / "journal"
    dying = Ledger(db, journal=Journal(directory))
    _open.append(dying)
    account, _ = await AccountService(db, dying).create(unique("lostj"), 1_000)
    hold = await dying.hold(account.id, 300, kind="chat", model="m", durable=False)
    store = dying.store
    dying.store = _Away(store)  # type: ignore[assignment]
    assert (await dying.settle(hold.charge_id, 120, UsageRecord(completion_tokens=4))).deferred
    dying.store = store
    assert dying.journal is not None
    dying.journal.close()  # the process dies: its lock freed, its settle never committed
    dying.finisher._deferred.clear()
    await lose(db, hold.charge_id)

    survivor = Ledger(db, journal=Journal(directory))
    _open.append(survivor)
    assert await survivor.replay_journals() == 1
    assert await survivor.balances(account.id) == (880, 0)
    assert await survivor.balances(account.id) == await survivor.entry_sums(account.id)
    assert (await _charge(db, hold.charge_id) or ())[:5] == ("settled", 300, 120, None, 4)
    assert await survivor.replay_journals() == 0


async def test_only_a_hold_the_database_could_lose_goes_into_the_journal(
    db: Database, tmp_path: Path
) -> None:
    ledger = Ledger(db, journal=Journal(tmp_path))
    _open.append(ledger)
    account, _ = await AccountService(db, ledger).create(unique("lostk"), 1_000)
    flushed = await ledger.hold(account.id, 100, kind="chat", model="m")
    unflushed = await ledger.hold(account.id, 100, kind="chat", model="m", durable=False)
    ledger.store = _Away(ledger.store)  # type: ignore[assignment]  # the lines stay
    for hold in (flushed, unflushed):
        assert (await ledger.settle(hold.charge_id, 10)).deferred
    (segment,) = tmp_path.glob("*.jsonl")
    lines = [orjson.loads(line) for line in segment.read_bytes().splitlines()]
    assert [line["hold"] is not None for line in lines] == [False, True]
    assert lines[1]["hold"]["account"] == account.id and lines[1]["hold"]["amount"] == 100
    ledger.store = ledger.store._store  # type: ignore[attr-defined]
    await ledger.catch_up()
    assert await ledger.balances(account.id) == (980, 0)


class _Away:
    """A store whose database refuses every finish (it is down)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def finish(self, step: Finish) -> None:
        raise ConnectionError("the database is away")

    async def finish_many(self, steps: list[Finish]) -> None:
        raise ConnectionError("the database is away")


def test_a_journal_line_carries_its_hold_and_a_malformed_hold_is_no_step() -> None:
    from datetime import UTC, datetime

    from minitoolai.ledger.journal import decode_entry, encode
    from minitoolai.ledger.store import NewCharge

    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    step = Finish("req_1", "settle", 5, 1, 2, None, False, "up", None, None, now)
    hold = NewCharge("req_1", 7, None, "chat", "m", 300, None, None, now, now, "rid")
    assert decode_entry(encode(step, hold)) == (step, hold)
    assert decode_entry(encode(step)) == (step, None)
    old = orjson.loads(encode(step))
    del old["hold"]  # a line written before holds were kept
    assert decode_entry(orjson.dumps(old)) == (step, None)
    for bad in ({"account": "7"}, {"amount": -1}, {"kind": 3}, {"key": True}, {"at": 5}):
        line = orjson.loads(encode(step, hold))
        line["hold"].update(bad)
        with pytest.raises((ValueError, KeyError, TypeError)):
            decode_entry(orjson.dumps(line))


async def test_concurrent_settles_of_one_lost_hold_charge_it_once_beside_new_holds(
    db: Database,
) -> None:
    """Twenty re-creations of the same lost hold at once (a retry racing a replay, say), while
    other requests hold the same account: the charge is written and paid once, the balance
    never goes below what is held, and the entries add up."""
    import asyncio

    from minitoolai.errors import InsufficientCredit
    from minitoolai.ledger.service import LiveHold

    ledger, acct = await _ledger_and_account(db, 1_000)
    hold = await ledger.hold(acct, 400, kind="chat", model="m", durable=False)
    live = ledger._live[hold.charge_id]
    assert isinstance(live, LiveHold)
    await lose(db, hold.charge_id)
    step = Finish(
        hold.charge_id, "settle", 300, 1, 1, None, False, "up", None, None, live.charge.now
    )

    async def other() -> str | None:
        try:
            return (await ledger.hold(acct, 150, kind="chat", model="m")).charge_id
        except InsufficientCredit:
            return None

    got = await asyncio.gather(
        *(ledger.store.settle_lost(live.charge, step, "lost") for _ in range(20)),
        *(other() for _ in range(10)),
    )
    lost = [g for g in got[:20] if g is not None]
    others = [g for g in got[20:] if g is not None]
    assert len(lost) == 1
    charged = lost[0].charged  # type: ignore[union-attr]
    balance, held = await ledger.balances(acct)
    assert (balance, held) == (1_000 - charged, 150 * len(others))
    assert held <= balance and charged <= 300
    assert (balance, held) == await ledger.entry_sums(acct)
    assert (await _charge(db, hold.charge_id) or ())[:3] == ("settled", 400, charged)
