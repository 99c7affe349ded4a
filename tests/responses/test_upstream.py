"""The Responses API through an upstream, with the real ``openai`` SDK: whole and streamed
answers, ``previous_response_id``, stored responses, a function call round trip, structured
output, and the usage the client sees equal to what it was charged, on both databases."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from tests.responses.conftest import CALLS, client_of, cost, last_charge_nano, other_account
from tests.support.gateway import Gateway

WORDS = "w0 w1 w2 w3 w4 "  # what the fake upstream says

TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
    {
        "type": "function",
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
]


def test_create_answers_billed_by_the_usage_it_shows(gateway: Gateway) -> None:
    up = gateway.upstreams["up"]
    before = gateway.balance_nano()
    reply = client_of(gateway).responses.create(
        model="gpt-4o-mini",
        input="Say something.",
        instructions="Be brief.",
        max_output_tokens=50,
        temperature=0.5,
        metadata={"ticket": "42"},
        user="u-1",
    )
    assert reply.object == "response" and reply.id.startswith("resp_")
    assert reply.status == "completed" and reply.incomplete_details is None
    assert reply.output_text == WORDS
    [message] = reply.output
    assert message.type == "message" and message.role == "assistant"
    assert message.status == "completed" and message.id.startswith("msg_")
    assert reply.model == "gpt-4o-mini-2024-07-18"
    assert reply.metadata == {"ticket": "42"} and reply.instructions == "Be brief."
    assert reply.max_output_tokens == 50 and reply.temperature == 0.5 and reply.store is True
    usage = reply.usage
    assert usage is not None and usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.output_tokens == 5 and usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    # the upstream was asked a chat completion: instructions first, as a system message
    sent = up.requests[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say something."},
    ]
    assert sent["max_completion_tokens"] == 50 and sent["temperature"] == 0.5
    assert sent["user"] == "u-1" and "metadata" not in sent and "store" not in sent
    charged = before - gateway.balance_nano()
    assert charged == cost("gpt-4o-mini", usage) == last_charge_nano(gateway)
    assert gateway.idle_held_nano() == 0


def test_stream_events_are_openais_and_the_sdk_assembles_them(gateway: Gateway) -> None:
    before = gateway.balance_nano()
    with client_of(gateway).responses.stream(
        model="gpt-4o-mini", input=[{"role": "user", "content": "Hi"}]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert "".join(d.delta for d in deltas) == WORDS
    assert {(d.item_id, d.output_index, d.content_index) for d in deltas} == {
        (final.output[0].id, 0, 0)
    }
    created = events[0]
    assert created.response.status == "in_progress" and created.response.id == final.id
    assert final.status == "completed" and final.output_text == WORDS
    assert final.usage is not None
    assert before - gateway.balance_nano() == cost("gpt-4o-mini", final.usage)
    assert last_charge_nano(gateway) == cost("gpt-4o-mini", final.usage)
    assert gateway.upstreams["up"].requests[-1]["stream"] is True
    # a streamed response is stored as the client assembled it
    stored = client_of(gateway).responses.retrieve(final.id)
    assert stored.output_text == WORDS and stored.usage == final.usage


def test_previous_response_id_carries_the_conversation(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    first = sdk.responses.create(model="gpt-4o-mini", input="My name is Ada.", instructions="A")
    second = sdk.responses.create(
        model="gpt-4o-mini",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "My name?"}]}],
        previous_response_id=first.id,
        instructions="B",
    )
    assert second.previous_response_id == first.id
    # the earlier turns reached the upstream; the earlier instructions did not (OpenAI's rule)
    assert gateway.upstreams["up"].requests[-1]["messages"] == [
        {"role": "system", "content": "B"},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": WORDS},
        {"role": "user", "content": [{"type": "text", "text": "My name?"}]},
    ]
    with sdk.responses.stream(
        model="gpt-4o-mini", input="And again?", previous_response_id=second.id
    ) as stream:
        third = stream.get_final_response()
    assert [m["role"] for m in gateway.upstreams["up"].requests[-1]["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert third.previous_response_id == second.id


def test_retrieve_and_delete_are_per_account(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    made = sdk.responses.create(model="gpt-4o-mini", input="Keep this.")
    assert sdk.responses.retrieve(made.id).model_dump() == made.model_dump()
    stranger = client_of(gateway, other_account(gateway))
    with pytest.raises(openai.NotFoundError):
        stranger.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError) as refused:
        stranger.responses.create(model="gpt-4o-mini", input="x", previous_response_id=made.id)
    assert refused.value.body["param"] == "previous_response_id"  # type: ignore[index]
    sdk.responses.delete(made.id)  # the owner's delete works, once
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.delete(made.id)


def test_store_false_keeps_nothing(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    reply = sdk.responses.create(model="gpt-4o-mini", input="Forget this.", store=False)
    assert reply.store is False and reply.output_text == WORDS
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(reply.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model="gpt-4o-mini", input="x", previous_response_id=reply.id)


def test_a_function_call_round_trip(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    up = gateway.upstreams["up"]
    before = gateway.balance_nano()
    first = sdk.responses.create(
        model="gpt-4o-mini",
        input="Weather and time in Rome?",
        tools=TOOLS,
        tool_choice="auto",
        parallel_tool_calls=True,
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        (c["id"], c["name"], c["arguments"]) for c in CALLS
    ]
    assert all(c.id and c.id.startswith("fc_") and c.status == "completed" for c in calls)
    assert first.output_text == "" and first.status == "completed"
    # the upstream got chat's tools: the flat definitions wrapped, in the client's order
    sent = up.requests[-1]
    assert sent["tools"] == [
        {"type": "function", "function": {k: v for k, v in t.items() if k != "type"}} for t in TOOLS
    ]
    assert sent["tool_choice"] == "auto" and sent["parallel_tool_calls"] is True
    assert first.usage is not None
    assert before - gateway.balance_nano() == cost("gpt-4o-mini", first.usage)

    results = [
        {"type": "function_call_output", "call_id": "call_w1", "output": '{"celsius": 21}'},
        {"type": "function_call_output", "call_id": "call_t2", "output": '"14:05"'},
    ]
    middle = gateway.balance_nano()
    final = sdk.responses.create(
        model="gpt-4o-mini", input=results, previous_response_id=first.id, tools=TOOLS
    )
    assert final.output_text == WORDS
    messages = up.requests[-1]["messages"]
    assert messages[1] == {  # chat's nulls are not sent
        "role": "assistant",
        "tool_calls": [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in CALLS
        ],
    }
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "call_w1", "content": '{"celsius": 21}'},
        {"role": "tool", "tool_call_id": "call_t2", "content": '"14:05"'},
    ]
    assert final.usage is not None
    assert middle - gateway.balance_nano() == cost("gpt-4o-mini", final.usage)

    # the same turn without previous_response_id: the client replays the output items
    replayed = [item.model_dump(exclude_none=True) for item in first.output]
    again = sdk.responses.create(
        model="gpt-4o-mini",
        input=[{"role": "user", "content": "Weather and time in Rome?"}, *replayed, *results],
        tools=TOOLS,
    )
    assert again.output_text == WORDS
    assert up.requests[-1]["messages"] == messages


def test_streamed_calls_equal_the_whole_answer(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    whole = sdk.responses.create(model="gpt-4o-mini", input="Rome?", tools=TOOLS, store=False)
    with sdk.responses.stream(
        model="gpt-4o-mini", input="Rome?", tools=TOOLS, store=False
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()

    def calls(reply: Any) -> list[tuple[str, str, str, str]]:
        return [(i.id, i.call_id, i.name, i.arguments) for i in reply.output]

    assert [c[1:] for c in calls(final)] == [c[1:] for c in calls(whole)]
    assert [c[1:] for c in calls(final)] == [(c["id"], c["name"], c["arguments"]) for c in CALLS]
    pieces = [e for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(pieces) > len(CALLS)  # the arguments came in pieces
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [(d.item_id, d.arguments) for d in done] == [(c[0], c[3]) for c in calls(final)]
    assert events[-1].type == "response.completed"


def test_text_format_json_schema_reaches_the_upstream(gateway: Gateway) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    }
    client_of(gateway).responses.create(
        model="gpt-4o-mini",
        input="A name.",
        text={
            "format": {"type": "json_schema", "name": "person", "schema": schema, "strict": True}
        },
    )
    assert gateway.upstreams["up"].requests[-1]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": schema, "strict": True},
    }
    client_of(gateway).responses.create(
        model="gpt-4o-mini", input="JSON.", text={"format": {"type": "json_object"}}
    )
    assert gateway.upstreams["up"].requests[-1]["response_format"] == {"type": "json_object"}


def test_max_output_tokens_makes_an_incomplete_response(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    before = gateway.balance_nano()
    reply = sdk.responses.create(model="gpt-4o", input="Talk.", max_output_tokens=16)
    assert reply.status == "incomplete"
    assert reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "max_output_tokens"
    assert reply.usage is not None and reply.usage.output_tokens == 16
    assert before - gateway.balance_nano() == cost("gpt-4o", reply.usage)
    with sdk.responses.create(
        model="gpt-4o", input="Talk.", max_output_tokens=16, stream=True
    ) as stream:
        events = list(stream)
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"  # type: ignore[union-attr]


def test_an_engine_breaking_mid_stream_fails_the_response_and_bills_what_came(
    gateway: Gateway,
) -> None:
    before = gateway.balance_nano()
    with client_of(gateway).responses.create(
        model="gpt-4.1-mini", input="Go.", stream=True
    ) as stream:
        events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "response.failed"]
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None
    assert failed.usage is not None and failed.usage.output_tokens > 0
    assert before - gateway.balance_nano() == cost("gpt-4.1-mini", failed.usage)
    assert gateway.idle_held_nano() == 0
    # not stored: there is nothing to continue
    with pytest.raises(openai.NotFoundError):
        client_of(gateway).responses.retrieve(failed.id)


def test_refusals_in_openais_error_format(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    with pytest.raises(openai.BadRequestError) as unknown:
        sdk.responses.create(model="gpt-4o-mini", input="x", extra_body={"frobnicate": 1})
    assert unknown.value.status_code == 400
    assert unknown.value.body["param"] == "frobnicate"  # type: ignore[index]
    assert unknown.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad_item:
        sdk.responses.create(
            model="gpt-4o-mini",
            input=[{"type": "function_call_output", "output": "no call id"}],  # type: ignore[list-item]
        )
    assert bad_item.value.body["param"] == "input.0.call_id"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as orphan:
        sdk.responses.create(
            model="gpt-4o-mini",
            input=[{"type": "function_call_output", "call_id": "nope", "output": "x"}],
        )
    assert orphan.value.body["param"] == "input"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.responses.create(model="gpt-5-imaginary", input="x")
    assert missing.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_no_credit_is_a_402(gateway: Gateway) -> None:
    broke = client_of(gateway, other_account(gateway, credit="0"))
    with pytest.raises(openai.APIStatusError) as refused:
        broke.responses.create(model="gpt-4o-mini", input="x")
    assert refused.value.status_code == 402
    assert refused.value.body["code"] == "insufficient_quota"  # type: ignore[index]


def test_the_stream_bytes_name_each_event(gateway: Gateway) -> None:
    import requests

    answer = requests.post(
        gateway.url + "/v1/responses",
        json={"model": "gpt-4o-mini", "input": "Hi", "stream": True, "store": False},
        headers=gateway.headers(),
        timeout=10,
    )
    assert answer.headers["content-type"].startswith("text/event-stream")
    for block in answer.text.strip().split("\n\n"):
        event, data = block.split("\n")
        assert event.startswith("event: ") and data.startswith("data: ")
        assert orjson.loads(data[6:])["type"] == event[7:]


def test_an_idempotent_retry_is_the_same_response_billed_once(gateway: Gateway) -> None:
    import requests

    headers = {**gateway.headers(), "Idempotency-Key": "resp-retry-" + gateway.account}
    body = {"model": "gpt-4o-mini", "input": "Once."}
    before = gateway.balance_nano()
    calls = gateway.upstreams["up"].calls
    first = requests.post(gateway.url + "/v1/responses", json=body, headers=headers, timeout=10)
    again = requests.post(gateway.url + "/v1/responses", json=body, headers=headers, timeout=10)
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["output"] == first.json()["output"]
    assert gateway.upstreams["up"].calls == calls + 1
    usage = client_of(gateway).responses.retrieve(first.json()["id"]).usage
    assert before - gateway.balance_nano() == cost("gpt-4o-mini", usage)


@pytest.mark.parametrize("response_id", ["resp_%00nul", "x" * 300, "resp_%E2%9C%93"])
def test_ids_that_cannot_be_ours_are_absent(gateway: Gateway, response_id: str) -> None:
    import requests

    for method in ("GET", "DELETE"):
        answer = requests.request(
            method,
            f"{gateway.url}/v1/responses/{response_id}",
            headers=gateway.headers(),
            timeout=10,
        )
        assert answer.status_code == 404 and answer.json()["error"]["param"] == "response_id"
    refused = requests.post(
        gateway.url + "/v1/responses",
        json={"model": "gpt-4o-mini", "input": "x", "previous_response_id": "resp_\u0000"},
        headers=gateway.headers(),
        timeout=10,
    )
    assert refused.status_code == 404, refused.text


def test_a_nul_in_the_input_is_stored_and_continued(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    first = sdk.responses.create(model="gpt-4o-mini", input="a\u0000b")
    sdk.responses.create(model="gpt-4o-mini", input="c", previous_response_id=first.id)
    assert gateway.upstreams["up"].requests[-1]["messages"][0]["content"] == "a\u0000b"
