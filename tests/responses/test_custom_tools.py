"""Custom tools on the Responses API, with the real ``openai`` SDK: offered in the flat shape
(free text or a grammar), named by ``tool_choice`` or ``allowed_tools``, called as
``custom_tool_call`` items (streamed as ``response.custom_tool_call_input.*``), answered by
``custom_tool_call_output``; translated to chat's custom tools, or passed through unchanged to
an upstream that speaks Responses. Billed as the usage shown, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from tests.conftest import BACKENDS, POSTGRES_URL
from tests.responses.conftest import client_of, cost
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

WORDS = "w0 w1 w2 w3 w4 "
CALL = {"type": "custom", "id": "call_sql1", "name": "run_sql", "input": "SELECT 1;"}
GRAMMAR: Any = {"type": "grammar", "syntax": "regex", "definition": "SELECT [0-9]+;"}
TOOLS: Any = [
    {"type": "custom", "name": "run_sql", "description": "Run one query.", "format": GRAMMAR},
    {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}},
]


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("custom")
    url = POSTGRES_URL if request.param == "postgres" else f"sqlite+aiosqlite:///{tmp / 'gw.db'}"
    upstreams = {"chat": FakeUpstream(tool_calls=[CALL]), "pt": FakeUpstream(tool_calls=[CALL])}
    translated: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "chat"}]
    passed = '\n[[deployments]]\nmodel = "gpt-4o"\nprovider = "pt"\nresponses = true\n'
    with running_gateway(tmp, url, upstreams, translated, extra_toml=passed) as gw:
        yield gw


def test_a_custom_tool_round_trip_translated_to_chat(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    chat = gateway.upstreams["chat"]
    before = gateway.balance_nano()
    first = sdk.responses.create(
        model="gpt-4o-mini",
        input="How many rows?",
        tools=TOOLS,
        tool_choice={"type": "custom", "name": "run_sql"},
    )
    sent = chat.requests[-1]
    assert sent["tools"][0] == {
        "type": "custom",
        "custom": {
            "name": "run_sql",
            "description": "Run one query.",
            "format": {
                "type": "grammar",
                "grammar": {"definition": "SELECT [0-9]+;", "syntax": "regex"},
            },
        },
    }
    assert sent["tool_choice"] == {"type": "custom", "custom": {"name": "run_sql"}}
    [call] = first.output
    assert call.type == "custom_tool_call" and call.id.startswith("ctc_")
    assert (call.call_id, call.name, call.input) == ("call_sql1", "run_sql", "SELECT 1;")
    assert first.tool_choice.type == "custom"  # type: ignore[union-attr]
    assert first.usage is not None
    assert before - gateway.balance_nano() == cost("gpt-4o-mini", first.usage)

    answer = [{"type": "custom_tool_call_output", "call_id": "call_sql1", "output": "42"}]
    final = sdk.responses.create(
        model="gpt-4o-mini", input=answer, previous_response_id=first.id, tools=TOOLS
    )
    assert final.output_text == WORDS
    assert chat.requests[-1]["messages"][1:] == [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_sql1",
                    "type": "custom",
                    "custom": {"name": "run_sql", "input": "SELECT 1;"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_sql1", "content": "42"},
    ]
    # replayed by the client instead of previous_response_id: the same conversation
    replayed = [item.model_dump(exclude_none=True) for item in first.output]
    again = sdk.responses.create(
        model="gpt-4o-mini",
        input=[{"role": "user", "content": "How many rows?"}, *replayed, *answer],
        tools=TOOLS,
    )
    assert again.output_text == WORDS
    assert chat.requests[-1]["messages"] == chat.requests[-2]["messages"]


def test_a_streamed_custom_call_equals_the_whole_one(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    whole = sdk.responses.create(model="gpt-4o-mini", input="Rows?", tools=TOOLS, store=False)
    with sdk.responses.stream(
        model="gpt-4o-mini", input="Rows?", tools=TOOLS, store=False
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    pieces = [e for e in events if e.type == "response.custom_tool_call_input.delta"]
    assert len(pieces) > 1 and "".join(p.delta for p in pieces) == "SELECT 1;"
    [done] = [e for e in events if e.type == "response.custom_tool_call_input.done"]
    assert done.input == "SELECT 1;"  # type: ignore[union-attr]
    strip = {"id"}
    assert final.output[0].model_dump(exclude=strip) == whole.output[0].model_dump(exclude=strip)


def test_allowed_tools_become_chats(gateway: Gateway) -> None:
    choice: Any = {
        "type": "allowed_tools",
        "mode": "required",
        "tools": [{"type": "custom", "name": "run_sql"}, {"type": "function", "name": "get_time"}],
    }
    client_of(gateway).responses.create(
        model="gpt-4o-mini", input="Go.", tools=TOOLS, tool_choice=choice
    )
    assert gateway.upstreams["chat"].requests[-1]["tool_choice"] == {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [
                {"type": "custom", "custom": {"name": "run_sql"}},
                {"type": "function", "function": {"name": "get_time"}},
            ],
        },
    }


def test_a_choice_must_name_an_offered_tool(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    for choice in (
        {"type": "custom", "name": "get_time"},  # offered, but as a function
        {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "custom", "name": "nope"}]},
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.responses.create(
                model="gpt-4o-mini",
                input="x",
                tools=TOOLS,
                tool_choice=choice,  # type: ignore[arg-type]
            )
        assert refused.value.body["param"] == "tool_choice"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.responses.create(
            model="gpt-4o-mini",
            input="x",
            tools=[
                {
                    "type": "custom",
                    "name": "t",
                    "format": {"type": "grammar", "syntax": "ebnf", "definition": "x"},
                }
            ],  # type: ignore[list-item]
        )
    assert bad.value.body["param"] == "tools.0.format.syntax"  # type: ignore[index]


def test_a_custom_tool_passed_through_unchanged(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    pt = gateway.upstreams["pt"]
    before = gateway.balance_nano()
    with sdk.responses.stream(model="gpt-4o", input="Rows?", tools=TOOLS) as stream:
        events = list(stream)
        first = stream.get_final_response()
    assert orjson.dumps(pt.responses_requests[-1]["tools"]) == orjson.dumps(TOOLS)
    assert any(e.type == "response.custom_tool_call_input.delta" for e in events)
    [call] = first.output
    assert call.type == "custom_tool_call" and call.id == "ctc_up0" and call.input == "SELECT 1;"
    assert first.usage is not None
    assert before - gateway.balance_nano() == cost("gpt-4o", first.usage)
    answer = [{"type": "custom_tool_call_output", "call_id": "call_sql1", "output": "42"}]
    final = sdk.responses.create(
        model="gpt-4o", input=answer, previous_response_id=first.id, tools=TOOLS
    )
    assert final.output_text == WORDS
    assert pt.responses_requests[-1]["input"] == [
        {"type": "message", "role": "user", "content": "Rows?"},
        {
            "type": "custom_tool_call",
            "call_id": "call_sql1",
            "name": "run_sql",
            "input": "SELECT 1;",
        },
        *answer,
    ]
