"""A misbehaving upstream: each fault ends in a clear answer, an exact charge and a log line.

The gateway runs in-process (uvicorn in a thread), in front of a ``FakeUpstream`` whose fault
modes play an upstream that fails, resets, stalls, sends malformed events, lies about usage or
echoes the credentials it was sent. For every case the client's status (or SSE error event), the
charge (balance before and after through the admin API; nothing left held) and the log line
(caplog sees the gateway's records) are checked, and no response or log line may carry the
upstream's key. One gateway is shared by most cases (its fake is reconfigured per test) so the
file stays fast.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from minitoolai.chat.pipeline import PROMPT_MARGIN, PROMPT_SLACK
from minitoolai.chat.tokens import count_messages, count_text
from minitoolai.engines import openai_compat
from minitoolai.engines.base import Usage
from minitoolai.engines.openai_compat import MAX_TOKENS, parse_usage
from minitoolai.observability import RedactingFilter, _JsonFormatter
from minitoolai.redact import redact, register
from tests.chat.conftest import database_url
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway
from tests.support.servers import serve_in_thread

SECRET = "sk-upstream-secret"
MODEL = "gpt-4o-mini"
IN, OUT = 150, 600  # gpt-4o-mini, nano-dollars per token
MESSAGES = [{"role": "user", "content": "Count for me, please."}]
PROMPT = count_messages(MESSAGES)
WORDS = [f"w{i} " for i in range(5)]
READ_TIMEOUT_S = 0.5
FAILED_EARLY = "deployment up:gpt-4o-mini failed before the first byte"
BROKE = "upstream up:gpt-4o-mini broke mid-answer"
DOUBTED = "upstream up:gpt-4o-mini sent usage we do not believe"

#: FakeUpstream's knobs and their defaults, to put a shared fake back to health per test
_KNOBS = {
    f.name: f.default
    for f in dataclasses.fields(FakeUpstream)
    if not f.name.startswith("_")
    and f.name not in ("calls", "requests", "completed", "cancelled")
    and f.default is not dataclasses.MISSING
}


@contextmanager
def gateway_for(tmp_path: Path, *fakes: FakeUpstream) -> Iterator[Gateway]:
    """A gateway in front of ``fakes``, tried in order, each with our short read timeout."""
    with ExitStack() as stack:
        toml: list[str] = [""]
        deployments: list[dict[str, object]] = []
        for i, fake in enumerate(fakes):
            url = stack.enter_context(serve_in_thread(fake.app()))
            name = "up" if i == 0 else f"up{i}"
            toml += [
                f"[providers.{name}]",
                f'base_url = "{url}/v1"',
                f'api_key = "{SECRET}"',
                "timeout_s = 10",
                f"read_timeout_s = {READ_TIMEOUT_S}",
                "",
            ]
            deployments += [
                {"model": MODEL, "provider": name, "priority": i},
                {"model": "tts-1-hd", "provider": name, "priority": i},
            ]
        yield stack.enter_context(
            running_gateway(
                tmp_path,
                database_url("sqlite", tmp_path),
                {},
                deployments,
                extra_toml="\n".join(toml),
                upstream_cooldown_s=0.0,
            )
        )


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, FakeUpstream]]:
    fake = FakeUpstream()
    with gateway_for(tmp_path_factory.mktemp("gw"), fake) as gw:
        yield gw, fake


@pytest.fixture
def gw(shared: tuple[Gateway, FakeUpstream]) -> Gateway:
    """The shared gateway, with a fresh account: a test's charges are its own."""
    gateway = shared[0]
    name = "acct-" + uuid.uuid4().hex[:12]
    created = gateway.admin("POST", "/admin/accounts", json={"name": name, "credit": "5"})
    assert created.status_code == 201, created.text
    return dataclasses.replace(gateway, api_key=created.json()["api_key"], account=name)


@pytest.fixture
def fake(shared: tuple[Gateway, FakeUpstream]) -> FakeUpstream:
    """The shared gateway's upstream, healthy again; a test sets the faults it wants."""
    upstream = shared[1]
    for name, default in _KNOBS.items():
        setattr(upstream, name, default)
    return upstream


@pytest.fixture(autouse=True)
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO)
    yield caplog
    assert SECRET not in caplog.text  # no log line, traceback included, carries the key
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def chat(gw: Gateway, *, stream: bool, **extra: object) -> requests.Response:
    """The seed endpoint: a stream always ends with the usage it charged."""
    body = {"model": MODEL, "messages": MESSAGES, "stream": stream, **extra}
    response = requests.post(
        gw.url + "/api/chat-completions/", headers=gw.headers(), json=body, timeout=30
    )
    assert SECRET not in response.text
    return response


