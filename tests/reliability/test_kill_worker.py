"""`kill -9` image workers mid-job, again and again, on PostgreSQL.

tests/images/test_workers.py covers one kill (the job completes on another worker, charged
once). Here the same jobs are killed repeatedly, so both ends of the retry rule are reached: a
job interrupted ``job_max_attempts`` times is failed by the reaper and costs nothing; a job
interrupted fewer times completes on a later worker and is charged once. Whatever the timing,
each job ends in exactly one final state with exactly one money outcome.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.images.test_job_api import poll
from tests.support.gateway import running_gateway
from tests.support.ledger_audit import audit, rows
from tests.support.processes import Process, minitoolai_env

PRICE = 1_500_000  # realvision: US$0.0015
JOBS = 6
KILLS = 4
MAX_ATTEMPTS = 3
LEASE_S = 1.5


def _jobs(url: str) -> list[dict[str, object]]:
    return rows(
        url,
        "SELECT j.id, j.status, j.attempts, j.worker_id, j.progress, j.message, j.result_key,"
        " c.id AS charge_id, c.status AS charge_status, c.cost"
        " FROM image_jobs j JOIN charges c ON c.id = j.charge_id ORDER BY j.created_at",
    )


def _worker(tmp_path: Path, url: str, data_dir: Path, step_s: float) -> Process:
    env = minitoolai_env(
        data_dir,
        url,
        test_pattern_step_s=step_s,
        job_lease_s=LEASE_S,
        job_max_attempts=MAX_ATTEMPTS,
    )
    return Process(["worker", "--concurrency", "2"], env, tmp_path / "worker.log")


@pytest.mark.slow
def test_workers_killed_repeatedly_each_job_ends_once(tmp_path: Path, fresh_postgres: str) -> None:
    url, data_dir = fresh_postgres, tmp_path / "data"
    with running_gateway(tmp_path, url, {}, [], data_dir=data_dir) as gw:
        body = {"model": "realvision", "prompt": "p", "width": 256, "height": 256, "steps": 6}
        submitted = []
        for _ in range(JOBS):
            created = requests.post(
                gw.url + "/api/texttoimage/", headers=gw.headers(), json=body, timeout=10
            )
            assert created.json()["status"] == "success", created.text
            submitted.append(created.json())
        killed_jobs: list[int] = []
        for _ in range(KILLS):
            worker = _worker(tmp_path, url, data_dir, step_s=0.3)
            worker.start()
            try:
                deadline = time.monotonic() + 30
                while True:
                    mine = [
                        j
                        for j in _jobs(url)
                        if j["status"] == "running" and f":{worker.pid}:" in str(j["worker_id"])
                    ]
                    # both of its loops mid-job (so which jobs die is the same every run)
                    if len(mine) == 2 and all(float(j["progress"]) > 0 for j in mine):  # type: ignore[arg-type]
                        break
                    assert worker.alive(), worker.log_tail()
                    assert time.monotonic() < deadline, (_jobs(url), worker.log_tail())
                    time.sleep(0.05)
                worker.kill9()  # mid-job, leases held
                killed_jobs += [int(j["id"]) for j in mine]  # type: ignore[call-overload]
                time.sleep(LEASE_S)  # the next worker takes the same jobs back
            finally:
                worker.stop()
        last = _worker(tmp_path, url, data_dir, step_s=0.02)
        last.start()
        try:
            deadline = time.monotonic() + 60
            while any(j["status"] in ("queued", "running") for j in _jobs(url)):
                assert last.alive(), last.log_tail()
                assert time.monotonic() < deadline, (_jobs(url), last.log_tail())
                time.sleep(0.1)
        finally:
            last.stop()
        polled = {s["jobid"]: poll(gw, s["jobid"], s["signature"]).json() for s in submitted}
        account = gw.account

    jobs = _jobs(url)
    print(
        "\n"
        + "\n".join(f"{j['status']:9} attempts {j['attempts']} {j['charge_status']}" for j in jobs)
    )
    assert len(jobs) == JOBS and set(killed_jobs) <= {j["id"] for j in jobs}
    succeeded = [j for j in jobs if j["status"] == "succeeded"]
    failed = [j for j in jobs if j["status"] == "failed"]
    assert len(succeeded) + len(failed) == JOBS, jobs  # nothing cancelled, nothing left open
    for j in jobs:
        assert 1 <= j["attempts"] <= MAX_ATTEMPTS, j  # type: ignore[operator]
    for j in succeeded:  # one settle, the price, the image is there
        assert j["charge_status"] == "settled" and j["cost"] == PRICE, j
        assert (data_dir / "images" / str(j["result_key"])).exists(), j
        assert polled[j["id"]]["status"] == "success"
    for j in failed:  # interrupted too often: failed by the reaper, nothing charged
        assert j["attempts"] == MAX_ATTEMPTS and "interrupted" in str(j["message"]), j
        assert j["charge_status"] in ("released", "refunded"), j
        assert polled[j["id"]]["status"] == "error"
    # the repeated kills reached both outcomes
    assert failed, jobs
    assert any(j["attempts"] > 1 for j in succeeded), jobs  # resumed after a kill, charged once

    ledger = audit(url, account)
    assert ledger.problems() == []
    entries = {c.id: c.entries for c in ledger.charges}
    for j in succeeded:
        assert entries[str(j["charge_id"])] == Counter(hold=1, settle=1), j
    for j in failed:
        assert entries[str(j["charge_id"])] in (
            Counter(hold=1, release=1),
            Counter(hold=1, settle=1, refund=1),  # killed between its settle and its finish
        ), j
    assert ledger.held == 0
    assert ledger.balance == ledger.topups - PRICE * len(succeeded)
