"""OpenAI's newer tool shapes through an upstream, with the official openai SDK: ``tool_choice``
``allowed_tools`` and custom tools reach the upstream byte-equal, custom tool calls come back
whole and streamed (and are replayed), a custom call in the history is forwarded, and shapes
outside the reference are a 400 naming their param."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest
import requests

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway

MINI_IN, MINI_OUT = 150, 600  # gpt-4o-mini, nano-dollars per token
ASK = [{"role": "user", "content": "Run the tests, then tell me the time."}]
FUNCTION = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}
# key order as a client might write it: it must reach the upstream unchanged
CUSTOM_TEXT = {
    "custom": {"name": "run_shell", "description": "Run a shell command."},
    "type": "custom",
}
CUSTOM_GRAMMAR = {
    "type": "custom",
    "custom": {
        "name": "sql",
        "format": {
            "type": "grammar",
            "grammar": {"syntax": "lark", "definition": 'start: "SELECT " /[a-z]+/'},
        },
    },
}
ALLOWED = {
    "allowed_tools": {
        "tools": [{"function": {"name": "get_time"}, "type": "function"}],
        "mode": "required",
    },
    "type": "allowed_tools",
}
SHELL_CALL = {"type": "custom", "id": "call_sh1", "name": "run_shell", "input": "pytest -q tests"}


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key, max_retries=0)


def post(gw: Gateway, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        gw.url + "/v1/chat/completions", headers=gw.headers(), json=body, timeout=30
    )


def test_allowed_tools_reach_the_upstream_byte_equal(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    reply = client(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=ASK,  # type: ignore[arg-type]
        tools=[FUNCTION, CUSTOM_TEXT],  # type: ignore[list-item]
        tool_choice=ALLOWED,  # type: ignore[arg-type]
    )
    assert reply.choices[0].message.content == "".join(upstream.words())
    sent = upstream.requests[-1]
    assert orjson.dumps(sent["tool_choice"]) == orjson.dumps(ALLOWED)
    assert orjson.dumps(sent["tools"]) == orjson.dumps([FUNCTION, CUSTOM_TEXT])


@pytest.mark.parametrize("choice", [{"type": "custom", "custom": {"name": "sql"}}, "required"])
def test_custom_tools_reach_the_upstream_byte_equal(
    gateway: Gateway, upstream: FakeUpstream, choice: Any
) -> None:
    response = post(
        gateway,
        {"model": "gpt-4o-mini", "messages": ASK, "tools": [CUSTOM_GRAMMAR], "tool_choice": choice},
    )
    assert response.status_code == 200, response.text
    sent = upstream.requests[-1]
    assert orjson.dumps(sent["tools"]) == orjson.dumps([CUSTOM_GRAMMAR])
    assert sent["tool_choice"] == choice


@pytest.fixture
def caller(upstream: FakeUpstream) -> FakeUpstream:
    upstream.tool_calls = [SHELL_CALL]
    return upstream


def test_a_custom_tool_call_comes_back_whole_and_streamed(
    gateway: Gateway, caller: FakeUpstream
) -> None:
    sdk = client(gateway)
    before = gateway.balance_nano()
    whole = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=ASK,  # type: ignore[arg-type]
        tools=[CUSTOM_TEXT],  # type: ignore[list-item]
    )
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "custom" and call.id == "call_sh1"
    assert (call.custom.name, call.custom.input) == ("run_shell", "pytest -q tests")  # type: ignore[union-attr]
    usage = whole.usage
    assert usage is not None
    charged = before - gateway.balance_nano()
    assert charged == usage.prompt_tokens * MINI_IN + usage.completion_tokens * MINI_OUT

    chunks = list(
        sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=ASK,  # type: ignore[arg-type]
            tools=[CUSTOM_TEXT],  # type: ignore[list-item]
            stream=True,
        )
    )
    # as OpenAI streams a custom call (typed in newer SDKs; an extra field in 3.57's)
    pieces = [
        piece.model_dump(exclude_none=True)
        for chunk in chunks
        if chunk.choices
        for piece in chunk.choices[0].delta.tool_calls or []
    ]
    assert pieces[0] == {
        "index": 0,
        "id": "call_sh1",
        "type": "custom",
        "custom": {"name": "run_shell", "input": ""},
    }
    assert all(set(p) == {"index", "custom"} for p in pieces[1:]) and len(pieces) > 2
    assert "".join(p["custom"]["input"] for p in pieces) == "pytest -q tests"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_custom_tool_call_is_replayed(gateway: Gateway, caller: FakeUpstream) -> None:
    headers = {**gateway.headers(), "Idempotency-Key": "custom-1"}
    body = {"model": "gpt-4o-mini", "messages": ASK, "tools": [CUSTOM_TEXT]}
    url = gateway.url + "/v1/chat/completions"
    first = requests.post(url, headers=headers, json=body, timeout=30).json()
    again = requests.post(url, headers=headers, json=body, timeout=30).json()
    assert again["choices"] == first["choices"] and caller.calls == 1
    assert first["choices"][0]["message"]["tool_calls"] == [
        {
            "id": "call_sh1",
            "type": "custom",
            "custom": {"name": "run_shell", "input": "pytest -q tests"},
        }
    ]


def test_a_custom_call_in_the_history_is_forwarded(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_sh1", "type": "custom", "custom": {"name": "run_shell", "input": "ls"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_sh1", "content": "tests/"},
    ]
    response = post(gateway, {"model": "gpt-4o-mini", "messages": history, "tools": [CUSTOM_TEXT]})
    assert response.status_code == 200, response.text
    assert upstream.requests[-1]["messages"][1]["tool_calls"] == history[1]["tool_calls"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {
                "tool_choice": {
                    "type": "allowed_tools",
                    "allowed_tools": {"mode": "any", "tools": [FUNCTION]},
                }
            },
            "tool_choice.allowed_tools.mode",
        ),
        (
            {
                "tool_choice": {
                    "type": "allowed_tools",
                    "allowed_tools": {"mode": "auto", "tools": []},
                }
            },
            "tool_choice.allowed_tools.tools",
        ),
        ({"tool_choice": {"type": "allowed_tools"}}, "tool_choice"),
        ({"tool_choice": {"type": "custom", "function": {"name": "x"}}}, "tool_choice"),
        ({"tool_choice": {"type": "web_search"}}, "tool_choice.type"),
        ({"tools": [{"type": "custom", "custom": {"name": ""}}]}, "tools.0.custom.name"),
        (
            {"tools": [{"type": "custom", "custom": {"name": "x", "format": {"type": "regexp"}}}]},
            "tools.0.custom.format",
        ),
        ({"tools": [{"type": "custom", "function": FUNCTION["function"]}]}, "tools.0"),
    ],
)
def test_shapes_outside_the_reference_are_a_400_naming_them(
    gateway: Gateway, upstream: FakeUpstream, extra: dict[str, Any], param: str
) -> None:
    body = {"model": "gpt-4o-mini", "messages": ASK, "tools": [FUNCTION], **extra}
    response = post(gateway, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert upstream.calls == 0
