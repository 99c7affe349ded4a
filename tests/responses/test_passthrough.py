"""The Responses API passed through to upstreams that speak it (``responses = true``), with the
real ``openai`` SDK: the client's body reaches the upstream's ``/v1/responses`` unchanged but for
what this server owns (``previous_response_id`` resolved into input items, ``store: false``),
the upstream's events come back renumbered under our response id, and the charge is the
upstream's usage, exact to the nano-dollar, on both databases; failover before the first byte,
the hold released when nobody answers, a broken stream billed on what was delivered."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import requests

from minitoolai.chat.tokens import count_text
from minitoolai.engines.base import responses_engine
from minitoolai.infra.http import upstream_client
from minitoolai.routing.build import build_engines
from minitoolai.settings import DeploymentConfig, FileConfig, ProviderConfig, Settings
from tests.conftest import BACKENDS, POSTGRES_URL
from tests.responses.conftest import CALLS, client_of, cost, last_charge_nano
from tests.responses.test_upstream import TOOLS
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

WORDS = "w0 w1 w2 w3 w4 "

#: public model -> the upstreams that serve it, in priority order (every one speaks Responses)
ROUTES = {
    "gpt-4o-mini": ["pt"],
    "gpt-4o": ["down", "pt2"],
    "gpt-4.1": ["gone"],
    "gpt-4.1-mini": ["cut"],
    "slow-model": ["slow"],  # no price row of its own: gpt-4.1-nano's
    "liar-model": ["liar"],
    "flaky-model": ["bad", "pt3"],
    "error-model": ["err"],
}


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("passthrough")
    url = POSTGRES_URL if request.param == "postgres" else f"sqlite+aiosqlite:///{tmp / 'gw.db'}"
    upstreams = {
        "pt": FakeUpstream(tool_calls=CALLS),
        "down": FakeUpstream(status=500),
        "pt2": FakeUpstream(),
        "gone": FakeUpstream(status=503),
        "cut": FakeUpstream(chunks=6, break_after=2),
        "slow": FakeUpstream(chunks=200, delay_s=0.02),
        "bad": FakeUpstream(bad_event=b"not json"),
        "pt3": FakeUpstream(),
        "err": FakeUpstream(error_event=True, fault_at=2),
        "liar": FakeUpstream(usage_json=b'{"input_tokens": -1, "output_tokens": "5"}'),
        "chat": FakeUpstream(),
    }
    toml = [
        f'[[deployments]]\nmodel = "{model}"\nprovider = "{name}"\npriority = {p}\n'
        "responses = true\n"
        for model, names in ROUTES.items()
        for p, name in enumerate(names)
    ]
    chat_only: list[dict[str, object]] = [{"model": "gpt-4.1-nano", "provider": "chat"}]
    with running_gateway(tmp, url, upstreams, chat_only, extra_toml="\n" + "\n".join(toml)) as gw:
        yield gw


def sent(gw: Gateway, name: str = "pt") -> dict[str, Any]:
    """What the upstream ``name``'s ``/v1/responses`` received last."""
    return gw.upstreams[name].responses_requests[-1]


def same_json(a: Any, b: Any) -> bool:
    return orjson.dumps(a) == orjson.dumps(b)


def usage_row(gw: Gateway) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {gw.api_key}"}
    row: dict[str, Any] = requests.get(gw.url + "/api/usage/", headers=headers, timeout=10).json()[
        "data"
    ][0]
    return row


SCHEMA_FORMAT: Any = {
    "format": {
        "type": "json_schema",
        "name": "person",
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        "strict": True,
    }
}


