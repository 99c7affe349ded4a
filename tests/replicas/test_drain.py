"""SIGTERM drains: the listening socket closes, a running stream finishes and is billed, the
process exits 0."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import requests

from tests.reliability.chat_client import Call, chat, write_config
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import CLI, Server, minitoolai_env
from tests.support.servers import serve_in_thread


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'drain.db'}"
    url: str = request.getfixturevalue("fresh_postgres")
    return url


def test_sigterm_lets_a_running_stream_finish_and_bill(tmp_path: Path, database_url: str) -> None:
    slow = FakeUpstream(chunks=80, delay_s=0.05)  # a 4 s answer
    with serve_in_thread(slow.app()) as upstream:
        config = tmp_path / "config.toml"
        write_config(config, {"slow": upstream}, {"gpt-4o-mini": "slow"})
        env = minitoolai_env(tmp_path / "data", database_url, config=config, drain_grace_s=20)
        server = Server(env, tmp_path / "serve.log")
        server.start()
        key = server.create_account("draining", "1")
        started = threading.Event()
        result: list[Call] = []

        def run() -> None:
            def on_chunk(n: int) -> None:
                if n >= 3:
                    started.set()

            result.append(chat(server.url, key, "gpt-4o-mini", 100, stream=True, on_chunk=on_chunk))
            started.set()

        client = threading.Thread(target=run, daemon=True)
        client.start()
        assert started.wait(20)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        while True:  # soon no new connection is accepted, while the stream still runs
            try:
                requests.get(server.url + "/healthz", timeout=1)
            except requests.ConnectionError:
                break
            assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.1)
        assert client.is_alive() and not result, "the stream ended before the check"
        client.join(30)
        assert server.proc.wait(30) == 0, server.log_tail()
        call = result[0]
        assert call.complete and call.usage is not None, (call, server.log_tail())
        assert call.chunks == 80
        shown = subprocess.run(
            [*CLI, "accounts", "show", "draining", "--json"], env=env, capture_output=True
        )
        assert shown.returncode == 0, shown.stderr
        account = orjson.loads(shown.stdout)
        nano = int((Decimal("1") - Decimal(account["balance"])) * 1_000_000_000)
        assert nano == call.cost()  # billed exactly what the client was shown
        assert Decimal(account["held"]) == 0
