"""``/metrics``: protected (the admin key, or the metrics token), summed across ``--workers``,
and the new series (holds open, image queue depth, upstream latency per deployment)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import ADMIN_KEY, Gateway, running_gateway
from tests.support.processes import ADMIN_KEY as PROCESS_ADMIN_KEY
from tests.support.processes import Server, minitoolai_env

TOKEN = "metrics-scraper-token-1234"


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    deployments: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
        {"up": FakeUpstream()},
        deployments,
        metrics_token=TOKEN,
    ) as gateway:
        yield gateway


def _get(url: str, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(url + "/metrics", headers=headers, timeout=10)


def sample(text: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert found, f"{name}{labels} not in the exposition"
    return float(found.group(1))


def test_metrics_want_the_admin_key_or_the_token(gw: Gateway) -> None:
    for wrong in (None, "", "nope", gw.api_key, TOKEN + "x"):
        refused = _get(gw.url, wrong)
        assert refused.status_code == 401, (wrong, refused.text)
        assert "minitoolai_" not in refused.text
    for right in (ADMIN_KEY, TOKEN):
        assert _get(gw.url, right).status_code == 200


def _first_item_count(text: str) -> tuple[str, float] | None:
    found = re.search(
        r'^minitoolai_upstream_first_item_seconds_count\{deployment="([^"]+)"\} (\S+)$', text, re.M
    )
    return (found[1], float(found[2])) if found else None


def test_the_new_series(gw: Gateway) -> None:
    """The registry is the process's own, shared with earlier tests: counts are compared."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    before = _first_item_count(_get(gw.url, TOKEN).text)
    for _ in range(3):
        ok = requests.post(
            gw.url + "/v1/chat/completions", headers=gw.headers(), json=body, timeout=10
        )
        assert ok.status_code == 200
    text = _get(gw.url, TOKEN).text
    assert sample(text, "minitoolai_holds_open") == 0
    assert sample(text, "minitoolai_image_queue_depth") == 0
    after = _first_item_count(text)
    assert after is not None, text
    assert before is None or before[0] == after[0]
    assert after[1] - (before[1] if before else 0) == 3


def test_metrics_are_open_when_configured(tmp_path: Path) -> None:
    with running_gateway(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'o.db'}", {}, [], metrics_open=True
    ) as gw:
        assert _get(gw.url, None).status_code == 200


def test_two_workers_sum_their_counters(tmp_path: Path) -> None:
    """Requests spread over both worker processes; every scrape (whichever worker answers it)
    shows the total, and both processes wrote their share."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = minitoolai_env(tmp_path / "data", f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    server = Server(env, tmp_path / "serve.log")
    server.workers = 2
    server.start()
    try:
        per_thread, threads = 25, 8

        def hammer() -> None:
            for _ in range(per_thread):  # a new connection each: spread by the kernel
                assert requests.get(server.url + "/api/balance/", timeout=10).status_code == 401

        pool = [threading.Thread(target=hammer) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(60)
        label = '{route="/api/balance/",status="401"}'
        seen = [
            sample(
                _get(server.url, PROCESS_ADMIN_KEY).text, "minitoolai_http_requests_total", label
            )
            for _ in range(6)
        ]
        assert seen == [per_thread * threads] * 6, seen
        writers = {p.name.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(writers) == 2, writers  # both workers counted (each its own file)
        # the workers log at the configured level, and one of the two runs the singletons
        assert server.log_tail(100_000).count("runs the singletons") == 1, server.log_tail()
    finally:
        server.stop()
