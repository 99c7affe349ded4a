"""The seed's chat endpoint, byte-level, with the seed's own Python snippet."""

from __future__ import annotations

import orjson
import requests

from minitoolai.chat.tokens import count_messages
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway

SEED_MESSAGES = [
    {"role": "developer", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "How can I help you today?"},
    {"role": "user", "content": "What's the largest U.S. state by area?"},
]


def seed_snippet(api_url: str, api_key: str) -> tuple[str, list[str]]:
    """The seed's Python snippet, with host and key changed, and its prints captured."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    data = {
        "model": "gpt-4o-mini",
        "messages": SEED_MESSAGES,
        "temperature": 1.0,
        "max_completion_tokens": 1000,
    }
    response = requests.post(api_url, headers=headers, json=data, stream=True, timeout=30)
    lines = []
    for line in response.iter_lines():
        if line:
            lines.append(line.decode("utf-8"))
    return response.headers["content-type"], lines


def test_seed_snippet_streams_the_seed_shape(gateway: Gateway, upstream: FakeUpstream) -> None:
    before = gateway.balance_nano()
    content_type, lines = seed_snippet(gateway.url + "/api/chat-completions/", gateway.api_key)
    assert content_type.startswith("text/event-stream")
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    events = [orjson.loads(line[6:]) for line in lines[:-1]]
    content, finish, usage = events[:-2], events[-2], events[-1]

    seed_keys = [
        "id",
        "object",
        "created",
        "model",
        "service_tier",
        "system_fingerprint",
        "choices",
        "usage",
    ]
    for event in events:
        assert list(event) == seed_keys  # the seed's field order, every chunk
        assert event["object"] == "chat.completion.chunk"
        assert event["id"] == events[0]["id"] and event["id"].startswith("chatcmpl-")
        assert event["created"] == events[0]["created"]
        assert event["model"] == "gpt-4o-mini-2024-07-18"  # who really answered
    for event in content:
        (choice,) = event["choices"]
        assert list(choice) == ["index", "delta", "logprobs", "finish_reason"]
        assert list(choice["delta"]) == ["content"]
        assert choice["finish_reason"] is None and event["usage"] is None
    assert "".join(e["choices"][0]["delta"]["content"] for e in content) == "".join(
        upstream.words()
    )
    assert finish["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert usage["choices"] == []
    prompt = count_messages(SEED_MESSAGES)
    assert usage["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": 5,
        "total_tokens": prompt + 5,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    # billed exactly what the usage chunk says, at the seed's gpt-4o-mini price
    assert before - gateway.balance_nano() == prompt * 150 + 5 * 600
    assert gateway.idle_held_nano() == 0
    # the upstream was asked for its usage and got the seed's parameters
    sent = upstream.requests[-1]
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["max_completion_tokens"] == 1000 and sent["temperature"] == 1.0
    assert sent["messages"][0]["role"] == "developer"


def test_seed_path_without_slash_and_response_text(gateway: Gateway) -> None:
    body = {"model": "gpt-4o-mini", "messages": SEED_MESSAGES}
    response = requests.post(
        gateway.url + "/api/chat-completions", headers=gateway.headers(), json=body, timeout=30
    )
    assert response.status_code == 200
    text = response.text  # "single result" in the seed: the whole stream as text
    assert text.endswith("data: [DONE]\n\n") and text.count("data: ") == 5 + 3


def test_seed_stream_false_gives_one_completion(gateway: Gateway) -> None:
    body = {"model": "gpt-4o", "messages": SEED_MESSAGES, "stream": False}
    before = gateway.balance_nano()
    response = requests.post(
        gateway.url + "/api/chat-completions/", headers=gateway.headers(), json=body, timeout=30
    )
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == "w0 w1 w2 w3 w4 "
    usage = data["usage"]
    assert (
        before - gateway.balance_nano()
        == usage["prompt_tokens"] * 2500 + usage["completion_tokens"] * 10000
    )
