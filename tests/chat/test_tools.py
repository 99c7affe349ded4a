"""Tool calling through an upstream, with the official openai SDK: an agent loop, streamed
calls reassembled, the client's tools reaching the upstream unchanged, exact billing, the
older ``functions`` API, replays, and the seed's endpoint with tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import requests

from minitoolai.chat.tokens import count_tools, encoding
from tests.chat.conftest import database_url
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

MINI_IN, MINI_OUT = 150, 600  # gpt-4o-mini, nano-dollars per token

# key order and spelling as a client might write them: they must reach the upstream unchanged
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city now.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
                "required": ["city"],
                "additionalProperties": False,
            },
            "strict": True,
        },
    },
    {
        "function": {
            "parameters": {"properties": {"tz": {"type": "string"}}, "type": "object"},
            "name": "get_time",
        },
        "type": "function",
    },
]
CALLS = [
    {"id": "call_w1", "name": "get_weather", "arguments": '{"city": "Rome", "unit": "c"}'},
    {"id": "call_t2", "name": "get_time", "arguments": '{"tz": "Europe/Rome"}'},
]
ASK = [{"role": "user", "content": "Weather and time in Rome?"}]


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream(tool_calls=CALLS)


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key, max_retries=0)


def cost(usage: Any) -> int:
    return int(usage.prompt_tokens * MINI_IN + usage.completion_tokens * MINI_OUT)


def test_a_two_tool_agent_loop(gateway: Gateway, upstream: FakeUpstream) -> None:
    sdk = client(gateway)
    before = gateway.balance_nano()
    first = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=ASK,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="auto",
        parallel_tool_calls=True,
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        (c["id"], c["name"], c["arguments"]) for c in CALLS
    ]
    sent = upstream.requests[-1]
    assert orjson.dumps(sent["tools"]) == orjson.dumps(TOOLS)  # byte-equal, key order kept
    assert sent["tool_choice"] == "auto" and sent["parallel_tool_calls"] is True
    assert first.usage is not None and before - gateway.balance_nano() == cost(first.usage)

    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [c.model_dump(exclude_none=True) for c in calls],
        },
        {"role": "tool", "tool_call_id": "call_w1", "content": '{"celsius": 21}'},
        {"role": "tool", "tool_call_id": "call_t2", "content": '"14:05"'},
    ]
    middle = gateway.balance_nano()
    final = sdk.chat.completions.create(model="gpt-4o-mini", messages=history, tools=TOOLS)  # type: ignore[arg-type]
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "".join(upstream.words())
    assert not final.choices[0].message.tool_calls
    # the history reached the upstream as the client sent it, and was billed by its usage
    assert upstream.requests[-1]["messages"][1]["tool_calls"] == history[1]["tool_calls"]
    assert final.usage is not None and middle - gateway.balance_nano() == cost(final.usage)
    assert gateway.idle_held_nano() == 0


def test_streamed_calls_reassemble_into_the_whole_answer(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    sdk = client(gateway)
    whole = sdk.chat.completions.create(model="gpt-4o-mini", messages=ASK, tools=TOOLS)  # type: ignore[arg-type]
    before = gateway.balance_nano()
    with sdk.chat.completions.stream(
        model="gpt-4o-mini",
        messages=ASK,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    streamed, answered = final.choices[0].message, whole.choices[0].message

    def calls(message: Any) -> list[tuple[str, str, str, str]]:
        return [(c.id, c.type, c.function.name, c.function.arguments) for c in message.tool_calls]

    assert (
        calls(streamed)
        == calls(answered)
        == [(c["id"], "function", c["name"], c["arguments"]) for c in CALLS]
    )
    assert streamed.content is None and answered.content is None
    # the strict tool's arguments are JSON the SDK parses
    assert streamed.tool_calls[0].function.parsed_arguments == {"city": "Rome", "unit": "c"}  # type: ignore[index]
    assert final.choices[0].finish_reason == "tool_calls"
    assert final.usage is not None and before - gateway.balance_nano() == cost(final.usage)
    assert upstream.requests[-1]["stream"] is True


def test_tool_call_deltas_have_openais_shape(gateway: Gateway) -> None:
    chunks = list(
        client(gateway).chat.completions.create(
            model="gpt-4o-mini",
            messages=ASK,  # type: ignore[arg-type]
            tools=TOOLS,  # type: ignore[arg-type]
            stream=True,
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    pieces = [d.tool_calls[0] for d in deltas if d.tool_calls]
    openings = [p for p in pieces if p.id]
    assert [(p.index, p.id, p.type, p.function.name, p.function.arguments) for p in openings] == [  # type: ignore[union-attr]
        (0, "call_w1", "function", "get_weather", ""),
        (1, "call_t2", "function", "get_time", ""),
    ]
    for index, call in enumerate(CALLS):
        rest = [p for p in pieces if p.index == index and not p.id]
        assert all(p.function and p.function.name is None for p in rest)
        assert "".join(p.function.arguments or "" for p in rest) == call["arguments"]  # type: ignore[union-attr]
        assert len(rest) > 1  # really in fragments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_tool_call_answer_is_replayed_whole(gateway: Gateway, upstream: FakeUpstream) -> None:
    headers = {**gateway.headers(), "Idempotency-Key": "tools-1"}
    body = {"model": "gpt-4o-mini", "messages": ASK, "tools": TOOLS, "stream": False}
    before = gateway.balance_nano()
    url = gateway.url + "/v1/chat/completions"
    first = requests.post(url, headers=headers, json=body, timeout=30).json()
    charged = before - gateway.balance_nano()
    again = requests.post(url, headers=headers, json=body, timeout=30).json()
    assert again["choices"] == first["choices"] and upstream.calls == 1
    assert first["choices"][0]["message"]["tool_calls"][1]["function"]["name"] == "get_time"
    assert gateway.balance_nano() == before - charged
    usage = first["usage"]
    assert charged == usage["prompt_tokens"] * MINI_IN + usage["completion_tokens"] * MINI_OUT


def test_the_older_functions_api_keeps_its_shape(gateway: Gateway, upstream: FakeUpstream) -> None:
    functions = [TOOLS[0]["function"]]
    sdk = client(gateway)
    reply = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=ASK,  # type: ignore[arg-type]
        functions=functions,  # type: ignore[arg-type]
        function_call={"name": "get_weather"},
    )
    sent = upstream.requests[-1]
    assert orjson.dumps(sent["tools"]) == orjson.dumps([TOOLS[0]]) and "functions" not in sent
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "function_call" and message.tool_calls is None
    assert message.function_call is not None
    assert message.function_call.name == "get_weather"
    assert message.function_call.arguments == CALLS[0]["arguments"]
    chunks = list(
        sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=ASK,  # type: ignore[arg-type]
            functions=functions,  # type: ignore[arg-type]
            stream=True,
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [d.function_call for d in deltas if d.function_call]
    assert calls[0].name == "get_weather" and not any(d.tool_calls for d in deltas)
    assert "".join(c.arguments or "" for c in calls) == CALLS[0]["arguments"]
    assert chunks[-1].choices[0].finish_reason == "function_call"


def test_the_seed_endpoint_streams_tool_calls_in_its_chunk_shape(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    body = {"model": "gpt-4o-mini", "messages": ASK, "tools": TOOLS, "response_format": schema}
    before = gateway.balance_nano()
    response = requests.post(
        gateway.url + "/api/chat-completions/", headers=gateway.headers(), json=body, timeout=30
    )
    assert response.status_code == 200, response.text
    lines = [line for line in response.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    events = [orjson.loads(line[6:]) for line in lines[:-1]]
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    assert all("role" not in d for d in deltas)  # the seed's first delta names no role
    opening = deltas[0]["tool_calls"][0]
    assert opening == {
        "index": 0,
        "id": "call_w1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    usage = events[-1]["usage"]
    assert events[-1]["choices"] == []
    assert before - gateway.balance_nano() == (
        usage["prompt_tokens"] * MINI_IN + usage["completion_tokens"] * MINI_OUT
    )
    sent = upstream.requests[-1]
    assert orjson.dumps(sent["tools"]) == orjson.dumps(TOOLS)
    assert sent["response_format"] == schema


def test_a_large_tools_list_the_account_cannot_cover_is_a_402(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    deps: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    many = [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": " ".join(f"word{j}" for j in range(400)),
                "parameters": {"type": "object", "properties": {}},
            },
        }
        for i in range(40)
    ]
    assert count_tools(many) * MINI_IN > 4_000_000  # over US$0.004, the balance is US$0.001
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {"up": upstream}, deps, credit="0.001"
    ) as gw:
        body = {"model": "gpt-4o-mini", "messages": ASK, "max_completion_tokens": 10}
        url = gw.url + "/v1/chat/completions"
        refused = requests.post(url, headers=gw.headers(), json={**body, "tools": many}, timeout=30)
        assert refused.status_code == 402, refused.text
        assert upstream.calls == 0 and gw.idle_held_nano() == 0
        assert gw.balance_nano() == 1_000_000
        # the same request with a few tools fits
        assert (
            requests.post(
                url, headers=gw.headers(), json={**body, "tools": TOOLS}, timeout=30
            ).status_code
            == 200
        )


def cookbook_tool_tokens(tools: list[dict[str, Any]]) -> int:
    """The tiktoken cookbook's ``num_tokens_for_tools`` for gpt-4o (its constants)."""
    enc = encoding("o200k_base")
    func_init, prop_init, prop_key, enum_init, enum_item, func_end = 7, 3, 3, -3, 3, 12
    total = 0
    for tool in tools:
        function = tool["function"]
        total += func_init
        description = (function.get("description") or "").rstrip(".")
        total += len(enc.encode(f"{function['name']}:{description}"))
        properties = (function.get("parameters") or {}).get("properties") or {}
        if properties:
            total += prop_init
            for key, prop in properties.items():
                total += prop_key
                if "enum" in prop:
                    total += enum_init
                    for item in prop["enum"]:
                        total += enum_item + len(enc.encode(item))
                line = f"{key}:{prop.get('type', '')}:{(prop.get('description') or '').rstrip('.')}"
                total += len(enc.encode(line))
    return total + func_end


@pytest.mark.parametrize("size", [1, 2, 40])
def test_the_hold_counts_tools_above_the_cookbooks_count(size: int) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": f"lookup_{i}",
                "description": "Find the record of a customer by a field.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "field": {"type": "string", "enum": ["email", "phone", "name"]},
                        "value": {"type": "string", "description": "What to look for."},
                        "limit": {"type": "integer"},
                    },
                },
            },
        }
        for i in range(size)
    ]
    for listed in (tools, TOOLS):
        assert count_tools(listed) >= cookbook_tool_tokens(listed)
