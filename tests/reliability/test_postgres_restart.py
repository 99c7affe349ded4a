"""Restart or crash PostgreSQL under load: clean errors while it is down, service again after,
exact money: a request answered before a crash is charged after it.

The cluster is the test's own (``private_postgres``), so restarting it disturbs nobody.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

from tests.reliability.chat_client import Call, Limits, charges_by_call, chat, write_config
from tests.support.fake_upstream import FakeUpstream
from tests.support.ledger_audit import FINAL, audit
from tests.support.pg_cluster import PrivatePostgres
from tests.support.processes import Server, minitoolai_env
from tests.support.servers import serve_in_thread

HOLD_TIMEOUT_S = 10
SWEEP_S = 1.0
RESTART_AT_S = 3.0  # into the load
AFTER_S = 7.0  # the load goes on this long after the database is back
WORKERS = 4  # client threads: half stream, half want whole answers
REQUEST_BOUND_S = 10.0  # no request may take longer, outage or not
RECOVERY_S = 5.0  # after the restart returns, every request must succeed again
ACCOUNT = "pg-restart"
#: what a client may see: an answer, a clean 5xx in OpenAI's shape, or a dropped connection
OK_OUTCOMES = ("ok", "clean 5xx", "connection error", "stream cut")


def _classify(call: Call) -> str:
    if call.complete:
        return "ok"
    if call.exception is not None:
        return "timeout" if "Timeout" in call.exception else "connection error"
    if call.status in (500, 502, 503) and call.openai_error():
        return "clean 5xx"
    if call.status == 200 and call.stream:
        return "stream cut"  # the answer started, then the database went: the stream breaks
    return f"unexpected {call.status}"


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["restart", "down 3s", "crash"])
def test_postgres_restart_under_load(
    tmp_path: Path, private_postgres: PrivatePostgres, outage: str
) -> None:
    """``pg_ctl restart -m fast`` (a blip), stopped for 3 s then started, or crashed
    (``-m immediate``) and started, under load."""
    upstream = FakeUpstream(chunks=5, delay_s=0.01)
    limits = Limits()
    calls: list[Call] = []
    with serve_in_thread(upstream.app()) as upstream_url:
        config = tmp_path / "config.toml"
        write_config(config, {"up": upstream_url}, {"gpt-4o-mini": "up"})
        env = minitoolai_env(
            tmp_path / "data",
            private_postgres.url,
            config=config,
            hold_timeout_s=HOLD_TIMEOUT_S,
            sweep_interval_s=SWEEP_S,
        )
        server = Server(env, tmp_path / "serve.log")
        server.start()
        try:
            api_key = server.create_account(ACCOUNT, "1000")
            stop = threading.Event()

            def client(stream: bool) -> None:
                while not stop.is_set():
                    call = chat(
                        server.url,
                        api_key,
                        "gpt-4o-mini",
                        limits(),
                        stream=stream,
                        timeout=(3, REQUEST_BOUND_S + 5),
                    )
                    calls.append(call)
                    if not call.complete:
                        time.sleep(0.05)  # no busy loop while the database is away

            threads = [
                threading.Thread(target=client, args=(i % 2 == 0,), daemon=True)
                for i in range(WORKERS)
            ]
            for t in threads:
                t.start()
            time.sleep(RESTART_AT_S)
            restart_began = time.monotonic()
            if outage == "restart":
                private_postgres.restart("fast")
            elif outage == "crash":  # what the lane committed asynchronously and no flush
                private_postgres.crash()  # wrote is lost: what a client got must not be
            else:
                private_postgres.outage(3.0, "fast")
            restarted = time.monotonic()
            time.sleep(AFTER_S)
            stop.set()
            for t in threads:
                t.join(REQUEST_BOUND_S + 10)
                assert not t.is_alive(), "a client hung"

            health = requests.get(server.url + "/healthz", timeout=5)
            assert health.status_code == 200, health.text
            assert health.json() == {"status": "ok", "database": "postgresql"}
            # holds stranded by the outage come back once their deadline passes
            deadline = restarted + HOLD_TIMEOUT_S + SWEEP_S + 3
            while server.balances(ACCOUNT)[1] != 0:
                assert time.monotonic() < deadline, (server.balances(ACCOUNT), server.log_tail())
                time.sleep(0.2)
        finally:
            server.stop()
        log = server.log_tail(10_000_000)
        print(f"deferred settlements applied: {log.count('deferred settlement of')}")
        print(f"holds the crash lost, re-created: {log.count('its hold was lost by the database')}")

    outcomes = {id(c): _classify(c) for c in calls}
    summary: dict[str, int] = {}
    for outcome in outcomes.values():
        summary[outcome] = summary.get(outcome, 0) + 1
    print(f"\n{outage}: database away {restarted - restart_began:.2f}s; outcomes {summary}")
    failed = [c for c in calls if not c.complete]
    if failed:
        print(
            f"failures started {min(c.started for c in failed) - restart_began:+.2f}s to "
            f"{max(c.started for c in failed) - restart_began:+.2f}s from the restart"
        )
    bad = [(outcomes[id(c)], c) for c in calls if outcomes[id(c)] not in OK_OUTCOMES]
    assert bad == [], bad
    assert max(c.elapsed for c in calls) < REQUEST_BOUND_S
    before = [c for c in calls if c.ended < restart_began]
    after = [c for c in calls if c.started > restarted + RECOVERY_S]
    assert before and all(c.complete for c in before)
    assert len(after) >= 10 and all(c.complete for c in after), [
        (c.started - restarted, outcomes[id(c)], c) for c in after if not c.complete
    ]

    ledger = audit(private_postgres.url, ACCOUNT)
    charges = charges_by_call(ledger.charges)
    charged_failures = [
        (outcomes[id(c)], charges[(c.model, c.limit)][0].status)
        for c in failed
        if (c.model, c.limit) in charges
    ]
    print(f"charges {dict(ledger.by_status())}; failed calls with a charge {charged_failures}")
    assert ledger.problems() == []
    assert ledger.held == 0 and all(c.status in FINAL for c in ledger.charges)
    assert all(len(found) == 1 for found in charges.values())  # one charge per call at most
    assert {key for key in charges} <= {(c.model, c.limit) for c in calls}
    for call in calls:
        if call.complete:  # each answered request: charged exactly once, for its usage
            (charge,) = charges[(call.model, call.limit)]
            assert charge.status == "settled" and charge.cost == call.cost(), (call, charge)
    assert ledger.balance == ledger.topups - sum(
        c.cost or 0 for c in ledger.charges if c.status == "settled"
    )
