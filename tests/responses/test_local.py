"""The Responses API offline, on the embedded llama.cpp default, with the real ``openai``
SDK: a whole and a streamed answer continuing it, a named function call and its result, and
the usage shown equal to the charge. Generations are kept short: the machine is slow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.responses.conftest import client_of, cost, last_charge_nano
from tests.support.gateway import Gateway, running_gateway

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
pytestmark = pytest.mark.slow

WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("local-responses")
    with running_gateway(
        tmp, f"sqlite+aiosqlite:///{tmp / 'gw.db'}", {}, [], local_default=True
    ) as gw:
        yield gw


def test_an_offline_answer_then_a_streamed_one_that_continues_it(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    before = gateway.balance_nano()
    first = sdk.responses.create(
        model="gpt-4o-mini",
        input="Name a colour.",
        instructions="Answer in one word.",
        max_output_tokens=16,
        temperature=0.0,
    )
    assert first.status in ("completed", "incomplete") and first.output_text
    assert first.usage is not None and first.usage.output_tokens <= 16
    assert before - gateway.balance_nano() == cost("gpt-4o-mini", first.usage)
    assert last_charge_nano(gateway) == cost("gpt-4o-mini", first.usage)

    middle = gateway.balance_nano()
    with sdk.responses.stream(
        model="gpt-4o-mini",
        input="Another one.",
        previous_response_id=first.id,
        max_output_tokens=16,
        temperature=0.0,
    ) as stream:
        events = list(stream)
    last = events[-1]
    assert last.type in ("response.completed", "response.incomplete")
    final = last.response  # type: ignore[union-attr]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas and final.output[0].content[0].text == deltas
    assert [e.sequence_number for e in events] == list(range(len(events)))
    # the continued conversation was in the prompt: it is longer than the new turn alone
    assert final.usage.input_tokens > first.usage.input_tokens
    assert middle - gateway.balance_nano() == cost("gpt-4o-mini", final.usage)


def test_an_offline_function_call_round_trip(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    before = gateway.balance_nano()
    called = sdk.responses.create(
        model="gpt-4o-mini",
        input="What is the weather in Paris?",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        max_output_tokens=160,  # what the grammar needs to always close the JSON
        temperature=0.0,
    )
    [call] = [item for item in called.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.call_id
    arguments = json.loads(call.arguments)  # the grammar makes it valid JSON of the schema
    assert set(arguments) == {"city"} and isinstance(arguments["city"], str)
    assert called.usage is not None
    charged = cost("gpt-4o-mini", called.usage)

    answered = sdk.responses.create(
        model="gpt-4o-mini",
        input=[
            {
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": json.dumps({"sky": "sunny", "celsius": 21}),
            }
        ],
        previous_response_id=called.id,
        tools=[WEATHER],
        tool_choice="none",
        max_output_tokens=16,
        temperature=0.0,
    )
    assert answered.output_text and not [i for i in answered.output if i.type != "message"]
    assert answered.usage is not None
    charged += cost("gpt-4o-mini", answered.usage)
    assert before - gateway.balance_nano() == charged