def test_create_reaches_the_upstreams_responses_unchanged_and_bills_its_usage(
    gateway: Gateway,
) -> None:
    up = gateway.upstreams["pt"]
    before, chats = gateway.balance_nano(), len(up.requests)
    reply = client_of(gateway).responses.create(
        model="gpt-4o-mini",
        input="Weather and time in Rome?",
        instructions="Be brief.",
        tools=TOOLS,
        tool_choice="auto",
        text=SCHEMA_FORMAT,
        metadata={"ticket": "7"},
        max_output_tokens=64,
    )
    upstream = sent(gateway)
    # the client's fields, byte-equal; ours replaced; the upstream's model id
    assert same_json(upstream["tools"], TOOLS)
    assert same_json(upstream["text"], SCHEMA_FORMAT)
    assert (
        upstream["instructions"] == "Be brief." and upstream["input"] == "Weather and time in Rome?"
    )
    assert upstream["store"] is False and "previous_response_id" not in upstream
    assert upstream["model"] == "gpt-4o-mini" and upstream["stream"] is False
    assert upstream["metadata"] == {"ticket": "7"} and upstream["max_output_tokens"] == 64
    assert len(up.requests) == chats  # chat completions was not asked
    # the upstream's output, under our id
    assert reply.id.startswith("resp_") and reply.id != "resp_upstream"
    assert reply.store is True and reply.model == "gpt-4o-mini-2024-07-18"
    calls = [item for item in reply.output if item.type == "function_call"]
    assert [(c.id, c.call_id, c.name, c.arguments) for c in calls] == [
        (f"fc_up{i}", c["id"], c["name"], c["arguments"]) for i, c in enumerate(CALLS)
    ]
    # billed on the upstream's usage, which is what the SDK shows
    usage = reply.usage
    assert usage is not None
    expected = count_text(orjson.dumps("Weather and time in Rome?").decode()) + count_text(
        "Be brief."
    )
    assert usage.input_tokens == expected + count_text(orjson.dumps(TOOLS).decode())
    assert usage.output_tokens == sum(count_text(c["name"] + c["arguments"]) for c in CALLS)
    charged = before - gateway.balance_nano()
    assert charged == cost("gpt-4o-mini", usage) == last_charge_nano(gateway) > 0
    assert usage_row(gateway)["estimated"] is False
    assert gateway.idle_held_nano() == 0
    assert client_of(gateway).responses.retrieve(reply.id).model_dump() == reply.model_dump()