def events(response: requests.Response) -> list[Any]:
    assert response.status_code == 200, response.text
    raw = response.text.strip().split("\n\n")
    assert raw[-1] == "data: [DONE]", raw[-3:]
    return [orjson.loads(event.removeprefix("data: ")) for event in raw[:-1]]


def content(parsed: list[Any]) -> str:
    return "".join(e["choices"][0]["delta"].get("content", "") for e in parsed if e.get("choices"))


def last_usage(gw: Gateway) -> dict[str, Any]:
    rows: list[dict[str, Any]] = requests.get(
        gw.url + "/api/usage/", headers=gw.headers(), timeout=10
    ).json()["data"]
    return rows[0]


def charged(gw: Gateway, before: int) -> int:
    assert gw.idle_held_nano() == 0
    return before - gw.balance_nano()


def messages(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


# ---- failures before the first byte: 502 (or failover), nothing charged -------------------

EARLY_FAULTS: dict[str, tuple[dict[str, Any], str]] = {  # the faults, what the 502 says
    "500": ({"status": 500}, "up answered 500: upstream exploded"),
    "429": ({"status": 429}, "up answered 429"),
    "a redirect": ({"status": 307}, "up answered 307: a redirect, not followed"),
    "reset before the response": ({"reset_before_response": True}, "up: connection failed"),
    "silence after the headers": ({"stall_s": 5.0}, f"silent for {READ_TIMEOUT_S:g} s"),
    "error event first": ({"error_event": True}, "the model overloaded"),
}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("fault", list(EARLY_FAULTS))
def test_failure_before_the_first_byte_is_a_free_502(
    gw: Gateway, fake: FakeUpstream, logs: pytest.LogCaptureFixture, fault: str, stream: bool
) -> None:
    faults, says = EARLY_FAULTS[fault]
    for name, value in faults.items():
        setattr(fake, name, value)
    before = gw.balance_nano()
    started = time.monotonic()
    response = chat(gw, stream=stream)
    assert time.monotonic() - started < 3  # a silent upstream is given up after 0.5 s
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["type"] == "upstream_error" and says in error["message"]
    assert charged(gw, before) == 0
    assert FAILED_EARLY in messages(logs)


def test_silent_upstream_fails_over_promptly_and_the_next_one_is_billed_once(
    tmp_path: Path, logs: pytest.LogCaptureFixture
) -> None:
    silent, healthy = FakeUpstream(stall_s=5.0), FakeUpstream()
    with gateway_for(tmp_path, silent, healthy) as gw:
        before = gw.balance_nano()
        started = time.monotonic()
        parsed = events(chat(gw, stream=True))
        assert time.monotonic() - started < 3
        assert content(parsed) == "".join(WORDS)
        assert charged(gw, before) == PROMPT * IN + len(WORDS) * OUT
        assert silent.calls == healthy.calls == 1
        assert FAILED_EARLY in messages(logs)


# ---- malformed answers and events ---------------------------------------------------------

MALFORMED_EVENTS = [
    b"123",
    b"[]",
    b"null",
    b'"text"',
    b'{"choices": "x"}',
    b'{"choices": [5]}',
    b'{"choices": [{"delta": "x"}]}',
    b'{"choices": [{"delta": {"content": 5}}]}',
    b'{"choices": [{"delta": {"role": ["assistant"]}}]}',
    b'{"choices": [{"delta": {}, "finish_reason": 7}]}',
    b"{not json",
]


@pytest.mark.parametrize("event", MALFORMED_EVENTS, ids=lambda e: e.decode())
def test_malformed_first_event_is_a_free_502(
    gw: Gateway, fake: FakeUpstream, logs: pytest.LogCaptureFixture, event: bytes
) -> None:
    fake.bad_event, fake.fault_at = event, 0
    before = gw.balance_nano()
    response = chat(gw, stream=True)
    assert response.status_code == 502, response.text
    assert "malformed stream event" in response.json()["error"]["message"]
    assert charged(gw, before) == 0
    assert FAILED_EARLY in messages(logs)


MALFORMED_ANSWERS = [
    b"123",
    b"[]",
    b"null",
    b"{not json",
    b'{"choices": "x"}',
    b'{"choices": [5]}',
    b'{"choices": []}',
    b'{"choices": [{"message": "x"}]}',
    b'{"choices": [{"message": {"content": 5}}]}',
    b'{"choices": [{"message": {"content": "hi"}, "finish_reason": 7}]}',
    b'{"error": "overloaded"}',
]


@pytest.mark.parametrize("answer", MALFORMED_ANSWERS, ids=lambda e: e.decode())
def test_malformed_whole_answer_is_a_free_502(
    gw: Gateway, fake: FakeUpstream, logs: pytest.LogCaptureFixture, answer: bytes
) -> None:
    fake.bad_answer = answer
    before = gw.balance_nano()
    response = chat(gw, stream=False)
    assert response.status_code == 502, response.text
    assert "malformed answer" in response.json()["error"]["message"]
    assert charged(gw, before) == 0
    assert FAILED_EARLY in messages(logs)


#: (the cap, made 1 MiB here, the fault past it, the error): a well-formed 2 MiB answer, and
#: one 2 MiB stream line, are refused once past the cap, not buffered on and relayed
SIZE_CAPS = {
    "answer": (
        "MAX_ANSWER_BYTES",
        {"bad_answer": orjson.dumps({"choices": [{"message": {"content": "a " * 2**20}}]})},
        "answer larger than 1048576 bytes",
    ),
    "stream line": (
        "MAX_EVENT_BYTES",
        {"bad_event": orjson.dumps({"padding": "a" * 2**21}), "fault_at": 0},
        "a line longer than 1048576 bytes",
    ),
}


@pytest.mark.parametrize("cap", SIZE_CAPS)
def test_an_upstream_past_a_size_cap_is_a_free_502(
    gw: Gateway,
    fake: FakeUpstream,
    logs: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    cap: str,
) -> None:
    name, fault, error = SIZE_CAPS[cap]
    monkeypatch.setattr(openai_compat, name, 2**20)
    for field, value in fault.items():
        setattr(fake, field, value)
    before = gw.balance_nano()
    response = chat(gw, stream=cap == "stream line")
    assert response.status_code == 502, response.text
    assert error in response.json()["error"]["message"]
    assert charged(gw, before) == 0
    assert FAILED_EARLY in messages(logs)


# ---- failures mid-stream: an error event, billed for what was delivered, estimated ---------

MID_FAULTS: dict[str, dict[str, Any]] = {
    "reset": {"reset_at_fault": True},
    "silence": {"stall_s": 5.0},
    "error event": {"error_event": True},
    **{f"event {e.decode()}": {"bad_event": e} for e in MALFORMED_EVENTS},
}


@pytest.mark.parametrize("fault", list(MID_FAULTS))
def test_failure_mid_stream_ends_with_an_error_event_and_bills_what_arrived(
    gw: Gateway, fake: FakeUpstream, logs: pytest.LogCaptureFixture, fault: str
) -> None:
    for name, value in {**MID_FAULTS[fault], "fault_at": 3}.items():  # after two words
        setattr(fake, name, value)
    before = gw.balance_nano()
    started = time.monotonic()
    parsed = events(chat(gw, stream=True))
    assert time.monotonic() - started < 3
    assert content(parsed) == "w0 w1 "
    assert "error" in parsed[-2] and "stopped mid-answer" in parsed[-2]["error"]["message"]
    delivered = count_text("w0 w1 ")
    assert parsed[-1]["usage"]["completion_tokens"] == delivered
    assert charged(gw, before) == PROMPT * IN + delivered * OUT
    assert last_usage(gw)["estimated"] is True
    assert BROKE in messages(logs)


# ---- usage: missing, lying, or above the hold ---------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_no_usage_is_billed_on_our_count_and_marked_estimated(
    gw: Gateway, fake: FakeUpstream, stream: bool
) -> None:
    if stream:
        fake.send_usage = False
    else:
        fake.usage_json = b"null"
    before = gw.balance_nano()
    response = chat(gw, stream=stream)
    ours = count_text("".join(WORDS))
    if stream:
        assert content(events(response)) == "".join(WORDS)
    else:
        assert response.json()["usage"]["completion_tokens"] == ours
    assert charged(gw, before) == PROMPT * IN + ours * OUT
    assert last_usage(gw)["estimated"] is True


