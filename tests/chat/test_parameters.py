"""Every parameter of OpenAI's chat reference: accepted, forwarded to upstreams unchanged, or a
400 naming it when no engine here can keep its meaning; ``logprobs`` reach the client; an
unknown model is OpenAI's 404."""

from __future__ import annotations

from typing import Any

import openai
import pytest
import requests

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway

MESSAGES = [{"role": "user", "content": "Say five words."}]

#: one value for each parameter only an upstream acts on
FORWARDED: dict[str, Any] = {
    "store": True,
    "metadata": {"team": "search", "run": "7"},
    "service_tier": "flex",
    "reasoning_effort": "low",
    "verbosity": "medium",
    "logit_bias": {"1734": -100, "50256": 5},
    "logprobs": True,
    "top_logprobs": 3,
    "prompt_cache_key": "user-42-chat",
    "prompt_cache_retention": "24h",
    "safety_identifier": "hashed-user-42",
    "modalities": ["text"],
    "prediction": {"type": "content", "content": "w0 w1 w2"},
    "web_search_options": {"search_context_size": "low"},
}


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key, max_retries=0)


def post(gw: Gateway, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        gw.url + "/v1/chat/completions", headers=gw.headers(), json=body, timeout=30
    )


def test_every_reference_parameter_reaches_the_upstream_unchanged(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    reply = client(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        n=1,
        max_completion_tokens=50,
        stream_options=None,
        **FORWARDED,
    )
    assert reply.choices[0].message.content == "".join(upstream.words())
    sent = upstream.requests[-1]
    assert {key: sent.get(key) for key in FORWARDED} == FORWARDED
    assert sent["max_completion_tokens"] == 50


def test_logprobs_reach_the_client_whole_and_streamed(gateway: Gateway) -> None:
    sdk = client(gateway)
    whole = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        logprobs=True,
    )
    logprobs = whole.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None
    words = [t.token for t in logprobs.content]
    assert words == ["w0 ", "w1 ", "w2 ", "w3 ", "w4 "]
    assert [t.logprob for t in logprobs.content] == [-3 / 8] * 5
    chunks = list(
        sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,  # type: ignore[arg-type]
            logprobs=True,
            stream=True,
        )
    )
    streamed = [
        t
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.content or []
    ]
    assert [t.model_dump() for t in streamed] == [t.model_dump() for t in logprobs.content]
    # a plain request streams without logprobs, as before
    plain = list(
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    )
    assert all(c.choices[0].logprobs is None for c in plain if c.choices)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 9}, "n"),
        ({"n": 0}, "n"),
        ({"audio": {"voice": "alloy", "format": "mp3"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
        ({"logit_bias": {"11": 101}}, "logit_bias.11"),
        (
            {"tools": [{"type": "function", "function": {"name": "bad name"}}]},
            "tools.0.function.name",
        ),
        ({"tools": [{"type": "retrieval"}]}, "tools.0.type"),
        ({"service_tier": "cheapest"}, "service_tier"),
        ({"function_call": "auto"}, "function_call"),
        ({"not_in_the_reference": 1}, "not_in_the_reference"),
    ],
)
def test_what_no_engine_can_keep_is_a_400_naming_it(
    gateway: Gateway, upstream: FakeUpstream, extra: dict[str, Any], param: str
) -> None:
    before = gateway.balance_nano()
    response = post(gateway, {"model": "gpt-4o-mini", "messages": MESSAGES, **extra})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert upstream.calls == 0 and gateway.balance_nano() == before


CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "tool", "tool_call_id": "call_1", "content": "42"}],
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_2", "content": "42"},
        ],
        [
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "user", "content": "hi"},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ],
        [{"role": "tool", "content": "42"}],
        [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}],
        [{"role": "user", "content": "hi", "tool_calls": [CALL]}],
    ],
)
def test_tool_history_follows_openais_rules(
    gateway: Gateway, upstream: FakeUpstream, messages: list[dict[str, Any]]
) -> None:
    response = post(gateway, {"model": "gpt-4o-mini", "messages": messages})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"].startswith("messages")
    assert upstream.calls == 0


def test_a_tool_history_is_accepted_without_tools(gateway: Gateway, upstream: FakeUpstream) -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        {"role": "assistant", "content": "It is 42."},
        {"role": "user", "content": "thanks"},
    ]
    assert post(gateway, {"model": "gpt-4o-mini", "messages": messages}).status_code == 200
    sent = [{k: v for k, v in m.items() if v is not None} for m in messages]  # nulls dropped
    assert upstream.requests[-1]["messages"] == sent


def test_an_unknown_model_is_openais_404(gateway: Gateway, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client(gateway).chat.completions.create(model="gpt-9", messages=MESSAGES)  # type: ignore[arg-type]
    error = raised.value.body
    assert raised.value.status_code == 404
    assert error["code"] == "model_not_found" and error["type"] == "invalid_request_error"  # type: ignore[index]
    seed = requests.post(
        gateway.url + "/api/chat-completions/",
        headers=gateway.headers(),
        json={"model": "gpt-9", "messages": MESSAGES},
        timeout=10,
    )
    assert seed.status_code == 404 and seed.json()["error"]["code"] == "model_not_found"
    assert upstream.calls == 0 and gateway.idle_held_nano() == 0