def test_stream_relays_the_upstreams_events_billed_by_its_usage(gateway: Gateway) -> None:
    before = gateway.balance_nano()
    with client_of(gateway).responses.stream(
        model="gpt-4o-mini", input=[{"role": "user", "content": "Hi"}], text=SCHEMA_FORMAT
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    upstream = sent(gateway)
    assert upstream["stream"] is True and upstream["store"] is False
    assert same_json(upstream["input"], [{"role": "user", "content": "Hi"}])
    assert same_json(upstream["text"], SCHEMA_FORMAT)
    kinds = [e.type for e in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == WORDS
    assert events[0].response.id == final.id and final.id.startswith("resp_")  # type: ignore[union-attr]
    assert final.output_text == WORDS and final.output[0].id == "msg_up"
    assert final.usage is not None and final.usage.output_tokens == 5
    charged = before - gateway.balance_nano()
    assert charged == cost("gpt-4o-mini", final.usage) == last_charge_nano(gateway)
    assert gateway.idle_held_nano() == 0
    stored = client_of(gateway).responses.retrieve(final.id)
    assert stored.output_text == WORDS and stored.usage == final.usage


def test_previous_response_id_goes_upstream_as_input_items(gateway: Gateway) -> None:
    sdk = client_of(gateway)
    first = sdk.responses.create(model="gpt-4o-mini", input="Rome?", tools=TOOLS)
    results: list[Any] = [
        {"type": "function_call_output", "call_id": "call_w1", "output": '{"celsius": 21}'},
        {"type": "function_call_output", "call_id": "call_t2", "output": '"14:05"'},
    ]
    before = gateway.balance_nano()
    second = sdk.responses.create(
        model="gpt-4o-mini", input=results, previous_response_id=first.id, tools=TOOLS
    )
    assert second.output_text == WORDS and second.previous_response_id == first.id
    upstream = sent(gateway)
    assert "previous_response_id" not in upstream
    assert upstream["input"] == [
        {"type": "message", "role": "user", "content": "Rome?"},
        *(
            {
                "type": "function_call",
                "call_id": c["id"],
                "name": c["name"],
                "arguments": c["arguments"],
            }
            for c in CALLS
        ),
        *results,
    ]
    assert second.usage is not None
    assert before - gateway.balance_nano() == cost("gpt-4o-mini", second.usage)
    # a third turn, streamed, carries the whole conversation
    with sdk.responses.stream(
        model="gpt-4o-mini", input="Thanks.", previous_response_id=second.id
    ) as stream:
        third = stream.get_final_response()
    assert sent(gateway)["input"][-2:] == [
        {"type": "message", "role": "assistant", "content": WORDS},
        {"role": "user", "content": "Thanks."},
    ]
    assert third.previous_response_id == second.id


def test_failover_before_the_first_byte_to_the_next_deployment(gateway: Gateway) -> None:
    down, pt2 = gateway.upstreams["down"], gateway.upstreams["pt2"]
    tried = down.calls
    before = gateway.balance_nano()
    reply = client_of(gateway).responses.create(model="gpt-4o", input="Anyone?")
    assert down.calls == tried + 1 and pt2.responses_requests  # the first failed, the next answered
    assert reply.output_text == WORDS and reply.usage is not None
    assert before - gateway.balance_nano() == cost("gpt-4o", reply.usage)
    assert gateway.idle_held_nano() == 0


@pytest.mark.parametrize("stream", [False, True])
def test_nobody_answering_releases_the_hold(gateway: Gateway, stream: bool) -> None:
    before = gateway.balance_nano()
    with pytest.raises(openai.APIStatusError) as failed:
        client_of(gateway).responses.create(model="gpt-4.1", input="Hello?", stream=stream)
    assert failed.value.status_code == 502
    assert gateway.balance_nano() == before and gateway.idle_held_nano() == 0


def test_breaking_mid_stream_is_billed_on_what_was_delivered(gateway: Gateway) -> None:
    before = gateway.balance_nano()
    with client_of(gateway).responses.create(
        model="gpt-4.1-mini", input="Go.", stream=True
    ) as stream:
        events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[-2:] == ["error", "response.failed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    delivered = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert delivered == "w0 w1 "
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None
    assert failed.usage is not None and failed.usage.output_tokens == count_text(delivered)
    assert before - gateway.balance_nano() == cost("gpt-4.1-mini", failed.usage)
    assert usage_row(gateway)["estimated"] is True
    assert gateway.idle_held_nano() == 0
    with pytest.raises(openai.NotFoundError):  # a failed response is not kept
        client_of(gateway).responses.retrieve(failed.id)


def test_an_idempotent_retry_is_the_same_response_billed_once(gateway: Gateway) -> None:
    headers = {**gateway.headers(), "Idempotency-Key": "pt-retry-" + gateway.account}
    body = {"model": "gpt-4o-mini", "input": "Once.", "store": False}
    before = gateway.balance_nano()
    calls = gateway.upstreams["pt"].calls
    first = requests.post(gateway.url + "/v1/responses", json=body, headers=headers, timeout=10)
    again = requests.post(gateway.url + "/v1/responses", json=body, headers=headers, timeout=10)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert gateway.upstreams["pt"].calls == calls + 1
    usage = first.json()["usage"]
    assert (
        before - gateway.balance_nano()
        == 150 * usage["input_tokens"] + 600 * usage["output_tokens"]
    )


def test_a_deployment_without_the_flag_is_translated_to_chat(gateway: Gateway) -> None:
    chat = gateway.upstreams["chat"]
    reply = client_of(gateway).responses.create(model="gpt-4.1-nano", input="Hi")
    assert reply.output_text == WORDS
    assert chat.requests[-1]["messages"] == [{"role": "user", "content": "Hi"}]
    assert chat.responses_requests == []


def test_a_client_leaving_mid_stream_pays_for_what_was_delivered(gateway: Gateway) -> None:
    slow = gateway.upstreams["slow"]
    before = gateway.balance_nano()
    body = {"model": "slow-model", "input": "Talk.", "stream": True}
    read: list[str] = []
    with requests.post(
        gateway.url + "/v1/responses", json=body, headers=gateway.headers(), stream=True, timeout=10
    ) as answer:
        for line in answer.iter_lines():
            if line.startswith(b"data: "):
                event = orjson.loads(line[6:])
                if event["type"] == "response.output_text.delta":
                    read.append(event["delta"])
                    if len(read) == 5:
                        break  # and leave
    deadline = time.monotonic() + 10
    while (gateway.held_nano() or not slow.cancelled) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway.idle_held_nano() == 0 and slow.cancelled == 1  # settled, the upstream stopped
    row = usage_row(gateway)
    assert row["estimated"] is True and row["model"] == "slow-model"
    assert count_text("".join(read)) <= row["completion_tokens"] < 200
    charged = 100 * row["prompt_tokens"] + 400 * row["completion_tokens"]  # gpt-4.1-nano's
    assert before - gateway.balance_nano() == charged == last_charge_nano(gateway)


async def test_which_deployments_speak_responses(tmp_path: Path) -> None:
    async with upstream_client() as session:
        for base_url, speaks in (
            ("https://api.openai.com/v1", True),
            ("http://127.0.0.1:9/v1", False),
        ):
            settings = Settings(  # type: ignore[call-arg]
                data_dir=tmp_path,
                config=None,
                openai_api_key="sk-test",  # type: ignore[arg-type]
                openai_base_url=base_url,
                local_default=False,
                local_speech=False,
            )
            engines = await build_engines(settings, FileConfig(), session)
            [openai_default] = engines.chat.deployments("gpt-4o")
            assert (responses_engine(openai_default.engine) is not None) is speaks
        flagged = FileConfig(
            providers={"up": ProviderConfig(base_url="http://127.0.0.1:9/v1")},
            deployments=[
                DeploymentConfig(model="gpt-4o", provider="up", responses=True),
                DeploymentConfig(model="gpt-4o-mini", provider="up"),
            ],
        )
        plain = Settings(data_dir=tmp_path, config=None, local_default=False, local_speech=False)
        engines = await build_engines(plain, flagged, session)
        assert responses_engine(engines.chat.deployments("gpt-4o")[0].engine) is not None
        assert responses_engine(engines.chat.deployments("gpt-4o-mini")[0].engine) is None
        local = FileConfig(
            deployments=[DeploymentConfig(model="gpt-4o", provider="local", responses=True)]
        )
        with pytest.raises(ValueError, match="responses = true"):
            await build_engines(plain, local, session)


@pytest.mark.parametrize("stream", [False, True])
def test_usage_not_to_believe_is_billed_on_our_count(gateway: Gateway, stream: bool) -> None:
    before = gateway.balance_nano()
    sdk = client_of(gateway)
    if stream:
        with sdk.responses.stream(model="liar-model", input="Hi") as events:
            reply = events.get_final_response()
    else:
        reply = sdk.responses.create(model="liar-model", input="Hi")
    assert reply.output_text == WORDS and reply.usage is not None
    row = usage_row(gateway)
    assert row["estimated"] is True
    assert reply.usage.input_tokens == row["prompt_tokens"] > 0  # shown: what was charged
    assert reply.usage.output_tokens == row["completion_tokens"] == count_text(WORDS)
    charged = 100 * row["prompt_tokens"] + 400 * row["completion_tokens"]
    assert before - gateway.balance_nano() == charged == last_charge_nano(gateway)


def test_a_malformed_first_event_fails_over(gateway: Gateway) -> None:
    bad, pt3 = gateway.upstreams["bad"], gateway.upstreams["pt3"]
    tried = bad.calls
    before = gateway.balance_nano()
    with client_of(gateway).responses.stream(model="flaky-model", input="Hi") as stream:
        final = stream.get_final_response()
    assert bad.calls == tried + 1 and pt3.completed >= 1
    assert final.output_text == WORDS and final.usage is not None
    charged = 100 * final.usage.input_tokens + 400 * final.usage.output_tokens
    assert before - gateway.balance_nano() == charged == last_charge_nano(gateway)


def test_an_error_event_mid_stream_fails_the_response_billed_on_what_came(
    gateway: Gateway,
) -> None:
    before = gateway.balance_nano()
    with client_of(gateway).responses.create(model="error-model", input="Go.", stream=True) as s:
        events = list(s)
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    delivered = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert delivered == "w0 w1 "
    failed = events[-1].response  # type: ignore[union-attr]
    assert "overloaded" in failed.error.message
    assert failed.usage.output_tokens == count_text(delivered)
    row = usage_row(gateway)
    assert row["estimated"] is True and row["completion_tokens"] == count_text(delivered)
    charged = 100 * failed.usage.input_tokens + 400 * failed.usage.output_tokens
    assert before - gateway.balance_nano() == charged and gateway.idle_held_nano() == 0
