"""`kill -9` the API server on PostgreSQL after the upstream answered, before the settles commit:
the next server charges each of them exactly once, from the journal.

Two ways to catch the settles uncommitted: the accounts' rows locked by this test (the settle
statement is sent and waits on the lock: the only way on a server without a gather window, so
this one also fails on a gateway without a journal, whose hold is then swept to zero), and a long
gather window (the settles sit in the writer's queue). With ``settle_wait = "commit"`` the
clients are still waiting for their answers when the server dies; with ``"journal"`` they got
them first. Either way, after the restart and past the hold timeout (when the sweeper would have
released the holds): each answered request charged its cost once, nothing held, every balance
the sum of its entries, and money neither lost nor made across the accounts.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
import openai
import pytest

from minitoolai.infra.db import asyncpg_dsn
from tests.reliability.chat_client import PRICES, Limits, charges_by_call, write_config
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger_audit import audit
from tests.support.processes import Server, minitoolai_env
from tests.support.servers import serve_in_thread

HOLD_TIMEOUT_S = 10  # the smallest the settings allow
SWEEP_S = 1.0
CALLS = 12
ACCOUNTS = ("settle-victim-a", "settle-victim-b")
MODEL = "gpt-4o-mini"


class RowLocks:
    """The accounts' rows locked (``FOR UPDATE``) in a transaction of this test's own, on a
    thread of its own, until ``release``."""

    def __init__(self, database_url: str, names: tuple[str, ...]) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.names = names
        self.locked = threading.Event()
        self._go = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._hold()), daemon=True)
        self._thread.start()
        assert self.locked.wait(10), "could not lock the accounts"

    async def _hold(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT id FROM accounts WHERE name = ANY($1::text[]) FOR UPDATE",
                    list(self.names),
                )
                self.locked.set()
                while not self._go.is_set():
                    await asyncio.sleep(0.02)
                raise _Rollback
        except _Rollback:
            pass
        finally:
            await conn.close()

    def release(self) -> None:
        self._go.set()
        self._thread.join(10)


class _Rollback(Exception):
    pass


def _value(database_url: str, sql: str) -> int:
    """One number read straight from the database (the server's own pool may be busy)."""

    async def read() -> int:
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    return asyncio.run(read())


def _lock_waiters(database_url: str) -> int:
    return _value(
        database_url,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )


def _ask(url: str, key: str, limit: int, out: dict[int, Any]) -> None:
    """One streamed call with the real client; ``out[limit]``: its usage, or what broke it."""
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)
    try:
        stream = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Count for me, please."}],
            max_completion_tokens=limit,
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = None
        for chunk in stream:
            usage = chunk.usage or usage
        out[limit] = usage if usage is not None else RuntimeError("no usage")
    except Exception as exc:  # the server died under it
        out[limit] = exc


def _cost(usage: Any) -> int:
    price_in, price_out = PRICES[MODEL]
    return int(usage.prompt_tokens * price_in + usage.completion_tokens * price_out)


def _wait(what: str, check: Any, server: Server, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}:\n{server.log_tail()}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("settle_wait", "caught_by"),
    [("commit", "row-lock"), ("journal", "row-lock"), ("commit", "gather"), ("journal", "gather")],
)
def test_kill_9_before_the_settles_commit(
    tmp_path: Path, fresh_postgres: str, settle_wait: str, caught_by: str
) -> None:
    database_url = fresh_postgres
    upstream = FakeUpstream(chunks=5, delay_s=0.1)  # half a second per answer
    limits = Limits()
    with serve_in_thread(upstream.app()) as upstream_url:
        config = tmp_path / "config.toml"
        write_config(config, {"up": upstream_url}, {MODEL: "up"})
        env = minitoolai_env(
            tmp_path / "data",
            database_url,
            config=config,
            hold_timeout_s=HOLD_TIMEOUT_S,
            sweep_interval_s=SWEEP_S,
            settle_wait=settle_wait,
            settle_gather_ms=8000 if caught_by == "gather" else 0,
        )
        server = Server(env, tmp_path / "serve.log")
        try:
            server.start()
            keys = [server.create_account(name, "10") for name in ACCOUNTS]
            locks: RowLocks | None = None
            answers: dict[int, Any] = {}
            if caught_by == "row-lock":  # a call that ends before the crash (with a gather
                # window it would wait for it): what every call of the same question costs
                _ask(server.url, keys[0], limits(), answers)
                (usage,) = answers.values()
                assert not isinstance(usage, Exception), (usage, server.log_tail())
                upstream.calls = upstream.completed = 0
            threads = []
            for i in range(CALLS):
                args = (server.url, keys[i % 2], limits(), answers)
                threads.append(threading.Thread(target=_ask, args=args, daemon=True))
            for t in threads:
                t.start()
            _wait("the calls reached the upstream", lambda: upstream.calls == CALLS, server)
            if caught_by == "row-lock":  # every hold is taken: lock what the settles need
                locks = RowLocks(database_url, ACCOUNTS)
            _wait("the upstream answered", lambda: upstream.completed == CALLS, server)
            if caught_by == "row-lock":
                _wait("a settle waits on the lock", lambda: _lock_waiters(database_url), server)
            if settle_wait == "journal":  # the clients were answered before the commit
                for t in threads:
                    t.join(20)
                assert len(answers) == len(upstream.requests)  # with the first call's
                assert all(not isinstance(a, Exception) for a in answers.values()), answers
            else:
                time.sleep(0.3)
                assert len(answers) <= 1  # they wait for the commit
            held = _value(database_url, "SELECT sum(held) FROM accounts")
            assert held > 0, "the settles committed before the kill"
            server.kill9()
            if locks is not None:
                locks.release()
            for t in threads:
                t.join(20)
            server.start()  # replays the journal before it serves
            # past the hold timeout and a sweep: a hold left alone would be released by now
            time.sleep(HOLD_TIMEOUT_S + 2 * SWEEP_S)
        finally:
            server.stop()
        assert "Traceback" not in server.log_tail(200_000), server.log_tail()
        assert list((tmp_path / "data" / "journal").glob("*.jsonl")) == []

    audits = [audit(database_url, name) for name in ACCOUNTS]
    if settle_wait == "journal":
        expected = {limit: _cost(usage) for limit, usage in answers.items()}
    else:  # every call asked the same question and the upstream gave the same answer
        one = _cost(_Usage(*_usage_of(upstream)))
        expected = {100 * (i + 1): one for i in range(len(upstream.requests))}
    charged: dict[int, list[Any]] = {}
    for ledger in audits:
        assert ledger.problems() == []
        assert ledger.held == 0
        for (_, limit), charges in charges_by_call(ledger.charges).items():
            charged.setdefault(limit, []).extend(charges)
    assert sorted(charged) == sorted(expected)
    for limit, charges in charged.items():
        (charge,) = charges  # one charge per call, settled once at its cost
        assert charge.status == "settled", charge
        assert charge.cost == expected[limit], (limit, charge)
    # money neither lost nor made: what came in is what is left plus what was charged
    assert sum(a.balance for a in audits) + sum(
        c.cost or 0 for a in audits for c in a.charges
    ) == sum(a.topups for a in audits)


class _Usage:
    def __init__(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens


def _usage_of(upstream: FakeUpstream) -> tuple[int, int]:
    """The usage the upstream reported for the question every call asked."""
    from tests.support.fake_upstream import count_messages

    body = upstream.requests[0]
    return count_messages(body["messages"], body["model"]), upstream.chunks
