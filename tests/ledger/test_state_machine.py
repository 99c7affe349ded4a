"""A model-based test of the ledger: hypothesis drives random sequences of every ledger step
against SQLite and PostgreSQL and checks the database against a model kept by hand.

The model knows, for every charge, its status, cost, deadline, stored result and idempotency
key, and for every account its balance; after each step the database must match it exactly
and keep the ledger's invariants (balance == SUM(entries.amount), held == SUM(entries.held) ==
the held charges' held_amount, balance >= held >= 0, one entry of each kind per charge, a
settled charge's cost <= its hold).

Time is a fake clock (``minitoolai.ledger.service.utcnow`` is patched), so deadlines, renewals
and sweeps are exact: the model predicts precisely which holds a sweep expires. The clock
starts a year ahead of the real one: each run first sweeps what earlier tests left held in the
shared database (and last sweeps its own), so the model can count what each sweep releases,
and no real-time sweep of another test ever meets this test's holds.

A database outage is a switch read by a proxy in front of ``Ledger.store`` (every statement the
ledger runs): down for a whole call, or going down right after a finish statement lands (between
two statements of one settle or one ``maintain``). A crash drops the ``Ledger`` (its live holds
and deferred settlements are lost) and builds a new one on the same database.

``LEDGER_SM_EXAMPLES=500`` runs a longer hunt.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from minitoolai.accounts.service import AccountService
from minitoolai.clock import as_utc
from minitoolai.errors import Conflict, InsufficientCredit, InvalidRequest
from minitoolai.infra.db import Database
from minitoolai.infra.tables import accounts, charges, ledger_entries
from minitoolai.ledger import service
from minitoolai.ledger.idempotency import IdempotencyKey
from minitoolai.ledger.service import Hold, Ledger, Settlement, UsageRecord
from minitoolai.money import MAX_BALANCE
from tests.conftest import unique

HOLD_TIMEOUT_S = 900
INITIAL_CREDIT = 6_000
SCOPES = ("/v1/chat/completions", "/v1/images/generations")
KEYS = ("k1", "k2")
BODIES = ({"model": "m", "prompt": "a"}, {"model": "m", "prompt": "b"})
#: None is the default (a live hold); the others are a hold's own ttl, never renewed
TTLS: tuple[int | None, ...] = (None, None, None, 60, 1800, -1)

WHO = st.integers(0, 1)
AMOUNT = st.one_of(st.integers(0, 5_000), st.just(0))
#: an idempotency key: (scope, key, body), from pools small enough that retries are common
KEY = st.tuples(
    st.integers(0, len(SCOPES) - 1),
    st.integers(0, len(KEYS) - 1),
    st.integers(0, len(BODIES) - 1),
)

SETTINGS = settings(
    # 60 runs of up to 50 steps: about 20 s (SQLite) and 35 s (PostgreSQL) on 2 busy cores
    max_examples=int(os.environ.get("LEDGER_SM_EXAMPLES", "60")),
    stateful_step_count=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class DatabaseDown(ConnectionRefusedError):
    pass


class Outage:
    """The switch both proxies below read: while ``down`` the database cannot be reached."""

    def __init__(self) -> None:
        self.down = False
        #: the database goes away right after the next store step lands (between statements)
        self.after_next_finish = False

    def check(self) -> None:
        if self.down:
            raise DatabaseDown("database unreachable (test)")

    def end(self) -> None:
        self.down = self.after_next_finish = False


class FlakyStore:
    """``Ledger.store`` behind the outage switch: every step fails while the database is down."""

    def __init__(self, inner: Any, outage: Outage) -> None:
        self.inner = inner
        self.outage = outage

    async def finish(self, step: Any) -> Any:
        self.outage.check()
        done = await self.inner.finish(step)
        if self.outage.after_next_finish:
            self.outage.down = True
        return done

    async def finish_many(self, steps: list[Any]) -> list[Any]:
        self.outage.check()
        done = await self.inner.finish_many(steps)
        if self.outage.after_next_finish:
            self.outage.down = True
        return done

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:
        step = getattr(self.inner, name)

        async def guarded(*args: Any, **kwargs: Any) -> Any:
            self.outage.check()
            return await step(*args, **kwargs)

        return guarded


class Clock:
    def __init__(self, start: datetime) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at


@dataclass
class Charge:
    """What the database should say about one charge."""

    id: str
    account: int
    amount: int
    expires_at: datetime
    status: str = "held"  # held settled released expired refunded
    cost: int | None = None
    result: Any = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    process: int | None = None  # the Ledger generation that renews it (a live hold)
    entries: set[str] = field(default_factory=lambda: {"hold"})

    @property
    def net_charged(self) -> int:
        return (self.cost or 0) if self.status == "settled" else 0


@dataclass
class Deferred:
    kind: str  # settle | release
    cost: int
    result: Any


_next_start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)
_results = itertools.count(1)


class LedgerMachine(RuleBasedStateMachine):
    url: str = ""
    clock: Clock

    charge_ids = Bundle("charge_ids")

    def __init__(self) -> None:
        super().__init__()
        self.clock.at = _next_start
        self.runner = asyncio.Runner()
        self.db = Database(self.url)
        self.outage = Outage()
        self.ledger = self._new_ledger()
        self.generation = 0
        self.balance: dict[int, int] = {}
        self.charges: dict[str, Charge] = {}
        self.key_owner: dict[tuple[int, str], str] = {}  # (account, stored key) -> charge
        self.live: set[str] = set()  # what this Ledger instance renews
        self.deferred: dict[str, Deferred] = {}
        self.run(self._setup())

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    def _new_ledger(self) -> Ledger:
        ledger = Ledger(self.db, hold_timeout_s=HOLD_TIMEOUT_S)
        ledger.store = FlakyStore(ledger.store, self.outage)
        return ledger

    async def _setup(self) -> None:
        # Whatever earlier tests or examples left held is long expired on this clock.
        while await self.ledger.sweep_expired(self.clock.now()):
            pass
        svc = AccountService(self.db, self.ledger)
        for _ in range(2):
            account, _ = await svc.create(unique("sm"), INITIAL_CREDIT)
            self.balance[account.id] = INITIAL_CREDIT
        self.accounts = sorted(self.balance)

    def teardown(self) -> None:
        global _next_start
        try:
            self.run(self._teardown())
        finally:
            self.runner.close()
            _next_start = self.clock.now() + timedelta(days=2)

    async def _teardown(self) -> None:
        self.outage.end()
        while await self.ledger.sweep_expired(self.clock.now() + timedelta(days=1)):
            pass
        await self.ledger.close()
        await self.db.dispose()

    # -- the model ---------------------------------------------------------------------------

    def held(self, account: int) -> int:
        return sum(
            c.amount for c in self.charges.values() if c.account == account and c.status == "held"
        )

    def available(self, account: int) -> int:
        return self.balance[account] - self.held(account)

    def _expect_finish(self, charge_id: str, kind: str, cost: int, result: Any) -> Settlement:
        """What ``settle``/``release`` (or a deferred retry) does to the model."""
        c = self.charges[charge_id]
        if c.status == "held":
            charged = min(cost, c.amount) if kind == "settle" else 0
            self.balance[c.account] -= charged
            c.status = "settled" if kind == "settle" else "released"
            c.cost = charged
            c.entries.add(kind)
            if result is not None:
                c.result = result
            event(f"{kind}: applied" + (" (capped at the hold)" if cost > c.amount else ""))
            return Settlement(charge_id, charged, True)
        if c.status == "expired" and kind == "settle":  # settled after expiry
            wanted = min(cost, c.amount)
            charged = max(0, min(wanted, self.available(c.account)))
            self.balance[c.account] -= charged
            c.status = "settled"
            c.cost = charged
            c.entries.add("settle")
            if result is not None:
                c.result = result
            event("settle: after expiry" + (" (short of credit)" if charged < wanted else ""))
            return Settlement(charge_id, charged, True)
        event(f"{kind}: changed nothing ({c.status})")
        return Settlement(charge_id, c.cost or 0, False)

    # -- rules -------------------------------------------------------------------------------

    @rule(who=WHO, amount=st.one_of(st.integers(1, 3_000), st.just(MAX_BALANCE)))
    def top_up(self, who: int, amount: int) -> None:
        account = self.accounts[who]
        if self.balance[account] + amount > MAX_BALANCE:
            with pytest.raises(InvalidRequest):
                self.run(self.ledger.top_up(account, amount))
            return
        new = self.run(self.ledger.top_up(account, amount, "test top-up"))
        self.balance[account] += amount
        assert new == self.balance[account]

    @initialize(target=charge_ids, amount=st.integers(0, 5_000))
    def first_hold(self, amount: int) -> Any:
        """Every run starts with a live hold, so the steps on charges always have one."""
        return self._hold(0, amount, None, None)

    @initialize(target=charge_ids, amount=st.integers(0, 5_000), key=KEY)
    def first_hold_with_key(self, amount: int, key: tuple[int, int, int]) -> Any:
        return self._hold(1, amount, None, key)

    @rule(target=charge_ids, who=WHO, amount=AMOUNT, ttl=st.sampled_from(TTLS))
    def hold(self, who: int, amount: int, ttl: int | None) -> Any:
        return self._hold(who, amount, ttl, None)

    @rule(target=charge_ids, who=WHO, short=st.integers(-1, 50))
    def hold_the_rest(self, who: int, short: int) -> Any:
        """A hold of (nearly) all that is available: credit runs out, late settles fall short."""
        return self._hold(who, max(0, self.available(self.accounts[who]) - short), None, None)

    @rule(target=charge_ids, who=WHO, amount=AMOUNT, ttl=st.sampled_from(TTLS), key=KEY)
    def hold_with_key(
        self, who: int, amount: int, ttl: int | None, key: tuple[int, int, int]
    ) -> Any:
        """A new request, or a client's retry: the same key with the same or another body."""
        return self._hold(who, amount, ttl, key)

    def _hold(
        self, who: int, amount: int, ttl: int | None, idem: tuple[int, int, int] | None
    ) -> Any:
        account = self.accounts[who]
        key = None
        if idem is not None:
            key = IdempotencyKey.for_body(SCOPES[idem[0]], KEYS[idem[1]], BODIES[idem[2]])
        call = self.ledger.hold(
            account,
            amount,
            kind="chat",
            model="m",
            idempotency=key,
            ttl=None if ttl is None else timedelta(seconds=ttl),
        )
        if key is not None and (account, key.stored) in self.key_owner:
            earlier = self.charges[self.key_owner[account, key.stored]]
            if earlier.request_hash != key.fingerprint:
                with pytest.raises(Conflict) as err:
                    self.run(call)
                assert err.value.code == "idempotency_key_reused"
                event("hold: key reused with another body")
                return multiple()
            if earlier.status == "held" and earlier.result is None:
                with pytest.raises(Conflict) as err:
                    self.run(call)
                assert err.value.code == "idempotency_in_progress"
                event("hold: key in progress")
                return multiple()
            if earlier.status == "released" and earlier.result is None:
                # failed unanswered: it gives its key up, the retry is a new request
                earlier.idempotency_key = None
                event("hold: released key given up")
                del self.key_owner[account, key.stored]
            else:
                got: Hold = self.run(call)
                assert got.is_replay
                assert (got.charge_id, got.account_id, got.amount) == (
                    earlier.id,
                    account,
                    earlier.amount,
                )
                assert got.replayed_status == earlier.status
                assert got.replayed_result == earlier.result
                event(f"hold: replay of a {earlier.status} charge")
                return multiple()
        if amount > self.available(account):
            with pytest.raises(InsufficientCredit):
                self.run(call)
            event("hold: insufficient credit")
            return multiple()
        got = self.run(call)
        assert not got.is_replay
        assert (got.account_id, got.amount) == (account, amount)
        assert got.charge_id not in self.charges
        self.charges[got.charge_id] = Charge(
            got.charge_id,
            account,
            amount,
            self.clock.now() + timedelta(seconds=HOLD_TIMEOUT_S if ttl is None else ttl),
            idempotency_key=key.stored if key else None,
            request_hash=key.fingerprint if key else None,
        )
        if key is not None:
            self.key_owner[account, key.stored] = got.charge_id
        if ttl is None:
            self.live.add(got.charge_id)
            self.charges[got.charge_id].process = self.generation
        return got.charge_id

    @rule(who=WHO, amount=st.integers(0, 5_000))
    def hold_while_database_down(self, who: int, amount: int) -> None:
        self.outage.down = True
        try:
            with pytest.raises(DatabaseDown):
                self.run(self.ledger.hold(self.accounts[who], amount, kind="chat", model="m"))
        finally:
            self.outage.end()

    def _cost(self, charge_id: str, how: str, offset: int) -> int:
        amount = self.charges[charge_id].amount
        return {
            "zero": 0,
            "below": max(0, amount - 1 - offset),
            "equal": amount,
            "above": amount + 1 + offset,
        }[how]

    @rule(
        charge_id=charge_ids,
        how=st.sampled_from(["zero", "below", "equal", "above"]),
        offset=st.integers(0, 3_000),
        answer=st.booleans(),
    )
    def settle(self, charge_id: str, how: str, offset: int, answer: bool) -> None:
        cost = self._cost(charge_id, how, offset)
        result = {"answer": next(_results)} if answer else None
        got = self.run(self.ledger.settle(charge_id, cost, UsageRecord(3, 4, result=result)))
        assert got == self._expect_finish(charge_id, "settle", cost, result)
        self.live.discard(charge_id)

    @precondition(lambda self: any(c.status == "expired" for c in self.charges.values()))
    @rule(data=st.data(), how=st.sampled_from(["below", "equal", "above"]), answer=st.booleans())
    def settle_after_expiry(self, data: st.DataObject, how: str, answer: bool) -> None:
        """The request whose hold the sweeper took finishes after all, and pays."""
        # in the order they were made (charge ids are random: sorting them is not reproducible)
        expired = [i for i, c in self.charges.items() if c.status == "expired"]
        self.settle(data.draw(st.sampled_from(expired), label="charge_id"), how, 0, answer)

    @rule(charge_id=charge_ids)
    def release(self, charge_id: str) -> None:
        got = self.run(self.ledger.release(charge_id))
        assert got == self._expect_finish(charge_id, "release", 0, None)
        self.live.discard(charge_id)

    @rule(
        charge_id=charge_ids,
        settle=st.booleans(),
        how=st.sampled_from(["zero", "below", "equal", "above"]),
        offset=st.integers(0, 3_000),
    )
    def finish_while_database_down(
        self, charge_id: str, settle: bool, how: str, offset: int
    ) -> None:
        cost = self._cost(charge_id, how, offset) if settle else 0
        result = {"answer": next(_results)} if settle else None
        self.outage.down = True
        try:
            if settle:
                got = self.run(self.ledger.settle(charge_id, cost, UsageRecord(result=result)))
            else:
                got = self.run(self.ledger.release(charge_id))
        finally:
            self.outage.end()
        assert got == Settlement(charge_id, 0, False, deferred=True)
        self.deferred[charge_id] = Deferred("settle" if settle else "release", cost, result)

    @rule(charge_id=charge_ids)
    def refund(self, charge_id: str) -> None:
        c = self.charges[charge_id]
        expected = 0
        if c.status == "settled":
            expected = c.cost or 0
            c.status = "refunded"
            c.entries.add("refund")
            self.balance[c.account] += expected
        assert self.run(self.ledger.refund(charge_id, "test refund")) == expected

    @rule(charge_id=charge_ids)
    def set_result(self, charge_id: str) -> None:
        result = {"answer": next(_results)}
        self.run(self.ledger.set_result(charge_id, result))
        self.charges[charge_id].result = result

    @rule(database_down=st.booleans())
    def maintain(self, database_down: bool) -> None:
        self.outage.down = database_down
        try:
            self.run(self.ledger.maintain())
        except DatabaseDown:  # it could not renew: it may say so, and keeps all to retry
            pass
        finally:
            self.outage.end()
        if database_down:
            return  # nothing reached the database
        deadline = self.clock.now() + timedelta(seconds=HOLD_TIMEOUT_S)
        for charge_id in self.live:  # renewed first, then the deferred steps retried
            if self.charges[charge_id].status == "held":
                self.charges[charge_id].expires_at = deadline
        for charge_id, step in list(self.deferred.items()):
            event("maintain: a deferred step retried")
            self._expect_finish(charge_id, step.kind, step.cost, step.result)
            del self.deferred[charge_id]
            self.live.discard(charge_id)

    @rule(
        charge_id=charge_ids,
        how=st.sampled_from(["zero", "below", "equal", "above"]),
        offset=st.integers(0, 3_000),
    )
    def settle_as_database_goes_down(self, charge_id: str, how: str, offset: int) -> None:
        """The settle statement runs, then the database is gone for whatever comes next (an
        expired hold's late settle, reading the earlier cost): the settlement must be kept
        and retried by ``maintain``, never lost."""
        cost = self._cost(charge_id, how, offset)
        result = {"answer": next(_results)}
        self.outage.after_next_finish = True
        try:
            got = self.run(self.ledger.settle(charge_id, cost, UsageRecord(result=result)))
        finally:
            self.outage.end()
        if self.charges[charge_id].status == "held":
            assert got == self._expect_finish(charge_id, "settle", cost, result)
            self.live.discard(charge_id)
            return
        assert got == Settlement(charge_id, 0, False, deferred=True)
        self.deferred[charge_id] = Deferred("settle", cost, result)

    @precondition(lambda self: bool(self.deferred))
    @rule()
    def maintain_as_database_goes_down(self) -> None:
        """The live holds are renewed (first, so that nothing after can delay them), the first
        deferred retry's statement runs, then the database is gone: what ``maintain`` could
        not finish stays deferred, nothing is lost."""
        self.outage.after_next_finish = True
        try:
            self.run(self.ledger.maintain())
        except DatabaseDown:
            pass  # replaying journals failed, and it may say so
        finally:
            self.outage.end()
        deadline = self.clock.now() + timedelta(seconds=HOLD_TIMEOUT_S)
        for live_id in self.live:
            if self.charges[live_id].status == "held":
                self.charges[live_id].expires_at = deadline
        charge_id, step = next(iter(self.deferred.items()))
        c = self.charges[charge_id]
        if c.status == "held":
            self._expect_finish(charge_id, step.kind, step.cost, step.result)
            self.live.discard(charge_id)
        elif step.kind == "settle":
            # Not held any more: only the database can say whether the hold expired and the
            # settle is owed late, and it has just gone, so the settle stays deferred.
            if c.status == "expired":
                event("maintain: a late settle interrupted")
            return
        del self.deferred[charge_id]  # done, or a release with nothing left to do

    @rule(seconds=st.integers(0, 1_200))
    def advance_clock(self, seconds: int) -> None:
        self.clock.at += timedelta(seconds=seconds)

    @rule(ahead=st.one_of(st.integers(-100, 2_000), st.sampled_from([0, 60, 900, 1800])))
    def sweep(self, ahead: int) -> None:
        now = self.clock.now() + timedelta(seconds=ahead)
        expired = [c for c in self.charges.values() if c.status == "held" and c.expires_at < now]
        assert self.run(self.ledger.sweep_expired(now)) == len(expired)
        event("sweep: expired some" if expired else "sweep: expired none")
        if any(c.process is not None and c.process < self.generation for c in expired):
            event("sweep: freed a crashed process's hold")
        if any(c.id in self.live for c in expired):
            event("sweep: expired a live hold (renewals were late)")
        for c in expired:
            c.status = "expired"
            c.cost = 0
            c.entries.add("release")

    @precondition(lambda self: bool(self.charges))
    @rule()
    def crash(self) -> None:
        """The process dies: its live holds are not renewed any more, its deferred
        settlements are lost. A new process starts on the same database."""
        if self.deferred:
            event("crash: deferred settlements lost")
        if any(self.charges[i].status == "held" for i in self.live):
            event("crash: live holds orphaned")
        self.run(self.ledger.close())  # only frees connections; it flushes nothing
        self.ledger = self._new_ledger()
        self.generation += 1
        self.live = set()
        self.deferred = {}

    # -- the check after every step ----------------------------------------------------------

    @invariant()
    def database_matches_model(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        mine = self.accounts
        async with self.db.read() as conn:
            acct_rows = (
                await conn.execute(
                    select(accounts.c.id, accounts.c.balance, accounts.c.held).where(
                        accounts.c.id.in_(mine)
                    )
                )
            ).all()
            entry_rows = (
                await conn.execute(
                    select(
                        ledger_entries.c.account_id,
                        func.coalesce(func.sum(ledger_entries.c.amount), 0),
                        func.coalesce(func.sum(ledger_entries.c.held), 0),
                    )
                    .where(ledger_entries.c.account_id.in_(mine))
                    .group_by(ledger_entries.c.account_id)
                )
            ).all()
            per_charge = (
                await conn.execute(
                    select(
                        ledger_entries.c.charge_id,
                        ledger_entries.c.kind,
                        func.count(),
                        func.sum(ledger_entries.c.amount),
                        func.sum(ledger_entries.c.held),
                    )
                    .where(
                        ledger_entries.c.account_id.in_(mine),
                        ledger_entries.c.charge_id.is_not(None),
                    )
                    .group_by(ledger_entries.c.charge_id, ledger_entries.c.kind)
                )
            ).all()
            charge_rows = (
                await conn.execute(select(charges).where(charges.c.account_id.in_(mine)))
            ).all()
        balances = {int(r[0]): (int(r[1]), int(r[2])) for r in acct_rows}
        sums = {int(r[0]): (int(r[1]), int(r[2])) for r in entry_rows}
        open_holds = {a: 0 for a in mine}
        for row in charge_rows:
            if row.status == "held":
                open_holds[row.account_id] += int(row.held_amount)
        for account in mine:
            balance, held = balances[account]
            assert balance >= held >= 0, (account, balance, held)
            assert sums.get(account, (0, 0)) == (balance, held), "balance/held != entries"
            assert held == open_holds[account], "held != the open holds' held_amount"
            assert (balance, held) == (self.balance[account], self.held(account)), "model"

        kinds: dict[str, set[str]] = {}
        amounts: dict[str, int] = {}
        helds: dict[str, int] = {}
        for charge_id, kind, count, amount, held in per_charge:
            assert count == 1, f"charge {charge_id} has {count} {kind} entries"
            kinds.setdefault(charge_id, set()).add(kind)
            amounts[charge_id] = amounts.get(charge_id, 0) + int(amount)
            helds[charge_id] = helds.get(charge_id, 0) + int(held)

        assert {r.id for r in charge_rows} == set(self.charges)
        for row in charge_rows:
            c = self.charges[row.id]
            got = (
                row.status,
                int(row.held_amount),
                None if row.cost is None else int(row.cost),
                row.result,
                row.idempotency_key,
                row.request_hash,
            )
            want = (c.status, c.amount, c.cost, c.result, c.idempotency_key, c.request_hash)
            assert got == want, f"charge {row.id}: database {got} != model {want}"
            if c.status == "held":
                assert as_utc(row.expires_at) == c.expires_at, f"deadline of {row.id}"
            if row.status in ("settled", "refunded"):
                assert 0 <= int(row.cost) <= int(row.held_amount)
            assert kinds[row.id] == c.entries, f"entries of {row.id}"
            assert helds[row.id] == (c.amount if c.status == "held" else 0)
            assert -amounts[row.id] == c.net_charged


def test_ledger_state_machine(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(_next_start)
    monkeypatch.setattr(service, "utcnow", clock.now)
    machine = type("LedgerMachine", (LedgerMachine,), {"url": db.url, "clock": clock})
    run_state_machine_as_test(machine, settings=SETTINGS)


# -- the defects the machine found, each as its shortest sequence ------------------------------


async def _ledger_on(db: Database, credit: int = 10_000) -> tuple[Ledger, Outage, int]:
    outage = Outage()
    ledger = Ledger(db)
    ledger.store = FlakyStore(ledger.store, outage)
    account, _ = await AccountService(db, ledger).create(unique("sm"), credit)
    return ledger, outage, account.id


async def test_a_late_settle_keeps_the_answer_for_a_retry(db: Database) -> None:
    """hold (key K) -> the sweeper expires it -> settle with a result -> retry with K."""
    ledger, _, acct = await _ledger_on(db)
    key = IdempotencyKey.for_body(SCOPES[0], unique("key"), BODIES[0])
    try:
        first = await ledger.hold(
            acct, 100, kind="chat", model="m", idempotency=key, ttl=timedelta(seconds=-1)
        )
        await ledger.sweep_expired()
        done = await ledger.settle(first.charge_id, 40, UsageRecord(result={"answer": 42}))
        assert done == Settlement(first.charge_id, 40, True)
        retry = await ledger.hold(acct, 100, kind="chat", model="m", idempotency=key)
        assert retry.is_replay and retry.replayed_status == "settled"
        assert retry.stored_answer() == {"answer": 42}  # not a 409 "did not finish"
    finally:
        await ledger.close()


async def test_a_late_settle_is_kept_when_the_database_goes_away_midway(db: Database) -> None:
    """hold -> expired by the sweeper -> settle: its first statement finds the charge
    expired, then the database is gone -> the settlement must be deferred, not raised and
    lost; ``maintain`` charges it once the database is back."""
    ledger, outage, acct = await _ledger_on(db)
    try:
        hold = await ledger.hold(acct, 100, kind="chat", model="m", ttl=timedelta(seconds=-1))
        await ledger.sweep_expired()
        outage.after_next_finish = True
        try:
            done = await ledger.settle(hold.charge_id, 40)
        finally:
            outage.end()
        assert done == Settlement(hold.charge_id, 0, False, deferred=True)
        await ledger.maintain()
        assert await ledger.balances(acct) == (10_000 - 40, 0)
    finally:
        await ledger.close()


async def test_maintain_keeps_a_late_settle_it_could_not_finish(db: Database) -> None:
    """hold -> settle while the database is down (deferred) -> the sweeper expires the hold
    -> ``maintain``: the retry's first statement finds it expired, then the database is gone
    -> the settlement must stay deferred; the next ``maintain`` charges it."""
    ledger, outage, acct = await _ledger_on(db)
    try:
        hold = await ledger.hold(acct, 100, kind="chat", model="m", ttl=timedelta(seconds=-1))
        outage.down = True
        try:
            assert (await ledger.settle(hold.charge_id, 40)).deferred
        finally:
            outage.end()
        await ledger.sweep_expired()
        outage.after_next_finish = True
        try:
            await ledger.maintain()
        except DatabaseDown:
            pass
        finally:
            outage.end()
        await ledger.maintain()
        assert await ledger.balances(acct) == (10_000 - 40, 0)
    finally:
        await ledger.close()
