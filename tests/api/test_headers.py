"""OpenAI's debugging headers on every response, and the request id in the log and the usage."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import requests

from tests.chat.conftest import database_url
from tests.conftest import BACKENDS
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

REQUEST_ID = re.compile(r"^req_[0-9a-f]{24}$")


@pytest.fixture(params=BACKENDS)
def gw(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Gateway]:
    deployments: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(
        tmp_path, database_url(request.param, tmp_path), {"up": FakeUpstream()}, deployments
    ) as gateway:
        yield gateway


def _debug_headers(response: requests.Response) -> str:
    request_id = response.headers["x-request-id"]
    assert REQUEST_ID.match(request_id), request_id
    assert re.fullmatch(r"\d+", response.headers["openai-processing-ms"])
    return request_id


def _chat(gw: Gateway, **extra: object) -> requests.Response:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **extra}
    return requests.post(
        gw.url + "/v1/chat/completions", headers=gw.headers(), json=body, timeout=10
    )


def _usage(gw: Gateway) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = requests.get(
        gw.url + "/api/usage/", headers=gw.headers(), timeout=10
    ).json()["data"]
    return rows


def test_every_kind_of_response_has_both_headers(gw: Gateway) -> None:
    ok = _chat(gw)
    assert ok.status_code == 200
    ids = [_debug_headers(ok)]
    stream = _chat(gw, stream=True)
    assert stream.status_code == 200 and stream.text.rstrip().endswith("data: [DONE]")
    ids.append(_debug_headers(stream))
    bad = _chat(gw, temperature="hot")
    assert bad.status_code == 400
    ids.append(_debug_headers(bad))
    no_key = requests.get(gw.url + "/v1/models", timeout=10)
    assert no_key.status_code == 401
    ids.append(_debug_headers(no_key))
    no_route = requests.get(gw.url + "/v1/no-such-thing", headers=gw.headers(), timeout=10)
    assert no_route.status_code == 404
    ids.append(_debug_headers(no_route))
    assert len(set(ids)) == len(ids)  # one per request


def test_a_clients_malformed_request_id_is_not_taken(gw: Gateway) -> None:
    """A well-formed one is (tests/observability/test_request_ids.py)."""
    response = requests.get(
        gw.url + "/healthz", headers={"X-Request-Id": "req chosen; by the client"}, timeout=10
    )
    assert _debug_headers(response) != "req chosen; by the client"


def test_the_sdk_sees_the_request_id_and_the_usage_row_keeps_it(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    request_id = raw.request_id
    assert request_id is not None and REQUEST_ID.match(request_id)
    streamed = _chat(gw, stream=True)
    deadline = time.monotonic() + 5  # a stream settles just after its last byte
    while len(usage := _usage(gw)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    by_request = {row["request_id"]: row for row in usage}
    assert set(by_request) == {request_id, streamed.headers["x-request-id"]}
    assert all(row["model"] == "gpt-4o-mini" and row["status"] == "settled" for row in usage)


def test_the_access_log_line_names_the_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="minitoolai.access"),
        running_gateway(tmp_path, database_url("sqlite", tmp_path), {}, []) as gw,
    ):
        response = requests.get(gw.url + "/v1/models", headers=gw.headers(), timeout=10)
    request_id = _debug_headers(response)
    lines = [r.getMessage() for r in caplog.records if r.name == "minitoolai.access"]
    assert [line for line in lines if request_id in line] == [
        next(line for line in lines if "GET /v1/models 200" in line)
    ]
