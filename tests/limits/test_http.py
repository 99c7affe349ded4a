"""Rate limits over real HTTP: the 429 and its headers, no money moved by a refusal, tokens
counted from the hold's estimate and corrected at settle, concurrency with slow streams,
limits shared by an account's keys, headers on successes. On the embedded default (the
in-process counters) and on Redis."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from minitoolai.catalog import IMAGE_DEFAULT_MODEL
from tests.conftest import POSTGRES_URL
from tests.limits.conftest import REDIS_URL
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
)
TOKEN_HEADERS = (
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture(params=["sqlite+in-process", "postgres+redis"])
def gateway(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakeUpstream
) -> Iterator[Gateway]:
    extra: dict[str, Any] = {}
    if request.param == "postgres+redis":
        if POSTGRES_URL == "off":
            pytest.skip("PostgreSQL disabled")
        url = POSTGRES_URL
        extra = {
            "redis_url": REDIS_URL,
            "limits_redis_prefix": f"mtai-test-limits:{uuid.uuid4().hex[:8]}:",
        }
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    deployments: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(tmp_path, url, {"up": upstream}, deployments, **extra) as gw:
        yield gw


def key_prefix(gw: Gateway, api_key: str | None = None) -> str:
    keys = gw.admin("GET", f"/admin/accounts/{gw.account}/keys").json()["data"]
    wanted = api_key or gw.api_key
    return next(k["prefix"] for k in keys if wanted.startswith(k["prefix"]))


def limit_key(gw: Gateway, api_key: str | None = None, **rates: int | None) -> dict[str, Any]:
    answer = gw.admin("PUT", f"/admin/keys/{key_prefix(gw, api_key)}/limits", json=rates)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def chat(gw: Gateway, api_key: str | None = None, **body: Any) -> requests.Response:
    headers = {**gw.headers(), "Authorization": f"Bearer {api_key or gw.api_key}"}
    return requests.post(
        gw.url + "/v1/chat/completions", json={**CHAT, **body}, headers=headers, timeout=30
    )


def money(gw: Gateway) -> tuple[int, int, int]:
    data = gw.admin("GET", f"/admin/accounts/{gw.account}").json()
    return gw.balance_nano(), gw.held_nano(), int(data["open_holds"])


def test_five_through_then_429_with_every_header_and_no_money_moved(gateway: Gateway) -> None:
    limit_key(gateway, rpm=5)
    answers = [chat(gateway) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == [
        "4",
        "3",
        "2",
        "1",
        "0",
    ]
    for answer in answers:
        assert answer.headers["x-ratelimit-limit-requests"] == "5"
        assert answer.headers["x-ratelimit-reset-requests"].endswith("s")
    before = money(gateway)
    refused = chat(gateway)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["type"] == "requests"
    assert "requests per minute (RPM)" in error["message"] and "Limit 5" in error["message"]
    for name in HEADERS:
        assert name in refused.headers, name
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert money(gateway) == before  # balance, held and open holds: the refusal moved nothing
    # the SDK sees OpenAI's RateLimitError (and would retry it: right for a rate limit)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key, max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(**CHAT)
    assert caught.value.response.headers["x-ratelimit-limit-requests"] == "5"
    assert money(gateway) == before


def test_no_limits_no_headers(gateway: Gateway) -> None:
    answer = chat(gateway)
    assert answer.status_code == 200
    assert not [h for h in answer.headers if h.lower().startswith("x-ratelimit")]


def test_tokens_counted_from_the_estimate_and_corrected_at_settle(gateway: Gateway) -> None:
    limit_key(gateway, tpm=2500)
    first = chat(gateway, max_tokens=1000)
    assert first.status_code == 200, first.text
    for name in TOKEN_HEADERS:
        assert name in first.headers
    left_after_first = int(first.headers["x-ratelimit-remaining-tokens"])
    estimate = 2500 - left_after_first
    assert estimate > 1000  # the prompt's estimate and all of max_tokens
    used = first.json()["usage"]["total_tokens"]
    assert used < 100
    # uncorrected, a second would leave 2500 - 2 * estimate; corrected: the first's real usage
    second = chat(gateway, max_tokens=1000)
    assert second.status_code == 200, second.text
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == 2500 - used - estimate
    # a request whose estimate alone is over the limit can never pass: OpenAI's "too large"
    big = chat(gateway, max_tokens=3000)
    assert big.status_code == 429
    assert big.json()["error"]["type"] == "tokens"
    assert "Request too large" in big.json()["error"]["message"]


def test_concurrency_limit_with_slow_streams(gateway: Gateway, upstream: FakeUpstream) -> None:
    limit_key(gateway, max_concurrent=2)
    upstream.delay_s = 0.4  # five chunks: two seconds a stream

    def stream() -> tuple[int, str]:
        with requests.post(
            gateway.url + "/v1/chat/completions",
            json={**CHAT, "stream": True},
            headers=gateway.headers(),
            stream=True,
            timeout=30,
        ) as answer:
            return answer.status_code, answer.text

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        running = [pool.submit(stream) for _ in range(2)]
        time.sleep(0.8)  # both have begun
        third = chat(gateway)
        assert third.status_code == 429, third.text
        assert "concurrent" in third.json()["error"]["message"]
        assert third.headers["Retry-After"] == "1"
        assert [f.result()[0] for f in running] == [200, 200]
    upstream.delay_s = 0.0
    assert chat(gateway).status_code == 200  # the leases were given back


def test_account_limit_shared_by_two_keys(gateway: Gateway) -> None:
    answer = gateway.admin("PUT", f"/admin/accounts/{gateway.account}/limits", json={"rpm": 3})
    assert answer.status_code == 200, answer.text
    assert answer.json()["rpm"] == 3
    created = gateway.admin("POST", f"/admin/accounts/{gateway.account}/keys", json={})
    other = created.json()["api_key"]
    assert chat(gateway).status_code == 200
    assert chat(gateway, other).status_code == 200
    assert chat(gateway).status_code == 200
    refused = chat(gateway, other)
    assert refused.status_code == 429
    assert "on this account" in refused.json()["error"]["message"]
    # the key's own limit, tighter, is the one its headers show
    limit_key(gateway, other, rpm=100)
    assert chat(gateway, other).status_code == 429
    # clearing with 0 (or null) gives the account its defaults back: none here
    cleared = gateway.admin("PUT", f"/admin/accounts/{gateway.account}/limits", json={"rpm": 0})
    assert cleared.json()["rpm"] is None
    assert chat(gateway, other).status_code == 200


def test_embeddings_and_speech_count_requests(gateway: Gateway) -> None:
    limit_key(gateway, rpm=1)
    assert chat(gateway).status_code == 200
    answer = requests.post(
        gateway.url + "/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "hi"},
        headers=gateway.headers(),
        timeout=30,
    )
    assert answer.status_code == 429
    assert answer.headers["x-ratelimit-limit-requests"] == "1"
    speech = requests.post(
        gateway.url + "/v1/audio/speech",
        json={"model": "tts-1", "input": "hi", "voice": "alloy"},
        headers=gateway.headers(),
        timeout=30,
    )
    assert speech.status_code == 429


def test_images_per_minute(gateway: Gateway) -> None:
    limit_key(gateway, ipm=1)
    body = {"prompt": "a cat", "model": "dall-e-2", "n": 2, "size": "256x256"}
    answer = requests.post(
        gateway.url + "/v1/images/generations", json=body, headers=gateway.headers(), timeout=30
    )
    assert answer.status_code == 429
    assert answer.json()["error"]["type"] == "images"
    assert "images per minute (IPM)" in answer.json()["error"]["message"]
    before = money(gateway)
    seed = requests.post(
        gateway.url + "/api/texttoimage/",
        json={"model": IMAGE_DEFAULT_MODEL, "prompt": "a cat", "width": 256, "height": 256},
        headers=gateway.headers(),
        timeout=30,
    )
    assert seed.status_code == 200, seed.text  # one image: within the limit
    again = requests.post(
        gateway.url + "/api/texttoimage/",
        json={"model": IMAGE_DEFAULT_MODEL, "prompt": "a cat", "width": 256, "height": 256},
        headers=gateway.headers(),
        timeout=30,
    )
    assert again.status_code == 429
    assert again.json()["status"] == "error" and "IPM" in again.json()["message"]
    assert "Retry-After" in again.headers
    assert money(gateway)[0] == before[0]
