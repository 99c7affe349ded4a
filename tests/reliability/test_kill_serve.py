"""`kill -9` the API server while it streams, again and again: the ledger stays exact.

What a killed process's partial stream costs: **nothing**. The process dies before it can
settle, so the charge keeps its hold; the hold sweeper of any running replica (here: the
restarted server) releases it once its deadline (``MINITOOLAI_HOLD_TIMEOUT_S`` after the hold
was taken) has passed, at the next sweep (every ``MINITOOLAI_SWEEP_INTERVAL_S``). The client
already received part of the answer for free; the money held for it comes back in full. A
client that *disconnects* from a live server, by contrast, pays for what was generated
(docs/billing.md): only a crash of the gateway itself makes a partial answer free.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.reliability.chat_client import Call, Limits, charges_by_call, chat, write_config
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger_audit import audit
from tests.support.processes import Server, minitoolai_env
from tests.support.servers import serve_in_thread

HOLD_TIMEOUT_S = 10  # the smallest the settings allow
SWEEP_S = 1.0
ROUNDS = 5
STREAMS = 4  # open when the server is killed
ACCOUNT = "crash-victim"


def _streams_then_kill(server: Server, api_key: str, limits: Limits) -> list[Call]:
    """Open STREAMS slow streams, kill -9 the server once each has content, collect them."""
    got_content = [threading.Event() for _ in range(STREAMS)]
    calls: list[Call | None] = [None] * STREAMS

    def run(i: int, limit: int) -> None:
        def on_chunk(n: int) -> None:
            if n >= 3:
                got_content[i].set()

        calls[i] = chat(server.url, api_key, "gpt-4o-mini", limit, stream=True, on_chunk=on_chunk)
        got_content[i].set()  # also when it failed, so the wait below never hangs

    threads = [
        threading.Thread(target=run, args=(i, limits()), daemon=True) for i in range(STREAMS)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    for event in got_content:
        assert event.wait(max(0.0, deadline - time.monotonic())), "streams did not start"
    assert all(c is None for c in calls), f"a stream ended before the crash: {calls}"
    _, held = server.balances(ACCOUNT)
    assert held > 0  # the live streams' holds
    server.kill9()
    for t in threads:
        t.join(10)
        assert not t.is_alive(), "a client hung after the server died"
    done = [c for c in calls if c is not None]
    assert len(done) == STREAMS
    for c in done:  # cut short: content came, the end never did
        assert c.chunks >= 3 and not c.complete and c.usage is None, c
    return done


@pytest.mark.slow
def test_kill_9_mid_stream_repeatedly(tmp_path: Path, database_url: str) -> None:
    """5 crashes with 4 live streams each; between them, calls that complete.

    After the last restart, within the hold timeout plus one sweep: no hold open, the balance
    is the sum of the entries, every charge has exactly one settle or release entry, each
    completed call was charged exactly once for its usage, and each cut-short stream (see the
    module docstring) was released: free.
    """
    slow = FakeUpstream(chunks=400, delay_s=0.025)  # a 10 s answer, killed in its first second
    fast = FakeUpstream(chunks=5)
    limits = Limits()
    completed: list[Call] = []
    killed: list[Call] = []
    with serve_in_thread(slow.app()) as slow_url, serve_in_thread(fast.app()) as fast_url:
        config = tmp_path / "config.toml"
        write_config(
            config, {"slow": slow_url, "fast": fast_url}, {"gpt-4o-mini": "slow", "gpt-4o": "fast"}
        )
        env = minitoolai_env(
            tmp_path / "data",
            database_url,
            config=config,
            hold_timeout_s=HOLD_TIMEOUT_S,
            sweep_interval_s=SWEEP_S,
        )
        server = Server(env, tmp_path / "serve.log")
        try:
            api_key = ""
            for round_ in range(ROUNDS):
                server.start()
                if round_ == 0:
                    api_key = server.create_account(ACCOUNT, "100")
                for stream in (False, True):  # these finish before the crash
                    call = chat(server.url, api_key, "gpt-4o", limits(), stream=stream)
                    assert call.complete, (call, server.log_tail())
                    completed.append(call)
                killed += _streams_then_kill(server, api_key, limits)
            server.start()  # the last restart
            ready = time.monotonic()
            deadline = ready + HOLD_TIMEOUT_S + SWEEP_S + 2
            while server.balances(ACCOUNT)[1] != 0:
                assert time.monotonic() < deadline, (server.balances(ACCOUNT), server.log_tail())
                time.sleep(0.2)
            # the upstream saw every killed stream's connection go
            deadline = time.monotonic() + 10
            while slow.cancelled < len(killed):
                assert time.monotonic() < deadline, (slow.cancelled, len(killed))
                time.sleep(0.1)
        finally:
            server.stop()
        assert "Traceback" not in server.log_tail(200_000), server.log_tail()

    ledger = audit(database_url, ACCOUNT)
    assert ledger.problems() == []
    assert ledger.held == 0
    statuses = ledger.by_status()
    assert statuses["settled"] == len(completed)
    charges = charges_by_call(ledger.charges)
    for call in completed:  # exactly once, for the usage the client was shown
        (charge,) = charges[(call.model, call.limit)]
        assert charge.status == "settled" and charge.cost == call.cost(), (call, charge)
        assert charge.entries == Counter(hold=1, settle=1), charge
    if ledger.leases:  # PostgreSQL: a killed stream was held on its process's lease, in no row
        assert statuses["released"] + statuses["expired"] == 0, statuses
        assert len(charges) == len(ledger.charges) == len(completed)
        assert {x.status for x in ledger.leases} <= {"released", "expired"}, ledger.leases
        assert sum(x.status == "expired" for x in ledger.leases) == ROUNDS  # one per crash
    else:
        assert statuses["released"] + statuses["expired"] == len(killed), statuses
        assert len(charges) == len(ledger.charges) == len(completed) + len(killed)
        for call in killed:  # the crash made the partial answer free
            (charge,) = charges[(call.model, call.limit)]
            assert charge.status in ("released", "expired") and charge.cost == 0, (call, charge)
    for call in killed:  # the crash made the partial answer free
        assert all(c.cost == 0 for c in charges.get((call.model, call.limit), [])), call
    assert ledger.balance == ledger.topups - sum(c.cost() for c in completed)