def test_slow_drip_completes_with_the_exact_charge(gw: Gateway, fake: FakeUpstream) -> None:
    fake.delay_s = READ_TIMEOUT_S * 0.4  # each gap is short; the whole answer takes longer
    before = gw.balance_nano()
    started = time.monotonic()
    parsed = events(chat(gw, stream=True))
    assert time.monotonic() - started > READ_TIMEOUT_S * 1.5
    assert content(parsed) == "".join(WORDS) and "error" not in parsed[-2]
    assert charged(gw, before) == PROMPT * IN + len(WORDS) * OUT
    assert last_usage(gw)["estimated"] is False


LIES = [
    b'{"prompt_tokens": -5, "completion_tokens": 5}',
    b'{"prompt_tokens": 10, "completion_tokens": -1}',
    b'{"prompt_tokens": 10.0, "completion_tokens": 5}',
    b'{"prompt_tokens": 10, "completion_tokens": 5.5}',
    b'{"prompt_tokens": true, "completion_tokens": 5}',
    b'{"prompt_tokens": "abc", "completion_tokens": 5}',
    b'{"prompt_tokens": null, "completion_tokens": 5}',
    b'{"completion_tokens": 5}',
    b'{"prompt_tokens": 9007199254740993, "completion_tokens": 5}',  # 2**53 + 1
    b'{"prompt_tokens": 1e30, "completion_tokens": 5}',
    b'{"prompt_tokens": 100000000000000000000000, "completion_tokens": 5}',
    b'"lots"',
    b"[1, 2]",
    b"7",
]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("lie", LIES, ids=lambda e: e.decode())
def test_lying_usage_is_ignored_and_our_count_billed(
    gw: Gateway, fake: FakeUpstream, logs: pytest.LogCaptureFixture, lie: bytes, stream: bool
) -> None:
    fake.usage_json = lie
    before = gw.balance_nano()
    response = chat(gw, stream=stream)
    ours = count_text("".join(WORDS))
    if stream:
        parsed = events(response)
        assert content(parsed) == "".join(WORDS) and "error" not in parsed[-2]
        shown = parsed[-1]["usage"]
    else:
        assert response.status_code == 200, response.text
        shown = response.json()["usage"]
    assert (shown["prompt_tokens"], shown["completion_tokens"]) == (PROMPT, ours)
    assert charged(gw, before) == PROMPT * IN + ours * OUT
    assert last_usage(gw)["estimated"] is True
    assert DOUBTED in messages(logs)


