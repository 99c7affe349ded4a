"""``n`` > 1 through an upstream, with the official openai SDK: every choice whole and streamed
(each with its own index, deltas and finish), one usage that is exactly the charge, a hold for
``n`` completions, replays of every choice, the seed's endpoint, and the limit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import requests

from minitoolai.catalog import CHAT_MAX_CHOICES
from tests.chat.conftest import database_url
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

MINI_IN, MINI_OUT = 150, 600  # gpt-4o-mini, nano-dollars per token
ASK = [{"role": "user", "content": "Say five words, three ways."}]


def client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key, max_retries=0)


def cost(usage: Any) -> int:
    return int(usage.prompt_tokens * MINI_IN + usage.completion_tokens * MINI_OUT)


def last_charge(gw: Gateway) -> dict[str, Any]:
    rows = requests.get(gw.url + "/api/usage/", headers=gw.headers(), timeout=10).json()["data"]
    row: dict[str, Any] = rows[0]
    return row


def nano(usd: str) -> int:
    return int(Decimal(usd) * 1_000_000_000)


def test_three_choices_whole_billed_as_their_usage(
    gateway_each_db: Gateway, upstream: FakeUpstream
) -> None:
    gw = gateway_each_db
    before = gw.balance_nano()
    reply = client(gw).chat.completions.create(model="gpt-4o-mini", messages=ASK, n=3)  # type: ignore[arg-type]
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert [c.message.content for c in reply.choices] == [
        "".join(upstream.words(c)) for c in range(3)
    ]
    assert {c.finish_reason for c in reply.choices} == {"stop"}
    assert upstream.requests[-1]["n"] == 3
    # the prompt once, every choice's completion (as the upstream reported them)
    assert reply.usage is not None and reply.usage.completion_tokens == 3 * upstream.chunks
    charge = last_charge(gw)
    assert nano(charge["cost"]) == cost(reply.usage) == before - gw.balance_nano()
    assert charge["completion_tokens"] == 3 * upstream.chunks and charge["estimated"] is False
    assert gw.idle_held_nano() == 0


def test_three_choices_streamed_each_with_its_index(
    gateway_each_db: Gateway, upstream: FakeUpstream
) -> None:
    gw = gateway_each_db
    before = gw.balance_nano()
    chunks = list(
        client(gw).chat.completions.create(
            model="gpt-4o-mini",
            messages=ASK,  # type: ignore[arg-type]
            n=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    texts = {0: "", 1: "", 2: ""}
    roles: dict[int, int] = {}
    finishes: dict[int, str] = {}
    for chunk in chunks[:-1]:
        assert len(chunk.choices) == 1 and chunk.usage is None
        choice = chunk.choices[0]
        texts[choice.index] += choice.delta.content or ""
        if choice.delta.role:
            roles[choice.index] = roles.get(choice.index, 0) + 1
        if choice.finish_reason:
            assert choice.index not in finishes  # one finish chunk per choice
            finishes[choice.index] = choice.finish_reason
    assert texts == {c: "".join(upstream.words(c)) for c in range(3)}
    assert roles == {0: 1, 1: 1, 2: 1}  # each choice's first delta names the role, once
    assert finishes == {0: "stop", 1: "stop", 2: "stop"}
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert usage.completion_tokens == 3 * upstream.chunks
    assert nano(last_charge(gw)["cost"]) == cost(usage) == before - gw.balance_nano()


def test_the_sdk_stream_helper_reassembles_every_choice(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    sdk = client(gateway)
    whole = sdk.chat.completions.create(model="gpt-4o-mini", messages=ASK, n=3)  # type: ignore[arg-type]
    with sdk.chat.completions.stream(
        model="gpt-4o-mini",
        messages=ASK,  # type: ignore[arg-type]
        n=3,
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    assert [c.message.content for c in final.choices] == [c.message.content for c in whole.choices]
    assert final.usage is not None and final.usage.model_dump() == whole.usage.model_dump()  # type: ignore[union-attr]


def test_a_single_choice_is_unchanged(gateway: Gateway, upstream: FakeUpstream) -> None:
    reply = client(gateway).chat.completions.create(model="gpt-4o-mini", messages=ASK, n=1)  # type: ignore[arg-type]
    assert len(reply.choices) == 1 and "n" not in upstream.requests[-1]
    lines = requests.post(
        gateway.url + "/v1/chat/completions",
        headers=gateway.headers(),
        json={"model": "gpt-4o-mini", "messages": ASK, "stream": True},
        timeout=30,
    ).text.split("\n\n")
    events = [orjson.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert {e["choices"][0]["index"] for e in events} == {0}


def test_the_hold_covers_every_choice(tmp_path: Path, upstream: FakeUpstream) -> None:
    deps: list[dict[str, object]] = [{"model": "gpt-4o", "provider": "up"}]
    # gpt-4o: US$10 per 1M completion tokens: 100 tokens hold US$0.001, three choices US$0.003
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {"up": upstream}, deps, credit="0.002"
    ) as gw:
        body = {"model": "gpt-4o", "messages": ASK, "max_completion_tokens": 100, "stream": False}
        url = gw.url + "/v1/chat/completions"
        refused = requests.post(url, headers=gw.headers(), json={**body, "n": 3}, timeout=30)
        assert refused.status_code == 402, refused.text
        assert refused.json()["error"]["type"] == "insufficient_quota"
        assert upstream.calls == 0 and gw.idle_held_nano() == 0 and gw.balance_nano() == 2_000_000
        one = requests.post(url, headers=gw.headers(), json=body, timeout=30)
        assert one.status_code == 200 and upstream.calls == 1


def test_a_replay_gives_every_choice_again(gateway: Gateway, upstream: FakeUpstream) -> None:
    headers = {**gateway.headers(), "Idempotency-Key": "choices-whole"}
    body = {"model": "gpt-4o-mini", "messages": ASK, "n": 2, "stream": False}
    url = gateway.url + "/v1/chat/completions"
    before = gateway.balance_nano()
    first = requests.post(url, headers=headers, json=body, timeout=30).json()
    charged = before - gateway.balance_nano()
    assert [c["message"]["content"] for c in first["choices"]] == [
        "".join(upstream.words(c)) for c in range(2)
    ]
    again = requests.post(url, headers=headers, json=body, timeout=30).json()
    assert again["choices"] == first["choices"] and again["id"] == first["id"]
    assert again["usage"] == first["usage"]
    assert upstream.calls == 1 and gateway.balance_nano() == before - charged
    usage = first["usage"]
    assert charged == usage["prompt_tokens"] * MINI_IN + usage["completion_tokens"] * MINI_OUT


def test_a_streamed_answer_is_replayed_with_every_choice(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    headers = {**gateway.headers(), "Idempotency-Key": "choices-stream"}
    body = {"model": "gpt-4o-mini", "messages": ASK, "n": 2}
    url = gateway.url + "/api/chat-completions/"

    def texts() -> tuple[dict[int, str], dict[str, Any]]:
        lines = requests.post(url, headers=headers, json=body, timeout=30).text.split("\n\n")
        events = [orjson.loads(line[6:]) for line in lines if line.startswith("data: {")]
        said: dict[int, str] = {}
        for event in events[:-1]:
            for choice in event["choices"]:
                said[choice["index"]] = said.get(choice["index"], "") + (
                    choice["delta"].get("content") or ""
                )
        return said, events[-1]["usage"]

    before = gateway.balance_nano()
    said, usage = texts()
    charged = before - gateway.balance_nano()
    assert said == {c: "".join(upstream.words(c)) for c in range(2)}
    assert charged == usage["prompt_tokens"] * MINI_IN + usage["completion_tokens"] * MINI_OUT
    replayed, replayed_usage = texts()
    assert replayed == said and replayed_usage == usage
    assert upstream.calls == 1 and gateway.balance_nano() == before - charged


def test_the_seed_endpoint_streams_every_choice(gateway: Gateway, upstream: FakeUpstream) -> None:
    body = {"model": "gpt-4o-mini", "messages": ASK, "n": 2}
    lines = requests.post(
        gateway.url + "/api/chat-completions/", headers=gateway.headers(), json=body, timeout=30
    ).text.split("\n\n")
    assert lines[-2] == "data: [DONE]"
    events = [orjson.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert all("role" not in c["delta"] for e in events for c in e["choices"])  # the seed's
    finishes = [c for e in events for c in e["choices"] if c["finish_reason"]]
    assert [(c["index"], c["finish_reason"]) for c in finishes] == [(0, "stop"), (1, "stop")]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 10


def test_estimated_bill_counts_the_prompt_once_and_every_choice(tmp_path: Path) -> None:
    quiet = FakeUpstream(send_usage=False)
    deps: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(tmp_path, database_url("sqlite", tmp_path), {"up": quiet}, deps) as gw:
        from minitoolai.chat.tokens import count_messages, count_text

        before = gw.balance_nano()
        chunks = list(
            client(gw).chat.completions.create(
                model="gpt-4o-mini",
                messages=ASK,  # type: ignore[arg-type]
                n=2,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        usage = chunks[-1].usage
        assert usage is not None
        completion = sum(count_text("".join(quiet.words(c))) for c in range(2))
        assert usage.prompt_tokens == count_messages(ASK)
        assert usage.completion_tokens == completion
        charge = last_charge(gw)
        assert charge["estimated"] is True
        assert nano(charge["cost"]) == cost(usage) == before - gw.balance_nano()


@pytest.mark.parametrize("n", [0, CHAT_MAX_CHOICES + 1, 128])
def test_n_outside_the_limit_is_a_400_naming_n(
    gateway: Gateway, upstream: FakeUpstream, n: int
) -> None:
    response = requests.post(
        gateway.url + "/v1/chat/completions",
        headers=gateway.headers(),
        json={"model": "gpt-4o-mini", "messages": ASK, "n": n},
        timeout=10,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "n" and upstream.calls == 0
    if n > CHAT_MAX_CHOICES:
        assert str(CHAT_MAX_CHOICES) in error["message"]


def test_every_choice_keeps_its_tool_calls(tmp_path: Path) -> None:
    calls = [{"id": "call_1", "name": "get_time", "arguments": '{"tz": "UTC"}'}]
    caller = FakeUpstream(tool_calls=calls)
    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {}}}]
    deps: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(tmp_path, database_url("sqlite", tmp_path), {"up": caller}, deps) as gw:
        sdk = client(gw)
        whole = sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=ASK,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
            n=2,
        )
        with sdk.chat.completions.stream(
            model="gpt-4o-mini",
            messages=ASK,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
            n=2,
        ) as stream:
            final = stream.get_final_completion()
        for reply in (whole, final):
            assert [c.finish_reason for c in reply.choices] == ["tool_calls", "tool_calls"]
            for choice in reply.choices:
                made = choice.message.tool_calls or []
                assert [(c.id, c.function.arguments) for c in made] == [  # type: ignore[union-attr]
                    ("call_1", '{"tz": "UTC"}')
                ]
