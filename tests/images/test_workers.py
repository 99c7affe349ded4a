"""Separate `minitoolai worker` processes on one PostgreSQL: crashes, retries, exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.images.test_job_api import poll, wait_done
from tests.support.gateway import Gateway, running_gateway

PRICE = 1_500_000


@contextmanager
def worker(
    database_url: str, data_dir: Path, step_s: float = 0.0
) -> Iterator[subprocess.Popen[str]]:
    env = {
        **os.environ,
        "MINITOOLAI_DATABASE_URL": database_url,
        "MINITOOLAI_DATA_DIR": str(data_dir),
        "MINITOOLAI_IMAGE_ENGINE": "test-pattern",
        "MINITOOLAI_TEST_PATTERN_STEP_S": str(step_s),
        "MINITOOLAI_JOB_LEASE_S": "1.5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "minitoolai", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def jobs_table(database_url: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    text("SELECT id, status, attempts, worker_id FROM image_jobs")
                )
                return [dict(r._mapping) for r in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def submit(gw: Gateway, steps: int = 4) -> dict[str, Any]:
    body = {"model": "realvision", "prompt": "p", "width": 256, "height": 256, "steps": steps}
    data: dict[str, Any] = requests.post(
        gw.url + "/api/texttoimage/", headers=gw.headers(), json=body, timeout=10
    ).json()
    assert data["status"] == "success"
    return data


def test_killed_worker_job_completes_on_another_once(tmp_path: Path, fresh_postgres: str) -> None:
    data_dir = tmp_path / "data"
    with running_gateway(tmp_path, fresh_postgres, {}, [], data_dir=data_dir) as gw:
        before = gw.balance_nano()
        job = submit(gw, steps=8)
        with worker(fresh_postgres, data_dir, step_s=0.4) as first:
            deadline = time.monotonic() + 30
            while (state := poll(gw, job["jobid"], job["signature"]).json())[
                "status"
            ] != "processing" or not state["progress"]:
                assert time.monotonic() < deadline, state
                time.sleep(0.05)
            first.kill()  # dies mid-job, lease held
            first.wait()
        with worker(fresh_postgres, data_dir, step_s=0.05):
            done = wait_done(gw, job["jobid"], job["signature"], timeout=60)
        assert done["status"] == "success"
        (row,) = jobs_table(fresh_postgres)
        assert row["attempts"] == 2 and row["status"] == "succeeded"
        assert len(list((data_dir / "images").glob("*.png"))) == 1
        assert before - gw.balance_nano() == PRICE and gw.idle_held_nano() == 0


def test_two_workers_fifty_jobs_each_done_exactly_once(tmp_path: Path, fresh_postgres: str) -> None:
    data_dir = tmp_path / "data"
    with running_gateway(tmp_path, fresh_postgres, {}, [], data_dir=data_dir) as gw:
        before = gw.balance_nano()
        # each job takes a little time, so while one worker is busy the other claims the next
        slow = {"step_s": 0.05}
        with worker(fresh_postgres, data_dir, **slow), worker(fresh_postgres, data_dir, **slow):
            jobs = [submit(gw, steps=1) for _ in range(50)]
            results = [wait_done(gw, j["jobid"], j["signature"], timeout=120) for j in jobs]
        assert all(r["status"] == "success" for r in results)
        rows = jobs_table(fresh_postgres)
        assert len(rows) == 50
        assert all(r["status"] == "succeeded" and r["attempts"] == 1 for r in rows)
        assert len({r["worker_id"] for r in rows}) == 2  # both workers took jobs
        assert len(list((data_dir / "images").glob("*.png"))) == 50
        assert before - gw.balance_nano() == 50 * PRICE and gw.idle_held_nano() == 0


def test_hostile_prompts_never_500_on_postgres(tmp_path: Path, fresh_postgres: str) -> None:
    with running_gateway(tmp_path, fresh_postgres, {}, []) as gw:
        for prompt in ("nul\x00byte", "\ud7ff emoji \U0001f600", "x" * 4000, "'; DROP TABLE x; --"):
            body = {"model": "realvision", "prompt": prompt, "negativePrompt": prompt}
            r = requests.post(
                gw.url + "/api/texttoimage/", headers=gw.headers(), json=body, timeout=10
            )
            assert r.status_code == 200, (prompt[:20], r.text)
        bad = requests.post(
            gw.url + "/api/texttoimage/jobs/",
            timeout=10,
            json={"jobid": "1\x00", "signature": "s\x00"},
        )
        assert bad.status_code == 400