LIMIT = 20  # max_completion_tokens of the capped requests
#: the hold's prompt is the bound (no limit or budget asks for the exact count)
HOLD = (math.ceil(count_messages(MESSAGES, bound=True) * PROMPT_MARGIN) + PROMPT_SLACK) * IN
HOLD += LIMIT * OUT


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 2**31 + 1, "completion_tokens": 5},
        {"prompt_tokens": 10**13, "completion_tokens": 10**13},
        {"prompt_tokens": PROMPT, "completion_tokens": 10**6},
        {"prompt_tokens": MAX_TOKENS, "completion_tokens": MAX_TOKENS},
    ],
    ids=["past 2^31", "10^13", "a million completion tokens", "2^53"],
)
def test_usage_above_the_hold_is_charged_at_most_the_hold(
    gw: Gateway,
    fake: FakeUpstream,
    logs: pytest.LogCaptureFixture,
    usage: dict[str, int],
    stream: bool,
) -> None:
    fake.usage_json = orjson.dumps(usage)
    before = gw.balance_nano()
    response = chat(gw, stream=stream, max_completion_tokens=LIMIT)
    if stream:
        assert "error" not in events(response)[-2]
    else:
        assert response.status_code == 200, response.text
    assert charged(gw, before) == HOLD
    assert last_usage(gw)["estimated"] is False
    assert "capped at its hold" in messages(logs)


# ---- secrets: an upstream that echoes the Authorization header ----------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("status", [401, 500])
def test_an_echoed_key_reaches_neither_client_nor_log(
    gw: Gateway, fake: FakeUpstream, logs: pytest.LogCaptureFixture, status: int, stream: bool
) -> None:
    fake.echo_auth, fake.status = True, status
    before = gw.balance_nano()
    response = chat(gw, stream=stream)  # asserts the key is not in the body
    assert response.status_code == (400 if status < 500 else 502)
    assert "bad key: Bearer [redacted]" in response.json()["error"]["message"]
    assert charged(gw, before) == 0
    if status >= 500:
        assert "bad key: Bearer [redacted]" in messages(logs)


def test_an_echoed_key_mid_stream_is_redacted_from_the_error_event(
    gw: Gateway, fake: FakeUpstream, logs: pytest.LogCaptureFixture
) -> None:
    fake.echo_auth, fake.error_event, fake.fault_at = True, True, 3
    parsed = events(chat(gw, stream=True))
    assert "bad key: Bearer [redacted]" in parsed[-2]["error"]["message"]
    assert "bad key: Bearer [redacted]" in messages(logs)


