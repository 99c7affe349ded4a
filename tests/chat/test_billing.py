"""Exact billing: holds before any upstream call, settles to the nano-dollar, never overcharges."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import orjson
import pytest
import requests

from minitoolai.chat.tokens import count_messages, count_text
from tests.chat.conftest import database_url
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

MESSAGES = [{"role": "user", "content": "Count for me, please."}]
PROMPT = count_messages(MESSAGES)


def post(
    gw: Gateway, body: dict[str, object], path: str = "/api/chat-completions/"
) -> requests.Response:
    return requests.post(gw.url + path, headers=gw.headers(), json=body, timeout=30)


def test_exact_charge_on_each_database(gateway_each_db: Gateway) -> None:
    gw = gateway_each_db
    before = gw.balance_nano()
    lines = post(gw, {"model": "gpt-4o-mini", "messages": MESSAGES}).text.strip().split("\n\n")
    usage = orjson.loads(lines[-2][6:])["usage"]
    assert usage["prompt_tokens"] == PROMPT and usage["completion_tokens"] == 5
    assert before - gw.balance_nano() == PROMPT * 150 + 5 * 600
    assert gw.idle_held_nano() == 0
    listed = requests.get(gw.url + "/api/usage/", headers=gw.headers(), timeout=10).json()["data"]
    assert listed[0]["cost"] == f"0.{PROMPT * 150 + 5 * 600:09d}"
    assert listed[0]["served_by"] == "up:gpt-4o-mini" and listed[0]["estimated"] is False


def test_request_over_balance_is_refused_before_any_upstream_call(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    deps: list[dict[str, object]] = [{"model": "gpt-4o", "provider": "up"}]
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {"up": upstream}, deps, credit="0.001"
    ) as gw:
        # worst case of 1000 completion tokens at $10/M is $0.01 > $0.001
        response = post(gw, {"model": "gpt-4o", "messages": MESSAGES})
        assert response.status_code == 402
        error = response.json()["error"]
        assert error["type"] == "insufficient_quota" and "max_completion_tokens" in error["message"]
        assert upstream.calls == 0
        assert gw.balance_nano() == 1_000_000 and gw.idle_held_nano() == 0
        # asking for fewer tokens fits the balance
        assert (
            post(
                gw, {"model": "gpt-4o", "messages": MESSAGES, "max_completion_tokens": 20}
            ).status_code
            == 200
        )


@pytest.mark.parametrize(
    "body",
    [
        {"model": "gpt-4o-mini", "messages": []},
        {"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "hi"}]},
        {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": -0.1},
        {"model": "gpt-4o-mini", "messages": MESSAGES, "max_completion_tokens": 0},
        {"model": "gpt-4o-mini", "messages": MESSAGES, "top_p": 1.5},
        {"model": "gpt-4o-mini", "messages": MESSAGES, "stop": ["a", "b", "c", "d", "e"]},
        {"model": "gpt-4o-mini", "messages": MESSAGES, "surprise": True},
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "video"}]}]},
        {"messages": MESSAGES},
        ["not", "an", "object"],
    ],
)
def test_invalid_requests_get_400_and_cost_nothing(
    gateway: Gateway, upstream: FakeUpstream, body: object
) -> None:
    before = gateway.balance_nano()
    response = requests.post(
        gateway.url + "/v1/chat/completions", headers=gateway.headers(), json=body, timeout=10
    )
    assert response.status_code == 400, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert upstream.calls == 0 and gateway.balance_nano() == before


def test_broken_json_is_a_400(gateway: Gateway) -> None:
    response = requests.post(
        gateway.url + "/api/chat-completions/", headers=gateway.headers(), data=b"{nope", timeout=10
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "auth", [None, "Bearer", "Bearer mtai-nope", "Basic abc", "Bearer " + "x" * 300]
)
def test_missing_or_wrong_key_is_401(gateway: Gateway, auth: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    response = requests.post(
        gateway.url + "/api/chat-completions/",
        headers=headers,
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def _read_events(sock: socket.socket, count: int) -> bytes:
    data = b""
    while data.count(b"data: ") < count:
        data += sock.recv(65536)
    return data


def test_client_disconnect_is_charged_for_what_was_generated(tmp_path: Path) -> None:
    slow = FakeUpstream(chunks=40, delay_s=0.05)
    deps: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(tmp_path, database_url("sqlite", tmp_path), {"up": slow}, deps) as gw:
        before = gw.balance_nano()
        body = orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES})
        host, port = gw.url.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)))
        sock.sendall(
            b"POST /api/chat-completions/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {gw.api_key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = _read_events(sock, 3)
        sock.close()  # the client leaves after a few chunks
        deadline = time.monotonic() + 5
        while gw.held_nano() and time.monotonic() < deadline:
            time.sleep(0.05)
        words = received.count(b'"content"')
        charged = before - gw.balance_nano()
        # prompt plus one token per word the upstream produced before the close was noticed
        assert (charged - PROMPT * 150) % 600 == 0 and gw.idle_held_nano() == 0
        completion = (charged - PROMPT * 150) // 600
        # what the upstream had produced when the close was noticed: the words we saw, or a
        # word or two more that were in flight
        possible = {count_text("".join(slow.words()[:n])) for n in range(words, words + 3)}
        assert completion in possible
        time.sleep(0.3)
        assert slow.completed == 0  # the upstream stream was stopped, not run to the end
        usage = requests.get(gw.url + "/api/usage/", headers=gw.headers(), timeout=10).json()
        assert usage["data"][0]["estimated"] is True


def test_upstream_without_usage_is_counted_and_marked_estimated(tmp_path: Path) -> None:
    silent = FakeUpstream(send_usage=False)
    deps: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(tmp_path, database_url("sqlite", tmp_path), {"up": silent}, deps) as gw:
        before = gw.balance_nano()
        text = post(gw, {"model": "gpt-4o-mini", "messages": MESSAGES}).text
        usage = orjson.loads(text.strip().split("\n\n")[-2][6:])["usage"]
        # counted by us with o200k_base, and billed as shown
        counted = count_text("w0 w1 w2 w3 w4 ")
        assert usage["completion_tokens"] == counted and usage["prompt_tokens"] == PROMPT
        assert before - gw.balance_nano() == PROMPT * 150 + counted * 600


def test_failover_to_second_deployment_pays_once(tmp_path: Path) -> None:
    broken, healthy = FakeUpstream(status=500), FakeUpstream()
    deps: list[dict[str, object]] = [
        {"model": "gpt-4o-mini", "provider": "broken", "priority": 0},
        {"model": "gpt-4o-mini", "provider": "healthy", "priority": 1},
    ]
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {"broken": broken, "healthy": healthy}, deps
    ) as gw:
        before = gw.balance_nano()
        response = post(gw, {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": False})
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == "w0 w1 w2 w3 w4 "
        assert broken.calls == 1 and healthy.calls == 1
        assert before - gw.balance_nano() == PROMPT * 150 + 5 * 600
        # the broken one cools down: the next request goes straight to the healthy one
        post(gw, {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": False})
        assert broken.calls == 1 and healthy.calls == 2


def test_all_deployments_down_is_502_and_free(tmp_path: Path) -> None:
    broken = FakeUpstream(status=503)
    deps: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "broken"}]
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {"broken": broken}, deps
    ) as gw:
        before = gw.balance_nano()
        for path in ("/api/chat-completions/", "/v1/chat/completions"):
            response = post(gw, {"model": "gpt-4o-mini", "messages": MESSAGES}, path)
            assert response.status_code == 502
            error = response.json()["error"]
            assert error["type"] == "upstream_error" and "sk-upstream-secret" not in response.text
        assert gw.balance_nano() == before and gw.idle_held_nano() == 0


def test_upstream_dying_mid_stream_bills_what_arrived_and_says_so(tmp_path: Path) -> None:
    flaky = FakeUpstream(chunks=10, break_after=4)
    deps: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(tmp_path, database_url("sqlite", tmp_path), {"up": flaky}, deps) as gw:
        before = gw.balance_nano()
        events = post(gw, {"model": "gpt-4o-mini", "messages": MESSAGES}).text.strip().split("\n\n")
        assert events[-1] == "data: [DONE]"
        assert "error" in orjson.loads(events[-3][6:])
        usage = orjson.loads(events[-2][6:])["usage"]
        counted = count_text("w0 w1 w2 w3 ")  # what arrived before the upstream died
        assert usage["completion_tokens"] == counted
        assert before - gw.balance_nano() == PROMPT * 150 + counted * 600


def test_idempotency_key_is_not_charged_twice(gateway: Gateway, upstream: FakeUpstream) -> None:
    headers = {**gateway.headers(), "Idempotency-Key": "order-1"}
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": False}
    before = gateway.balance_nano()
    first = requests.post(
        gateway.url + "/v1/chat/completions", headers=headers, json=body, timeout=10
    )
    second = requests.post(
        gateway.url + "/v1/chat/completions", headers=headers, json=body, timeout=10
    )
    assert first.json() == second.json()
    assert upstream.calls == 1
    assert before - gateway.balance_nano() == PROMPT * 150 + 5 * 600
    # a streamed answer replays as a stream, from the stored completion
    seed_headers = {**gateway.headers(), "Idempotency-Key": "order-2"}
    seed_body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    replies = [
        requests.post(
            gateway.url + "/api/chat-completions/", headers=seed_headers, json=seed_body, timeout=10
        ).text
        for _ in range(2)
    ]
    assert '"content":"w0 w1 w2 w3 w4 "' in replies[1] and replies[1].endswith("data: [DONE]\n\n")
    assert upstream.calls == 2
    assert before - gateway.balance_nano() == 2 * (PROMPT * 150 + 5 * 600)
