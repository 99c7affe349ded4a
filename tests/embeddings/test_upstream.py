"""``/v1/embeddings`` passed through to an upstream over real HTTP: what it is sent, what the
client gets back, and what is charged (the upstream's usage, never above the hold)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
import requests

from minitoolai.chat.tokens import encoding
from tests.embeddings.gateway import embeddings_gateway, new_account
from tests.embeddings.upstream import EmbeddingsUpstream, openai_tokens, vector_for
from tests.support.gateway import Gateway

SMALL, LARGE = 20, 130  # nano-dollars per token: US$0.02 and US$0.13 per 1M


@pytest.fixture
def upstream() -> EmbeddingsUpstream:
    return EmbeddingsUpstream()


@pytest.fixture
def gw(upstream: EmbeddingsUpstream, module_database: str, tmp_path: Path) -> Iterator[Gateway]:
    models = ("text-embedding-3-small", "text-embedding-3-large")
    with embeddings_gateway(tmp_path, module_database, upstream, models) as gateway:
        yield gateway


def client(gw: Gateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key or gw.api_key, max_retries=0)


def test_pass_through_in_order_billed_by_the_upstreams_usage(
    gw: Gateway, upstream: EmbeddingsUpstream
) -> None:
    texts = ["The food was delicious", "and the waiter...", "was not"]
    before = gw.balance_nano()
    reply = client(gw).embeddings.create(
        model="text-embedding-3-large", input=texts, dimensions=256, user="u-1"
    )
    sent = upstream.seen[-1]
    assert sent["authorization"] == "Bearer sk-up-secret"
    assert sent["body"] == {
        "model": "text-embedding-3-large",
        "input": texts,
        "encoding_format": "base64",  # what the openai client asks for by default
        "dimensions": 256,
        "user": "u-1",
    }
    got = np.array([d.embedding for d in reply.data], dtype=np.float32)
    # the upstream answered in reverse order: the client gets them by index
    assert np.array_equal(got, np.stack([vector_for(t, 256) for t in texts]))
    tokens = openai_tokens(texts)
    assert reply.usage.prompt_tokens == reply.usage.total_tokens == tokens
    assert before - gw.balance_nano() == tokens * LARGE
    assert gw.idle_held_nano() == 0


def test_float_format_and_token_ids_go_as_sent(gw: Gateway, upstream: EmbeddingsUpstream) -> None:
    ids = [encoding("cl100k_base").encode("hello world"), [1, 2, 3]]
    body = {"model": "text-embedding-3-small", "input": ids, "encoding_format": "float"}
    before = gw.balance_nano()
    answer = requests.post(gw.url + "/v1/embeddings", headers=gw.headers(), json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert upstream.seen[-1]["body"]["input"] == ids
    data = answer.json()["data"]
    assert [d["index"] for d in data] == [0, 1]
    assert np.array_equal(
        np.array([d["embedding"] for d in data], dtype=np.float32),
        np.stack([vector_for(x, 1536) for x in ids]),
    )
    tokens = len(ids[0]) + 3
    assert answer.json()["usage"]["prompt_tokens"] == tokens
    assert before - gw.balance_nano() == tokens * SMALL


@pytest.mark.parametrize(("reported", "charged"), [(10**6, "held"), ("omit", "ours"), (3, 3)])
def test_usage_is_believed_up_to_the_hold(
    gw: Gateway, upstream: EmbeddingsUpstream, reported: int | str, charged: int | str
) -> None:
    upstream.usage_tokens = reported
    text = "one two three four five six seven"
    ours = openai_tokens([text])
    before = gw.balance_nano()
    reply = client(gw).embeddings.create(model="text-embedding-3-small", input=text)
    expected = ours if charged in ("held", "ours") else charged
    assert reply.usage.prompt_tokens == expected
    assert before - gw.balance_nano() == expected * SMALL


def test_an_upstream_failure_is_502_and_free(gw: Gateway, upstream: EmbeddingsUpstream) -> None:
    upstream.status = 500
    before = gw.balance_nano()
    with pytest.raises(openai.APIStatusError) as caught:
        client(gw).embeddings.create(model="text-embedding-3-small", input="x")
    assert caught.value.status_code == 502
    assert gw.balance_nano() == before and gw.idle_held_nano() == 0


def test_a_rejection_upstream_is_a_400(gw: Gateway, upstream: EmbeddingsUpstream) -> None:
    upstream.status = 400
    before = gw.balance_nano()
    with pytest.raises(openai.BadRequestError):
        client(gw).embeddings.create(model="text-embedding-3-small", input="x")
    assert gw.balance_nano() == before and gw.idle_held_nano() == 0


def test_no_credit_is_402_and_the_upstream_never_hears(
    gw: Gateway, upstream: EmbeddingsUpstream
) -> None:
    _name, key = new_account(gw.url, "0")
    with pytest.raises(openai.APIStatusError) as caught:
        client(gw, key).embeddings.create(model="text-embedding-3-small", input="cat")
    assert caught.value.status_code == 402
    assert caught.value.code == "insufficient_quota"
    assert upstream.seen == []


def test_a_model_without_an_engine_is_503(gw: Gateway, upstream: EmbeddingsUpstream) -> None:
    with pytest.raises(openai.APIStatusError) as caught:  # no local default in this gateway
        client(gw).embeddings.create(model="text-embedding-ada-002", input="x")
    assert caught.value.status_code == 503
    assert upstream.seen == []


def test_an_idempotent_retry_is_not_charged_twice(
    gw: Gateway, upstream: EmbeddingsUpstream
) -> None:
    body = {"model": "text-embedding-3-small", "input": "cat"}
    headers = {**gw.headers(), "Idempotency-Key": "emb-1"}
    before = gw.balance_nano()
    first = requests.post(gw.url + "/v1/embeddings", headers=headers, json=body, timeout=30)
    again = requests.post(gw.url + "/v1/embeddings", headers=headers, json=body, timeout=30)
    assert first.status_code == 200 and again.status_code == 409
    assert again.json()["error"]["code"] == "idempotency_key_used"
    assert len(upstream.seen) == 1
    assert before - gw.balance_nano() == first.json()["usage"]["prompt_tokens"] * SMALL


@pytest.mark.parametrize("fault", ["short", "repeated", "ragged", "strings", "not_json"])
def test_a_malformed_answer_is_502_and_free(
    gw: Gateway, upstream: EmbeddingsUpstream, fault: str
) -> None:
    upstream.fault = fault
    before = gw.balance_nano()
    body = {"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float"}
    answer = requests.post(gw.url + "/v1/embeddings", headers=gw.headers(), json=body, timeout=30)
    assert answer.status_code == 502, answer.text
    assert len(upstream.seen) == 1
    assert gw.balance_nano() == before and gw.idle_held_nano() == 0


def test_a_client_that_leaves_first_pays_nothing(gw: Gateway, upstream: EmbeddingsUpstream) -> None:
    upstream.delay_s = 1.5
    before = gw.balance_nano()
    body = {"model": "text-embedding-3-small", "input": "cat"}
    with pytest.raises(requests.Timeout):
        requests.post(gw.url + "/v1/embeddings", headers=gw.headers(), json=body, timeout=0.5)
    deadline = time.monotonic() + 10
    while gw.held_nano() != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(upstream.seen) == 1  # it was asked, then the client left
    assert gw.idle_held_nano() == 0 and gw.balance_nano() == before
    time.sleep(1.5)  # the upstream's late answer changes nothing
    assert gw.balance_nano() == before


def test_with_openai_api_key_openais_names_go_to_openai(
    upstream: EmbeddingsUpstream, module_database: str, tmp_path: Path
) -> None:
    with embeddings_gateway(tmp_path, module_database, upstream, as_openai=True) as gw:
        reply = client(gw).embeddings.create(model="text-embedding-ada-002", input="hello")
    assert upstream.seen[-1]["authorization"] == "Bearer sk-openai-secret"
    assert upstream.seen[-1]["body"]["model"] == "text-embedding-ada-002"
    assert np.array_equal(
        np.array(reply.data[0].embedding, dtype=np.float32), vector_for("hello", 1536)
    )


def test_the_largest_request_is_counted_and_billed_exactly(
    gw: Gateway, upstream: EmbeddingsUpstream
) -> None:
    texts = [f"input number {i} of many" for i in range(2048)]
    before = gw.balance_nano()
    reply = client(gw).embeddings.create(model="text-embedding-3-small", input=texts)
    assert len(reply.data) == 2048
    for i in (0, 1, 1000, 2047):
        got = np.array(reply.data[i].embedding, dtype=np.float32)
        assert np.array_equal(got, vector_for(texts[i], 1536))
    tokens = openai_tokens(texts)
    assert reply.usage.prompt_tokens == tokens
    assert before - gw.balance_nano() == tokens * SMALL


def test_over_300k_tokens_in_all_is_a_400_before_the_upstream(
    gw: Gateway, upstream: EmbeddingsUpstream
) -> None:
    texts = ["word " * 150] * 2048  # 150 tokens each: 307,200 in all
    body = {"model": "text-embedding-3-small", "input": texts}
    answer = requests.post(gw.url + "/v1/embeddings", headers=gw.headers(), json=body, timeout=60)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "input"
    assert "300000" in answer.json()["error"]["message"]
    assert upstream.seen == []
