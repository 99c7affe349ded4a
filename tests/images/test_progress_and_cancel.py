"""Progress while a job is queued and running, and cancel (refunded), on a slow engine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.images.test_job_api import poll, wait_done
from tests.support.gateway import Gateway, running_gateway


@pytest.fixture
def slow_gateway(tmp_path: Path) -> Iterator[Gateway]:
    with running_gateway(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        {},
        [],
        image_workers=1,
        test_pattern_step_s=0.3,
    ) as gw:
        yield gw


def submit(gw: Gateway) -> dict[str, Any]:
    body = {"model": "realvision", "prompt": "slow", "width": 256, "height": 256, "steps": 8}
    data: dict[str, Any] = requests.post(
        gw.url + "/api/texttoimage/", headers=gw.headers(), json=body, timeout=10
    ).json()
    return data


def test_queue_position_progress_and_cancel(slow_gateway: Gateway) -> None:
    gw = slow_gateway
    before = gw.balance_nano()
    first, second, third = submit(gw), submit(gw), submit(gw)
    deadline = time.monotonic() + 10
    while (state := poll(gw, first["jobid"], first["signature"]).json())["status"] == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    waiting = poll(gw, third["jobid"], third["signature"]).json()
    assert waiting == {
        "status": "pending",
        "image_url": None,
        "message": "queued",
        "queue_position": 1,
    }
    seen = []
    while state["status"] == "processing":
        assert set(state) == {"status", "image_url", "message", "progress"}
        seen.append(state["progress"])
        time.sleep(0.2)
        state = poll(gw, first["jobid"], first["signature"]).json()
    assert state["status"] == "success"
    assert seen == sorted(seen) and 0 < max(seen) < 1  # progress moved forward while it ran

    # cancel the running second job and the queued third: both refunded, the first charged
    while poll(gw, second["jobid"], second["signature"]).json()["status"] != "processing":
        time.sleep(0.05)
    for job in (second, third):
        cancelled = poll(gw, job["jobid"], job["signature"], "/api/texttoimage/jobs/cancel/")
        assert cancelled.json()["status"] == "cancelled"
    assert poll(gw, second["jobid"], second["signature"]).json()["status"] == "cancelled"
    again = poll(gw, third["jobid"], third["signature"], "/api/texttoimage/jobs/cancel/")
    assert again.status_code == 409
    time.sleep(1.0)  # the worker notices at its next heartbeat and stops
    assert before - gw.balance_nano() == 1_500_000 and gw.idle_held_nano() == 0
    fourth = submit(gw)  # the worker is free again
    assert wait_done(gw, fourth["jobid"], fourth["signature"])["status"] == "success"
