"""What the client-library tests share: two tools, the calls the fake upstream makes to them,
what the tools answer, and the price the charges are checked against."""

from __future__ import annotations

from typing import Any

MINI_IN, MINI_OUT = 150, 600  # gpt-4o-mini, nano-dollars per token

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city now.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The local time in a timezone.",
            "parameters": {
                "type": "object",
                "properties": {"tz": {"type": "string"}},
                "required": ["tz"],
                "additionalProperties": False,
            },
        },
    },
]
CALLS = [
    {"id": "call_w1", "name": "get_weather", "arguments": '{"city": "Rome"}'},
    {"id": "call_t2", "name": "get_time", "arguments": '{"tz": "Europe/Rome"}'},
]
RESULTS = {"get_weather": '{"celsius": 21}', "get_time": '"14:05"'}
ASK = [{"role": "user", "content": "Weather and time in Rome?"}]


def cost(usage: dict[str, int]) -> int:
    """What gpt-4o-mini's usage costs, in nano-dollars."""
    return usage["prompt_tokens"] * MINI_IN + usage["completion_tokens"] * MINI_OUT
