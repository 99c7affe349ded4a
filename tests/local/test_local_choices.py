"""``n`` > 1 and the newer tool shapes on the embedded default, offline, through the API with
the real ``openai`` client: n generations billed as n completions (the prompt once),
``allowed_tools`` enforced by the grammar, custom tools with free-form input called, and what
cannot be kept a 400 naming its param."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests

from tests.support.gateway import Gateway, running_gateway
from tests.support.structured import Strict

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
pytestmark = pytest.mark.slow

#: gpt-4o-mini's price, which the embedded default answers for (nano-dollars per token)
PROMPT_NANO, COMPLETION_NANO = 150, 600
STORY = [{"role": "user", "content": "Write a long story about a dragon."}]


class Weather(Strict):
    city: str


class Clock(Strict):
    timezone: str


TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {"name": name, "description": text, "parameters": model.model_json_schema()},
    }
    for name, model, text in [
        ("get_weather", Weather, "The weather in a city."),
        ("get_time", Clock, "The local time in a timezone."),
    ]
]
SHELL = {"type": "custom", "custom": {"name": "run_shell", "description": "Runs a command."}}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("local-choices")
    with running_gateway(
        tmp, f"sqlite+aiosqlite:///{tmp / 'gw.db'}", {}, [], local_default=True
    ) as gw:
        yield gw


def client_of(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key, max_retries=0)


def cost(usage: Any) -> int:
    return int(usage.prompt_tokens * PROMPT_NANO + usage.completion_tokens * COMPLETION_NANO)


def test_two_choices_are_two_generations_billed_as_two_completions(gateway: Gateway) -> None:
    client = client_of(gateway)
    one = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=STORY,
        max_completion_tokens=8,
        seed=1,  # type: ignore[arg-type]
    )
    before = gateway.balance_nano()
    two = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=STORY,  # type: ignore[arg-type]
        n=2,
        max_completion_tokens=8,
        temperature=0.9,
        seed=1,
    )
    assert [c.index for c in two.choices] == [0, 1]
    assert all(c.message.content for c in two.choices)  # each its own generation
    assert two.usage is not None and one.usage is not None
    assert two.usage.prompt_tokens == one.usage.prompt_tokens  # the prompt once
    # a story does not end within 8 tokens: each choice generated all 8
    assert [c.finish_reason for c in two.choices] == ["length", "length"]
    assert two.usage.completion_tokens == 16
    assert before - gateway.balance_nano() == cost(two.usage)
    rows = requests.get(gateway.url + "/api/usage/", headers=gateway.headers(), timeout=10)
    assert rows.json()["data"][0]["completion_tokens"] == 16
    assert gateway.idle_held_nano() == 0


def test_two_streamed_choices_carry_their_index(gateway: Gateway) -> None:
    before = gateway.balance_nano()
    chunks = list(
        client_of(gateway).chat.completions.create(
            model="gpt-4o-mini",
            messages=STORY,  # type: ignore[arg-type]
            n=2,
            max_completion_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    for chunk in chunks[:-1]:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert set(texts) == {0, 1} and all(texts.values())
    assert finishes == {0: "length", 1: "length"}
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 12
    assert before - gateway.balance_nano() == cost(usage)


def test_allowed_tools_required_calls_only_an_allowed_tool(gateway: Gateway) -> None:
    client = client_of(gateway)
    allowed = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "get_time"}}],
        },
    }
    for seed in range(3):
        before = gateway.balance_nano()
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "What is the weather in Paris?"}],
            tools=TOOLS,
            tool_choice=allowed,  # type: ignore[arg-type]
            max_completion_tokens=120,
            temperature=0.9,
            seed=seed,
        )
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls or []
        assert call.function.name == "get_time"  # type: ignore[union-attr]
        Clock.model_validate_json(call.function.arguments)  # type: ignore[union-attr]
        assert reply.usage is not None and before - gateway.balance_nano() == cost(reply.usage)


def test_a_custom_tool_with_free_text_input_is_called(gateway: Gateway) -> None:
    client = client_of(gateway)
    before = gateway.balance_nano()
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "List the files here."}],
        tools=[SHELL],  # type: ignore[list-item]
        tool_choice={"type": "custom", "custom": {"name": "run_shell"}},
        max_completion_tokens=120,
        seed=2,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "custom" and call.custom.name == "run_shell"  # type: ignore[union-attr]
    assert isinstance(call.custom.input, str)  # type: ignore[union-attr]
    assert reply.usage is not None and before - gateway.balance_nano() == cost(reply.usage)
    # the call and its result in the history: the next turn is answered
    history = [
        {"role": "user", "content": "List the files here."},
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "README.md"},
    ]
    final = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=history,  # type: ignore[arg-type]
        tools=[SHELL],  # type: ignore[list-item]
        tool_choice="none",
        max_completion_tokens=8,
    )
    assert final.choices[0].message.content


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        (
            {
                "tools": [
                    {
                        "type": "custom",
                        "custom": {
                            "name": "sql",
                            "format": {
                                "type": "grammar",
                                "grammar": {"syntax": "lark", "definition": 'start: "SELECT"'},
                            },
                        },
                    }
                ]
            },
            "tools",
        ),
        (
            {
                "tools": TOOLS,
                "tool_choice": {
                    "type": "allowed_tools",
                    "allowed_tools": {
                        "mode": "auto",
                        "tools": [{"type": "function", "function": {"name": "get_date"}}],
                    },
                },
            },
            "tool_choice",
        ),
    ],
)
def test_what_the_local_engine_cannot_keep_is_a_400(
    gateway: Gateway, extra: dict[str, Any], param: str
) -> None:
    before = gateway.balance_nano()
    response = requests.post(
        gateway.url + "/v1/chat/completions",
        headers=gateway.headers(),
        json={"model": "gpt-4o-mini", "messages": STORY, "max_completion_tokens": 8, **extra},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert gateway.balance_nano() == before and gateway.idle_held_nano() == 0
