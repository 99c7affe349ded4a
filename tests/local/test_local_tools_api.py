"""Tool calls and structured outputs on the embedded default, through the API with the real
``openai`` client, offline: ``parse()`` always gets a valid object and an agent loop runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.support.gateway import Gateway, running_gateway
from tests.support.structured import Person, Strict

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
pytestmark = pytest.mark.slow

#: gpt-4o-mini's price, which the embedded default answers for (nano-dollars per token)
PROMPT_NANO, COMPLETION_NANO = 150, 600


class Weather(Strict):
    city: str


class Clock(Strict):
    timezone: str


TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": model.model_json_schema(),
        },
    }
    for name, model, description in [
        ("get_weather", Weather, "The weather in a city."),
        ("get_time", Clock, "The local time in a timezone."),
    ]
]
ARGUMENTS: dict[str, type[BaseModel]] = {"get_weather": Weather, "get_time": Clock}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("local-tools")
    with running_gateway(
        tmp, f"sqlite+aiosqlite:///{tmp / 'gw.db'}", {}, [], local_default=True
    ) as gw:
        yield gw


def client_of(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key, max_retries=0)


def cost(usage: Any) -> int:
    return int(usage.prompt_tokens * PROMPT_NANO + usage.completion_tokens * COMPLETION_NANO)


def test_parse_gets_a_valid_object_every_time_billed_by_usage(gateway: Gateway) -> None:
    client = client_of(gateway)
    for seed in range(20):
        before = gateway.balance_nano()
        reply = client.chat.completions.parse(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Invent a person."}],
            response_format=Person,
            max_completion_tokens=400,
            temperature=0.9,
            seed=seed,
        )
        assert isinstance(reply.choices[0].message.parsed, Person)
        assert reply.usage is not None
        assert before - gateway.balance_nano() == cost(reply.usage)


def run_tool(name: str, arguments: str) -> str:
    args = ARGUMENTS[name].model_validate_json(arguments)  # raises when invalid
    if isinstance(args, Weather):
        return json.dumps({"city": args.city, "sky": "sunny", "celsius": 21})
    assert isinstance(args, Clock)
    return json.dumps({"timezone": args.timezone, "time": "14:05"})


def test_an_offline_agent_loop_calls_tools_and_answers(gateway: Gateway) -> None:
    """Two calls (each tool named in turn), their results, then the model's own choice until
    it answers in text (SmolLM2 answers in text under ``auto``; ``none`` ends the loop)."""
    client = client_of(gateway)
    messages: list[Any] = [
        {"role": "user", "content": "What is the weather in Paris, and what time is it there?"}
    ]
    before = gateway.balance_nano()
    charged = 0
    called: list[str] = []
    named = [{"type": "function", "function": {"name": n}} for n in ("get_weather", "get_time")]
    for step, choice in enumerate([*named, "auto", "none"]):
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            tools=TOOLS,
            tool_choice=choice,  # type: ignore[arg-type]
            max_completion_tokens=200,
            temperature=0.7,
            seed=step,
        )
        assert reply.usage is not None
        charged += cost(reply.usage)
        message = reply.choices[0].message
        if not message.tool_calls:
            assert step >= len(named)  # a named tool_choice always calls
            break
        assert reply.choices[0].finish_reason == "tool_calls"
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            assert call.type == "function"
            called.append(call.function.name)
            result = run_tool(call.function.name, call.function.arguments)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    assert called[:2] == ["get_weather", "get_time"] and set(called) <= set(ARGUMENTS)
    assert message.content and not message.tool_calls  # the loop ended with words
    assert before - gateway.balance_nano() == charged


def test_a_streamed_local_call_arrives_as_tool_call_deltas(gateway: Gateway) -> None:
    client = client_of(gateway)
    before = gateway.balance_nano()
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What time is it in Tokyo?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        max_completion_tokens=200,
        stream=True,
        stream_options={"include_usage": True},
        seed=3,
    )
    names, arguments, finishes, usage = [], "", [], None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finishes += [choice.finish_reason] if choice.finish_reason else []
            for delta in choice.delta.tool_calls or []:
                names += [delta.function.name] if delta.function and delta.function.name else []
                arguments += (delta.function.arguments or "") if delta.function else ""
    assert names == ["get_time"] and finishes == ["tool_calls"]
    Clock.model_validate_json(arguments)
    assert usage is not None and before - gateway.balance_nano() == cost(usage)


def test_many_tools_and_a_system_turn_are_held_for_what_the_template_renders(
    gateway: Gateway,
) -> None:
    """The local template writes the tools out longer than their JSON (instructions and
    all), so the hold must be the template's own count: the charge is then the usage shown,
    never capped below it."""
    tools = [
        {
            "type": "function",
            "function": {
                "name": f"lookup_{i}",
                "description": f"Looks up fact number {i} about a city, with care and detail.",
                "parameters": Weather.model_json_schema(),
            },
        }
        for i in range(16)
    ]
    before = gateway.balance_nano()
    reply = client_of(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are a careful assistant. " * 20},
            {"role": "user", "content": "Look up a fact about Rome."},
        ],
        tools=tools,  # type: ignore[arg-type]
        tool_choice="required",
        max_completion_tokens=100,
        temperature=0.0,
    )
    assert reply.usage is not None and reply.choices[0].message.tool_calls
    assert before - gateway.balance_nano() == cost(reply.usage)
