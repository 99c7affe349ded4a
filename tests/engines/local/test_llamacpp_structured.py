"""Structured outputs and tool calls on the packaged SmolLM2-135M, enforced by grammars: every
answer parses and validates, within the request's ``max_tokens``, and the usage counts the
tools' text in the prompt.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import pytest
from pydantic import BaseModel

from minitoolai.chat.schemas import Message
from minitoolai.engines.base import ChatChunk, ChatParams
from minitoolai.engines.errors import EngineRejected
from minitoolai.engines.llamacpp import LlamaCppEngine, default_model_config
from minitoolai.engines.llamacpp.prompt import template_messages, tools_section
from tests.support.structured import Person, Strict

from .helpers import ask, collect, text_of

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
pytestmark = pytest.mark.slow


class Unit(StrEnum):
    celsius = "celsius"
    fahrenheit = "fahrenheit"


class Weather(Strict):
    city: str
    unit: Unit  # an enum argument


class Clock(Strict):
    timezone: str
    hours_ahead: int


def function(name: str, model: type[BaseModel], description: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": model.model_json_schema(),
        },
    }


TOOLS = [
    function("get_weather", Weather, "The weather in a city."),
    function("get_time", Clock, "The time in a timezone."),
]
ARGUMENTS = {"get_weather": Weather, "get_time": Clock}


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppEngine]:
    # the same prompt is asked many times: reusing its evaluation keeps the test fast
    eng = LlamaCppEngine(default_model_config().model_copy(update={"reuse_prefix": True}))
    yield eng
    asyncio.run(eng.aclose())


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": model.__name__, "schema": model.model_json_schema()},
    }


def sampled(question: str, seed: int, max_tokens: int = 400, **kw: Any) -> ChatParams:
    return ask(question, max_tokens=max_tokens, temperature=0.9, seed=seed, **kw)


def finish_of(chunks: list[ChatChunk]) -> str | None:
    return next(c.finish_reason for c in chunks if c.finish_reason)


def calls_of(chunks: list[ChatChunk]) -> list[Any]:
    return [part for c in chunks for part in c.tool_calls or []]


def usage_of(chunks: list[ChatChunk]) -> Any:
    usage = chunks[-1].usage
    assert usage is not None
    return usage


@pytest.mark.asyncio
async def test_json_schema_always_parses_and_validates(engine: LlamaCppEngine) -> None:
    # 8 seeds here; tests/local/test_local_tools_api.py runs 20 through the API and the SDK
    for seed in range(8):
        params = sampled(
            "Invent a person. Answer in JSON.", seed, response_format=json_schema(Person)
        )
        chunks = await collect(engine.stream(params))
        Person.model_validate_json(text_of(chunks))  # raises when broken or invalid
        assert finish_of(chunks) == "stop"
        assert usage_of(chunks).completion_tokens <= params.max_tokens


@pytest.mark.asyncio
async def test_json_schema_closes_within_a_small_budget(engine: LlamaCppEngine) -> None:
    """A smaller budget tightens the default bounds instead of cutting the JSON."""
    for seed in range(3):
        params = sampled(
            "Invent a person. Answer in JSON.", seed, 250, response_format=json_schema(Person)
        )
        chunks = await collect(engine.stream(params))
        Person.model_validate_json(text_of(chunks))
        assert usage_of(chunks).completion_tokens <= 250


@pytest.mark.asyncio
async def test_a_budget_too_small_for_the_schema_is_refused_before_generating(
    engine: LlamaCppEngine,
) -> None:
    params = sampled("Invent a person.", 0, 30, response_format=json_schema(Person))
    with pytest.raises(EngineRejected) as refused:
        await collect(engine.stream(params))
    assert refused.value.status == 400 and refused.value.param == "max_tokens"
    assert "max_tokens=30" in str(refused.value)


@pytest.mark.asyncio
async def test_json_object_always_parses(engine: LlamaCppEngine) -> None:
    for seed in range(6):
        params = sampled(
            "Describe a cat as a JSON object.", seed, 300, response_format={"type": "json_object"}
        )
        chunks = await collect(engine.stream(params))
        assert isinstance(json.loads(text_of(chunks)), dict)
        assert finish_of(chunks) == "stop"


@pytest.mark.asyncio
async def test_a_required_tool_call_always_has_valid_arguments(engine: LlamaCppEngine) -> None:
    for seed in range(10):
        params = sampled("What is the weather in Paris?", seed, tools=TOOLS, tool_choice="required")
        chunks = await collect(engine.stream(params))
        [call] = calls_of(chunks)
        assert call.index == 0 and call.id.startswith("call_")
        ARGUMENTS[call.name].model_validate_json(call.arguments)
        assert finish_of(chunks) == "tool_calls" and text_of(chunks) == ""


@pytest.mark.asyncio
async def test_a_named_tool_call_is_that_tool_with_valid_arguments(
    engine: LlamaCppEngine,
) -> None:
    choice = {"type": "function", "function": {"name": "get_time"}}
    for seed in range(4):
        params = sampled("What time is it in Tokyo?", seed, tools=TOOLS, tool_choice=choice)
        chunks = await collect(engine.stream(params))
        [call] = calls_of(chunks)
        assert call.name == "get_time"
        Clock.model_validate_json(call.arguments)
        assert finish_of(chunks) == "tool_calls"


@pytest.mark.asyncio
async def test_a_named_tool_that_is_not_offered_is_refused(engine: LlamaCppEngine) -> None:
    choice = {"type": "function", "function": {"name": "launch_rocket"}}
    with pytest.raises(EngineRejected) as refused:
        await collect(engine.stream(ask("Go.", tools=TOOLS, tool_choice=choice)))
    assert refused.value.param == "tool_choice"


@pytest.mark.asyncio
async def test_auto_answers_in_text_or_with_a_valid_call(engine: LlamaCppEngine) -> None:
    # what the tiny model chooses (text, so far) is in docs/local-structured-output.md
    for seed in range(4):
        params = sampled("What is the weather in Paris?", seed, 200, tools=TOOLS)
        chunks = await collect(engine.stream(params))
        calls = calls_of(chunks)
        if calls:
            [call] = calls
            ARGUMENTS[call.name].model_validate_json(call.arguments)
            assert finish_of(chunks) == "tool_calls" and text_of(chunks) == ""
        else:
            assert text_of(chunks).strip() and "<tool_call>" not in text_of(chunks)
            assert finish_of(chunks) in ("stop", "length")


@pytest.mark.asyncio
async def test_usage_counts_the_tools_text_in_the_prompt(engine: LlamaCppEngine) -> None:
    question = "What is the weather in Paris?"
    plain = await collect(engine.stream(ask(question, max_tokens=4)))
    offered = await collect(
        engine.stream(ask(question, max_tokens=300, tools=TOOLS, tool_choice="required"))
    )
    refused = await collect(
        engine.stream(ask(question, max_tokens=4, tools=TOOLS, tool_choice="none"))
    )
    functions = [t["function"] for t in TOOLS]
    asked = [Message(role="user", content=question)]
    assert usage_of(offered).prompt_tokens == len(engine._prompter.prepare(asked, functions).tokens)
    assert tools_section(functions) in engine._prompter.render(asked, functions)[0]
    assert usage_of(offered).prompt_tokens > usage_of(plain).prompt_tokens
    assert usage_of(refused).prompt_tokens == usage_of(plain).prompt_tokens  # none: not offered
    # the hold's count, given the tools, is the prompt the tools make
    assert engine.estimate_prompt_tokens(asked, TOOLS) == usage_of(offered).prompt_tokens
    # the call's tokens are what was generated: the marker and the JSON
    [call] = calls_of(offered)
    assert usage_of(offered).completion_tokens >= engine.count_tokens(
        '<tool_call>{"name":"' + call.name + '"'
    )


def two_step_history() -> list[Message]:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'},
    }
    return [
        Message(role="user", content="What is the weather in Paris?"),
        Message(role="assistant", content=None, tool_calls=[call]),
        Message(role="tool", tool_call_id="call_1", content='{"sky": "sunny", "celsius": 21}'),
    ]


def test_a_call_and_its_result_render_in_the_prompt() -> None:
    plain = template_messages(two_step_history(), "m", [t["function"] for t in TOOLS])
    assert [m["role"] for m in plain] == ["system", "user", "assistant", "user"]
    assert '{"name":"get_weather","description":"The weather in a city."' in plain[0]["content"]
    assert plain[2]["content"] == (
        '<tool_call>{"name":"get_weather","arguments":{"city":"Paris","unit":"celsius"}}'
    )
    assert plain[3]["content"] == (
        '<tool_response name="get_weather">\n{"sky": "sunny", "celsius": 21}\n</tool_response>'
    )


@pytest.mark.asyncio
async def test_after_a_tool_result_the_model_answers_in_text(engine: LlamaCppEngine) -> None:
    params = ChatParams(
        messages=two_step_history(),
        max_tokens=40,
        temperature=0.0,
        tools=TOOLS,
        tool_choice="none",
    )
    chunks = await collect(engine.stream(params))
    assert text_of(chunks).strip() and not calls_of(chunks)
    # the hold's count is the prompt's, with the call and result as rendered
    assert engine.estimate_prompt_tokens(two_step_history()) == usage_of(chunks).prompt_tokens
    assert finish_of(chunks) in ("stop", "length")
