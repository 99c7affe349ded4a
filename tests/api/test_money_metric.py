"""The money metric is counted where money settles (the ledger): each of chat, speech and images
moves ``minitoolai_charged_nanousd`` by exactly what its request was charged, as the usage
listing shows it, on both databases; chat also moves ``minitoolai_tokens`` by what it billed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import BACKENDS
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import ADMIN_KEY, Gateway, running_gateway

#: a model no other test bills: counters are per process, and one test bills 2**53 tokens to
#: gpt-4o-mini, past where a float counter can show a small step
CHAT_MODEL = "gpt-4.1-mini"


@pytest.fixture(params=BACKENDS)
def gw(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Gateway]:
    """Chat and speech from a fake upstream, images from an in-process worker; on PostgreSQL a
    database of its own, so the worker meets no other test's jobs."""
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_postgres")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    deployments: list[dict[str, object]] = [
        {"model": CHAT_MODEL, "provider": "up"},
        {"model": "tts-1-hd", "provider": "up", "upstream_model": "tts-1-hd"},
    ]
    with running_gateway(
        tmp_path, url, {"up": FakeUpstream()}, deployments, image_workers=1
    ) as gateway:
        yield gateway


def metric(gw: Gateway, name: str, **labels: str) -> float:
    """One sample of a counter on ``/metrics`` (0 before it was first counted)."""
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    text = requests.get(gw.url + "/metrics", headers=auth, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name + "_total" and sample.labels == labels:
                return float(sample.value)
    return 0.0


def last_charge(gw: Gateway) -> dict[str, Any]:
    rows: list[dict[str, Any]] = requests.get(
        gw.url + "/api/usage/", headers=gw.headers(), timeout=10
    ).json()["data"]
    return rows[0]


def chat(gw: Gateway) -> None:
    response = requests.post(
        gw.url + "/v1/chat/completions",
        headers=gw.headers(),
        json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Count, please."}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def speech(gw: Gateway) -> None:
    response = requests.post(
        gw.url + "/v1/audio/speech",
        headers=gw.headers(),
        json={"model": "tts-1-hd", "input": "Read this aloud, please.", "voice": "onyx"},
        timeout=30,
    )
    assert response.status_code == 200, response.text


def image(gw: Gateway) -> None:
    submitted = requests.post(
        gw.url + "/api/texttoimage/",
        headers=gw.headers(),
        json={"model": "realvision", "prompt": "a lighthouse", "width": 256, "height": 256},
        timeout=30,
    ).json()
    assert submitted["status"] == "success", submitted
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = requests.post(
            gw.url + "/api/texttoimage/jobs/",
            json={"jobid": str(submitted["jobid"]), "signature": submitted["signature"]},
            timeout=10,
        ).json()
        if body["status"] not in ("pending", "processing"):
            assert body["status"] == "success", body
            return
        time.sleep(0.05)
    raise AssertionError("the image job did not finish")


REQUESTS: dict[str, tuple[str, str, Callable[[Gateway], None]]] = {
    "chat": ("chat", CHAT_MODEL, chat),
    "speech": ("speech", "tts-1-hd", speech),
    "image": ("image", "realvision", image),
}


@pytest.mark.parametrize("what", list(REQUESTS))
def test_each_kind_moves_the_money_metric_by_what_it_charged(gw: Gateway, what: str) -> None:
    kind, model, send = REQUESTS[what]
    before = metric(gw, "minitoolai_charged_nanousd", model=model)
    balance = gw.balance_nano()
    send(gw)
    charge = last_charge(gw)
    assert (charge["kind"], charge["model"], charge["status"]) == (kind, model, "settled")
    cost = int(Decimal(charge["cost"]) * 1_000_000_000)
    assert cost > 0 and balance - gw.balance_nano() == cost
    assert metric(gw, "minitoolai_charged_nanousd", model=model) - before == cost


def test_chat_moves_the_token_metric_by_what_it_billed(gw: Gateway) -> None:
    def tokens() -> tuple[float, float]:
        return (
            metric(gw, "minitoolai_tokens", model=CHAT_MODEL, direction="prompt"),
            metric(gw, "minitoolai_tokens", model=CHAT_MODEL, direction="completion"),
        )

    prompt, completion = tokens()
    chat(gw)
    charge = last_charge(gw)
    after = tokens()
    assert (after[0] - prompt, after[1] - completion) == (
        charge["prompt_tokens"],
        charge["completion_tokens"],
    )
