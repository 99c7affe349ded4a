"""A client's ``x-request-id``: taken when well formed (echoed, kept on the charge, sent to the
upstream), replaced by one of ours when not."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.chat.conftest import database_url
from tests.conftest import BACKENDS
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

OURS = re.compile(r"^req_[0-9a-f]{24}$")
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(params=BACKENDS)
def gw(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Gateway]:
    deployments: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(
        tmp_path, database_url(request.param, tmp_path), {"up": FakeUpstream()}, deployments
    ) as gateway:
        yield gateway


def _chat(gw: Gateway, request_id: str, stream: bool) -> requests.Response:
    return requests.post(
        gw.url + "/v1/chat/completions",
        headers={**gw.headers(), "X-Request-Id": request_id},
        json={**BODY, "stream": stream},
        timeout=10,
    )


def _charged_ids(gw: Gateway, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    while True:
        rows = requests.get(gw.url + "/api/usage/", headers=gw.headers(), timeout=10).json()
        settled = [r for r in rows["data"] if r["status"] == "settled"]
        if len(settled) >= count or time.monotonic() > deadline:
            return [r["request_id"] for r in settled]
        time.sleep(0.02)


def test_a_valid_client_id_is_echoed_charged_and_sent_upstream(gw: Gateway) -> None:
    ids = ["client-1.A_b", "c" * 64]
    for request_id, stream in zip(ids, [False, True], strict=True):
        response = _chat(gw, request_id, stream)
        assert response.status_code == 200, response.text
        assert response.headers["x-request-id"] == request_id
    assert sorted(_charged_ids(gw, 2)) == sorted(ids)
    assert gw.upstreams["up"].request_ids == ids


def test_an_invalid_client_id_is_replaced(gw: Gateway) -> None:
    bad = ["", "has space", "c" * 65, "semi;colon", "\u00fcn\u00efcode", "back\\slash", "a/b"]
    ours = []
    for request_id in bad:
        response = _chat(gw, request_id, False)
        assert response.status_code == 200, response.text
        ours.append(response.headers["x-request-id"])
    assert all(OURS.match(i) for i in ours), ours
    assert len(set(ours)) == len(bad)
    assert sorted(_charged_ids(gw, len(bad))) == sorted(ours)
    assert gw.upstreams["up"].request_ids == ours
