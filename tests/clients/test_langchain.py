"""LangChain's ``ChatOpenAI`` through the gateway in front of an upstream that calls tools: a
two-tool agent loop with ``bind_tools`` (invoked and streamed), and ``with_structured_output``
by function calling and by JSON schema. Every charge is the usage LangChain reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from tests.clients.conftest import DEPLOYMENTS, database_url
from tests.clients.tools import ASK, CALLS, RESULTS, cost
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

pytest.importorskip("langchain_openai", reason="langchain-openai is not installed (dev extra)")

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI


@tool
def get_weather(city: str) -> str:
    """The weather in a city now."""
    return RESULTS["get_weather"]


@tool
def get_time(tz: str) -> str:
    """The local time in a timezone."""
    return RESULTS["get_time"]


LC_TOOLS = {t.name: t for t in (get_weather, get_time)}


class Forecast(BaseModel):
    """A city's forecast."""

    city: str
    celsius: int


FORECAST = Forecast(city="Rome", celsius=21)


def chat(gw: Gateway) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini", base_url=gw.url + "/v1", api_key=gw.api_key, max_retries=0
    )  # type: ignore[call-arg]


def usage_cost(message: BaseMessage) -> int:
    usage = message.usage_metadata  # type: ignore[attr-defined]
    return cost(
        {"prompt_tokens": usage["input_tokens"], "completion_tokens": usage["output_tokens"]}
    )


def calls_of(message: AIMessage) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c["id"], c["name"], c["args"]) for c in message.tool_calls]  # type: ignore[misc]


EXPECTED = [(c["id"], c["name"], orjson.loads(c["arguments"])) for c in CALLS]


def test_bind_tools_runs_a_two_tool_agent_loop(
    gateway_each_db: Gateway, upstream: FakeUpstream
) -> None:
    gw = gateway_each_db
    llm = chat(gw).bind_tools(list(LC_TOOLS.values()))
    before = gw.balance_nano()
    messages: list[BaseMessage] = [HumanMessage(ASK[0]["content"])]
    first = llm.invoke(messages)
    assert isinstance(first, AIMessage) and calls_of(first) == EXPECTED
    assert first.response_metadata["finish_reason"] == "tool_calls"
    messages.append(first)
    messages += [LC_TOOLS[call["name"]].invoke(call) for call in first.tool_calls]  # ToolMessages
    final = llm.invoke(messages)
    assert isinstance(final, AIMessage) and not final.tool_calls
    assert final.content == "".join(upstream.words())
    # LangChain's tool definitions reached the upstream unchanged, its history as it built it
    sent = upstream.requests[-1]
    assert orjson.dumps(sent["tools"]) == orjson.dumps(upstream.requests[0]["tools"])
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "get_time"]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool", "tool"]
    assert [m["tool_call_id"] for m in sent["messages"][2:]] == ["call_w1", "call_t2"]
    assert [m["content"] for m in sent["messages"][2:]] == list(RESULTS.values())
    assert before - gw.balance_nano() == usage_cost(first) + usage_cost(final)
    assert gw.idle_held_nano() == 0


def test_streamed_tool_calls_merge_into_the_whole_answer(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    llm = chat(gateway).bind_tools(list(LC_TOOLS.values()))
    whole = llm.invoke(ASK[0]["content"])
    before = gateway.balance_nano()
    merged: Any = None
    for chunk in llm.stream(ASK[0]["content"], stream_usage=True):
        merged = chunk if merged is None else merged + chunk
    assert isinstance(whole, AIMessage) and calls_of(whole) == EXPECTED
    assert calls_of(merged) == EXPECTED
    assert merged.usage_metadata == whole.usage_metadata
    assert before - gateway.balance_nano() == usage_cost(merged)


def test_structured_output_by_function_calling(tmp_path: Path) -> None:
    answer = [{"id": "call_f", "name": "Forecast", "arguments": FORECAST.model_dump_json()}]
    upstream = FakeUpstream(tool_calls=answer)
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {"up": upstream}, DEPLOYMENTS
    ) as gw:
        before = gw.balance_nano()
        structured = chat(gw).with_structured_output(
            Forecast, method="function_calling", include_raw=True
        )
        out = structured.invoke("The forecast for Rome?")
        charged = before - gw.balance_nano()
    assert out["parsed"] == FORECAST and out["parsing_error"] is None  # type: ignore[index]
    sent = upstream.requests[-1]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "Forecast"}}
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["city", "celsius"]
    assert charged == usage_cost(out["raw"])  # type: ignore[index]


@dataclass
class JsonAnswer(FakeUpstream):
    """Answers in text with ``text`` (a JSON object), streamed a few characters at a time."""

    text: str = ""

    def words(self, choice: int = 0) -> list[str]:
        return [self.text[i : i + 5] for i in range(0, len(self.text), 5)]


def test_structured_output_by_json_schema(tmp_path: Path) -> None:
    upstream = JsonAnswer(text=FORECAST.model_dump_json())
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {"up": upstream}, DEPLOYMENTS
    ) as gw:
        before = gw.balance_nano()
        structured = chat(gw).with_structured_output(
            Forecast, method="json_schema", include_raw=True
        )
        out = structured.invoke("The forecast for Rome?")
        charged = before - gw.balance_nano()
    assert out["parsed"] == FORECAST and out["parsing_error"] is None  # type: ignore[index]
    sent = upstream.requests[-1]
    assert "tools" not in sent
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Forecast"
    assert fmt["json_schema"]["schema"]["required"] == ["city", "celsius"]
    assert charged == usage_cost(out["raw"])  # type: ignore[index]
