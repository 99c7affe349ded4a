"""Polls under attack: cheap, paced, still prompt; hostile numbers in polls and links are 4xx."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from minitoolai.images.service import POLL_SPACING_S, PollPacer
from tests.support.gateway import Gateway, running_gateway

JOB = {"model": "realvision", "prompt": "x", "width": 256, "height": 256, "steps": 3}
PLAIN = {"Content-Type": "application/json"}


def _submit(gw: Gateway) -> tuple[int, str]:
    done = requests.post(gw.url + "/api/texttoimage/", json=JOB, headers=gw.headers(), timeout=10)
    body = done.json()
    assert body["status"] == "success", body
    return int(body["jobid"]), str(body["signature"])


def _poll(gw: Gateway, ref: dict[str, Any], session: Any = requests) -> requests.Response:
    response: requests.Response = session.post(
        gw.url + "/api/texttoimage/jobs/", json=ref, headers=PLAIN, timeout=10
    )
    return response


@pytest.fixture
def slow_gateway(tmp_path: Path) -> Any:
    """An in-process worker whose diagnostic engine takes 0.25 s per step (3 steps a job)."""
    with running_gateway(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        {},
        [],
        image_workers=1,
        test_pattern_step_s=0.25,
    ) as gw:
        yield gw


def test_a_flooded_poll_still_sees_every_state_change_promptly(slow_gateway: Gateway) -> None:
    gw = slow_gateway
    _submit(gw)  # keeps the worker busy, so the next job is seen queued first
    jobid, signature = _submit(gw)
    ref = {"jobid": str(jobid), "signature": signature}
    stop = threading.Event()

    def flood() -> None:  # 16 keyless clients polling the same job back to back
        with requests.Session() as session:
            while not stop.is_set():
                _poll(gw, ref, session)

    flooders = [threading.Thread(target=flood, daemon=True) for _ in range(16)]
    for t in flooders:
        t.start()
    seen: list[tuple[float, str, dict[str, Any]]] = []
    try:
        deadline = time.monotonic() + 20
        with requests.Session() as session:
            while time.monotonic() < deadline:
                body = _poll(gw, ref, session).json()
                if not seen or seen[-1][1] != body["status"]:
                    seen.append((time.monotonic(), body["status"], body))
                if body["status"] not in ("pending", "processing"):
                    break
                time.sleep(0.02)
    finally:
        stop.set()
        for t in flooders:
            t.join(10)
    states = [s for _, s, _ in seen]
    assert states == ["pending", "processing", "success"], states
    assert seen[0][2]["queue_position"] == 0
    assert seen[-1][2]["image_url"].startswith(gw.url + "/files/images/")
    # running lasts 3 x 0.25 s: the flip to success is seen well within one step, not after a
    # cache or a pacing queue holds the old answer back
    running_for = seen[2][0] - seen[1][0]
    assert 0.5 <= running_for <= 0.75 + 0.5, running_for


def test_pacer_bounds_one_jobs_answer_rate() -> None:
    pacer = PollPacer(spacing=0.01, max_wait=0.05)
    waits = [pacer.delay(1) for _ in range(10)]
    assert waits[0] == 0 and waits[1] == pytest.approx(0.01, abs=0.002)
    assert max(waits) <= 0.05 + 1e-9  # never held longer than max_wait
    assert pacer.delay(2) == 0  # other jobs are not held back
    time.sleep(0.07)  # a flood that stopped leaves no backlog behind
    assert pacer.delay(1) == 0
    assert POLL_SPACING_S <= 0.01  # one client polling every 10 ms is never held


def test_a_poll_flood_is_paced(tmp_path: Path) -> None:
    with running_gateway(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", {}, [], image_workers=1
    ) as gw:
        jobid, signature = _submit(gw)
        ref = {"jobid": jobid, "signature": signature}
        answers = [0] * 8
        stop = time.monotonic() + 1.0

        def flood(i: int) -> None:
            with requests.Session() as session:
                while time.monotonic() < stop:
                    assert _poll(gw, ref, session).status_code == 200
                    answers[i] += 1

        threads = [threading.Thread(target=flood, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        # one job answers at most once per POLL_SPACING_S, whoever asks (+ those in flight)
        assert sum(answers) <= 1.0 / POLL_SPACING_S * 1.3 + 8, answers


@pytest.mark.parametrize(
    "jobid",
    [
        "9" * 5000,
        "1" * 25,
        2**70,
        -1,
        "-5",
        1.5,
        "1e5",
        "12abc",
        "",
        " ",
        None,
        True,
        [1],
        {"a": 1},
        "١٢٣",
        "²",
    ],
)
def test_hostile_job_ids_are_4xx(image_gateway: Gateway, jobid: Any) -> None:
    for path in ("/api/texttoimage/jobs/", "/api/texttoimage/jobs/cancel/"):
        response = requests.post(
            image_gateway.url + path,
            json={"jobid": jobid, "signature": "x"},
            headers=PLAIN,
            timeout=10,
        )
        assert 400 <= response.status_code < 500, (jobid, response.status_code, response.text)
        assert response.json()["status"] == "error"


def test_huge_or_odd_exp_on_an_image_link_is_403(image_gateway: Gateway) -> None:
    gw = image_gateway
    jobid, signature = _submit(gw)
    deadline = time.monotonic() + 30
    while (body := _poll(gw, {"jobid": jobid, "signature": signature}).json())["status"] != (
        "success"
    ):
        assert time.monotonic() < deadline and body["status"] in ("pending", "processing")
        time.sleep(0.05)
    url = body["image_url"]
    assert requests.get(url, timeout=10).status_code == 200
    base, query = url.split("?", 1)
    sig = query.split("sig=", 1)[1]
    for exp in ("9" * 5000, "²", "\uff11\uff12\uff13", "-1", "1.5", "", "9" * 13, "0x10"):
        bad = requests.get(base, params={"exp": exp, "sig": sig}, timeout=10)
        assert bad.status_code == 403, (exp[:20], bad.status_code, bad.text)
        assert bad.json()["error"]["type"] == "invalid_request_error"


def test_image_link_errors_keep_their_exact_bodies(image_gateway: Gateway, tmp_path: Path) -> None:
    """A wrong link is a 403 and a vanished file a 404, both in the API's error shape."""
    gw = image_gateway
    jobid, signature = _submit(gw)
    deadline = time.monotonic() + 30
    while (body := _poll(gw, {"jobid": jobid, "signature": signature}).json())["status"] != (
        "success"
    ):
        assert time.monotonic() < deadline and body["status"] in ("pending", "processing")
        time.sleep(0.05)
    url = body["image_url"]
    image = requests.get(url, timeout=10)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.headers["cache-control"] == "private, max-age=3600"
    forged = requests.get(url.rsplit("sig=", 1)[0] + "sig=forged", timeout=10)
    assert forged.status_code == 403
    assert forged.content == (
        b'{"error":{"message":"this image link is invalid or has expired",'
        b'"type":"invalid_request_error","param":null,"code":null}}'
    )
    name = url.split("/files/images/", 1)[1].split("?", 1)[0]
    (tmp_path / "data" / "images" / name).unlink()
    gone = requests.get(url, timeout=10)
    assert gone.status_code == 404
    assert gone.content == (
        b'{"error":{"message":"no such image","type":"not_found_error","param":null,"code":null}}'
    )
    for method, path, status, kind, message in (
        ("GET", "/nope", 404, "not_found_error", "Not Found"),
        ("GET", "/api/texttoimage/", 405, "invalid_request_error", "Method Not Allowed"),
    ):
        refused = requests.request(method, gw.url + path, timeout=10)
        assert refused.status_code == status
        assert refused.json() == {
            "error": {"message": message, "type": kind, "param": None, "code": None}
        }
