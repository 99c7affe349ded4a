"""The official openai SDK, sync and async, streaming and not, against a running gateway."""

from __future__ import annotations

import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway

MESSAGES = [{"role": "user", "content": "Say five words."}]


def test_sync_non_streaming(gateway: Gateway, upstream: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key)
    before = gateway.balance_nano()
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.object == "chat.completion"
    assert reply.model == "gpt-4o-mini-2024-07-18"
    assert reply.choices[0].message.content == "".join(upstream.words())
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    cost = reply.usage.prompt_tokens * 150 + reply.usage.completion_tokens * 600
    assert before - gateway.balance_nano() == cost
    # a non-streaming client gets a non-streamed upstream call: one JSON, its usage billed
    assert (
        upstream.requests[-1]["stream"] is False and "stream_options" not in upstream.requests[-1]
    )


def test_sync_streaming_without_usage_unless_asked(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key)
    chunks = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1


def test_sync_streaming_with_include_usage(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key)
    before = gateway.balance_nano()
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
        max_completion_tokens=3,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w0 w1 w2 "
    assert chunks[-2].choices[0].finish_reason == "length"
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert usage.completion_tokens == 3
    assert before - gateway.balance_nano() == usage.prompt_tokens * 2500 + 3 * 10000


async def test_async_streaming_and_not(gateway: Gateway) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key)
    reply = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "w0 w1 w2 w3 w4 "
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces = [c async for c in stream]
    assert (
        "".join(c.choices[0].delta.content or "" for c in pieces if c.choices) == "w0 w1 w2 w3 w4 "
    )
    assert pieces[-1].usage is not None
    await client.close()


def test_models_list(gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key)
    assert {m.id for m in client.models.list()} >= {"gpt-4o-mini", "gpt-4o"}


def test_sdk_errors_are_openai_shaped(gateway: Gateway) -> None:
    bad = openai.OpenAI(base_url=gateway.url + "/v1", api_key="mtai-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        bad.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert auth.value.status_code == 401
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.api_key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as bad_request:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=2.5)  # type: ignore[arg-type]
    assert bad_request.value.body["param"] == "temperature"  # type: ignore[index]