@pytest.mark.parametrize("status", [401, 500])
def test_an_echoed_key_reaches_no_speech_client(
    gw: Gateway, fake: FakeUpstream, status: int
) -> None:
    fake.echo_auth, fake.status = True, status
    before = gw.balance_nano()
    response = requests.post(
        gw.url + "/v1/audio/speech",
        headers=gw.headers(),
        json={"model": "tts-1-hd", "input": "Hello.", "voice": "onyx"},
        timeout=30,
    )
    assert response.status_code == (400 if status < 500 else 502)
    assert SECRET not in response.text and "Bearer [redacted]" in response.text
    assert charged(gw, before) == 0


def test_speech_upstream_reset_is_a_free_502(gw: Gateway, fake: FakeUpstream) -> None:
    fake.reset_before_response = True
    before = gw.balance_nano()
    response = requests.post(
        gw.url + "/v1/audio/speech",
        headers=gw.headers(),
        json={"model": "tts-1-hd", "input": "Hello.", "voice": "onyx"},
        timeout=30,
    )
    assert response.status_code == 502 and charged(gw, before) == 0


# ---- the pieces, directly -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("bad key: Bearer sk-upstream-secret", "bad key: Bearer [redacted]"),
        ("key sk-proj-abc123DEF456 refused", "key sk-[redacted] refused"),
        ("key mtai-Ab3dEf9xYz0123456789 revoked", "key mtai-[redacted] revoked"),
        ("GET /v1?api_key=abc123&x=1", "GET /v1?api_key=[redacted]&x=1"),
        ('{"api-key": "0123456789abcdef"}', '{"api-key": "[redacted]"}'),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [redacted]"),
        ("a task-manager at risk-free rates", "a task-manager at risk-free rates"),
        ("max_tokens=5 is too small", "max_tokens=5 is too small"),
    ],
)
def test_redact_patterns(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert redact(shown) == shown  # idempotent


def test_registered_secrets_are_redacted_wherever_they_appear() -> None:
    register("0123-azure-key-cafe")
    assert redact("echo: 0123-azure-key-cafe!") == "echo: [redacted]!"
    assert redact("short: abc", ["abc"]) == "short: abc"  # too short to replace safely


def test_every_log_line_is_redacted_without_setup_logging(
    logs: pytest.LogCaptureFixture,
) -> None:
    register(SECRET)  # as building its provider's endpoint does
    for name in ("minitoolai.somewhere.deep", "aiohttp.client", "root"):
        logging.getLogger(name).warning("upstream said %s", f"Bearer {SECRET}")
    try:
        raise RuntimeError(f"boom with {SECRET}")
    except RuntimeError:
        logging.getLogger("minitoolai.chat").exception("failed")
    assert messages(logs).count("upstream said Bearer [redacted]") == 3
    assert "RuntimeError: boom with [redacted]" in logs.text  # the traceback too


def test_a_handler_filter_redacts_records_made_elsewhere() -> None:
    record = logging.makeLogRecord({"msg": "key=%s", "args": ("api_key=abcdef123",)})
    formatter = _JsonFormatter()
    assert RedactingFilter().filter(record)
    assert orjson.loads(formatter.format(record))["message"] == "key=api_key=[redacted]"


@pytest.mark.parametrize(
    ("raw", "usage"),
    [
        ({"prompt_tokens": 3, "completion_tokens": 4}, Usage(3, 4)),
        ({"prompt_tokens": 0, "completion_tokens": 0}, Usage(0, 0)),
        ({"prompt_tokens": MAX_TOKENS, "completion_tokens": 1}, Usage(MAX_TOKENS, 1)),
        (
            {
                "prompt_tokens": 9,
                "completion_tokens": 4,
                "prompt_tokens_details": {"cached_tokens": 99},
                "completion_tokens_details": {"reasoning_tokens": -2},
            },
            Usage(9, 4, cached_tokens=9, reasoning_tokens=0),
        ),
        ({"prompt_tokens": MAX_TOKENS + 1, "completion_tokens": 1}, None),
        ({"prompt_tokens": False, "completion_tokens": 1}, None),
        ({}, None),
        (None, None),
    ],
)
def test_parse_usage(raw: object, usage: Usage | None) -> None:
    assert parse_usage(raw) == usage
