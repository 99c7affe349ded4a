"""Redis stopped mid-load (a Redis this test starts on a port of its own, never the shared
one): ``closed`` answers 503 and charges nothing twice; ``local`` carries on with each
process's own counters, a warning in the log and ``minitoolai_rate_limit_fallback_total``."""

from __future__ import annotations

import concurrent.futures
import logging
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway
from tests.support.ledger_audit import audit
from tests.support.servers import free_port

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            import redis

            redis.Redis.from_url(url).ping()
            break
        except Exception:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _hammer(gw: Gateway, redis_proc: subprocess.Popen[bytes], total: int = 120) -> Counter[int]:
    """``total`` requests from 8 clients; Redis is killed after a third of them."""
    statuses: Counter[int] = Counter()
    done = 0

    def one(_: int) -> int:
        answer = requests.post(
            gw.url + "/v1/chat/completions", json=CHAT, headers=gw.headers(), timeout=30
        )
        assert answer.status_code in (200, 503), answer.text
        return answer.status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for status in pool.map(one, range(total)):
            statuses[status] += 1
            done += 1
            if done == total // 3:
                redis_proc.kill()
                redis_proc.wait(10)
    return statuses


def _limited_gateway(tmp_path: Path, redis_url: str, mode: str) -> Iterator[tuple[Gateway, str]]:
    database = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    extra = "\n[limits.key]\nrpm = 100000\n"
    with running_gateway(
        tmp_path,
        database,
        {"up": FakeUpstream()},
        [{"model": "gpt-4o-mini", "provider": "up"}],
        extra_toml=extra,
        redis_url=redis_url,
        limits_on_redis_error=mode,
        limits_redis_prefix="mtai-test-down:",
    ) as gw:
        yield gw, database


def test_closed_refuses_with_503_and_charges_nothing_twice(
    tmp_path: Path, private_redis: tuple[str, subprocess.Popen[bytes]]
) -> None:
    url, proc = private_redis
    for gw, database in _limited_gateway(tmp_path, url, "closed"):
        statuses = _hammer(gw, proc)
        assert statuses[200] >= 40 and statuses[503] >= 1, statuses
        late = requests.post(
            gw.url + "/v1/chat/completions", json=CHAT, headers=gw.headers(), timeout=30
        )
        assert late.status_code == 503
        assert late.json()["error"]["code"] == "rate_limiter_unavailable"
        books = audit(database, gw.account)
        assert books.problems() == []
        assert books.by_status()["settled"] == statuses[200]  # each answer charged once
        assert books.by_status()["held"] == 0  # and no refusal left a hold behind
        assert gw.idle_held_nano() == 0


def test_local_carries_on_with_a_warning_and_a_metric(
    tmp_path: Path,
    private_redis: tuple[str, subprocess.Popen[bytes]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, proc = private_redis
    caplog.set_level(logging.WARNING, logger="minitoolai.limits")
    for gw, database in _limited_gateway(tmp_path, url, "local"):
        statuses = _hammer(gw, proc)
        assert statuses == Counter({200: 120})
        warnings = [r for r in caplog.records if "PER PROCESS" in r.getMessage()]
        assert len(warnings) == 1  # loud, but once a minute, not once a request
        metrics = requests.get(
            gw.url + "/metrics", headers={"Authorization": "Bearer mtai-admin-test-key"}, timeout=10
        ).text
        fallback = [
            line
            for line in metrics.splitlines()
            if line.startswith("minitoolai_rate_limit_fallback_total")
        ]
        assert fallback and float(fallback[0].split()[-1]) >= 1
        answer = requests.post(
            gw.url + "/v1/chat/completions", json=CHAT, headers=gw.headers(), timeout=30
        )
        assert answer.status_code == 200
        assert answer.headers["x-ratelimit-limit-requests"] == "100000"  # counted locally
        books = audit(database, gw.account)
        assert books.problems() == []
        assert books.by_status()["settled"] == 121
