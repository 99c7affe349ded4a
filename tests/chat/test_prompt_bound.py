"""The hold's prompt is a bound that needs no tokenizer (its UTF-8 length, issue 16); the exact
count is made only where it decides something: a balance the bound is too large for, a token
limit, a budget, an engine that reports no usage."""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from minitoolai.chat.pipeline import PROMPT_MARGIN, PROMPT_SLACK
from minitoolai.chat.schemas import Message
from minitoolai.chat.tokens import (
    byte_length,
    count_messages,
    count_tools,
    encoded_length,
    encoding,
)
from tests.chat.conftest import database_url
from tests.conftest import BACKENDS
from tests.limits.test_http import limit_key
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway
from tests.support.ledger_audit import audit

IN, OUT = 150, 600  # gpt-4o-mini, nano-dollars per token
LIMIT = 10  # max_completion_tokens
#: Japanese: three bytes a character, about one token for every character or two
MESSAGES = [{"role": "user", "content": "日本語の短い文章を数えてください。" * 40}]
EXACT = count_messages(MESSAGES)
BOUND = count_messages(MESSAGES, bound=True)


def hold_of(prompt: int) -> int:
    return (math.ceil(prompt * PROMPT_MARGIN) + PROMPT_SLACK) * IN + LIMIT * OUT


texts = st.text(st.characters(codec="utf-8"), max_size=300) | st.text(
    st.characters(max_codepoint=0x7F), max_size=300
)


@settings(max_examples=300, deadline=None)
@given(text=texts)
def test_a_texts_utf8_length_is_at_least_its_tokens(text: str) -> None:
    for name in ("o200k_base", "cl100k_base"):
        assert byte_length(text) >= encoded_length(encoding(name), text)


@settings(max_examples=100, deadline=None)
@given(
    contents=st.lists(texts, min_size=1, max_size=4),
    name=st.none() | texts,
    calls=st.none() | st.dictionaries(texts, texts, max_size=3),
)
def test_the_bound_of_a_conversation_and_its_tools_is_at_least_its_count(
    contents: list[str], name: str | None, calls: dict[str, str] | None
) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": c} for c in contents]
    messages[0]["name"] = name
    messages[-1]["tool_calls"] = calls
    for model in ("gpt-4o", "gpt-4"):
        assert count_messages(messages, model, bound=True) >= count_messages(messages, model)
    tools: list[dict[str, Any]] = [
        {"type": "function", "function": {"name": name or "f", "parameters": calls or {}}}
    ]
    for c in contents:
        tools.append({"type": "custom", "custom": {"name": "g", "description": c}})
    assert count_tools(tools, bound=True) >= count_tools(tools)


def test_the_example_is_one_where_the_bound_is_far_above_the_count() -> None:
    assert BOUND > 2 * EXACT  # else the tests below would not tell the two apart


def gateway(tmp_path: Path, upstream: FakeUpstream, credit: str, backend: str = "sqlite") -> Any:
    deployments: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    url = database_url(backend, tmp_path)
    return running_gateway(tmp_path, url, {"up": upstream}, deployments, credit=credit)


def chat(gw: Gateway) -> requests.Response:
    """A streamed chat (the fake upstream's delay is between events), usage included."""
    body = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "max_completion_tokens": LIMIT,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return requests.post(
        gw.url + "/v1/chat/completions", json=body, headers=gw.headers(), timeout=30
    )


def usage(answer: requests.Response) -> dict[str, int]:
    events = [line[6:] for line in answer.text.split("\n\n") if line.startswith("data: {")]
    found: dict[str, int] = orjson.loads(events[-1])["usage"]
    return found


def usd(nano: int) -> str:
    return str(Decimal(nano) / 1_000_000_000)


def the_requests_hold(gw: Gateway, tmp_path: Path) -> int:
    """What the one chat request answered so far held, as its charge row records it (the
    account's ``held`` while it ran would show its lease's: docs/billing.md)."""
    (charge,) = [c for c in audit(database_url("sqlite", tmp_path), gw.account).charges]
    return charge.held_amount


def test_a_roomy_account_is_held_the_bound_and_charged_the_upstreams_count(
    tmp_path: Path,
) -> None:
    with gateway(tmp_path, FakeUpstream(chunks=3), "5") as gw:
        before = gw.balance_nano()
        answer = chat(gw)
        assert answer.status_code == 200, answer.text
        assert the_requests_hold(gw, tmp_path) == hold_of(BOUND)
        assert usage(answer)["prompt_tokens"] == EXACT
        assert before - gw.balance_nano() == EXACT * IN + 3 * OUT
        assert gw.idle_held_nano() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_balance_below_the_bound_but_above_the_exact_hold_is_answered(
    tmp_path: Path, backend: str
) -> None:
    credit = (hold_of(EXACT) + hold_of(BOUND)) // 2
    with gateway(tmp_path, FakeUpstream(chunks=3), usd(credit), backend) as gw:
        answer = chat(gw)
        assert answer.status_code == 200, answer.text
        assert gw.balance_nano() == credit - (EXACT * IN + 3 * OUT)
        assert gw.idle_held_nano() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_balance_below_the_exact_hold_is_refused_on_the_exact_amount(
    tmp_path: Path, backend: str
) -> None:
    credit = hold_of(EXACT) - 1
    with gateway(tmp_path, FakeUpstream(chunks=3), usd(credit), backend) as gw:
        answer = chat(gw)
        assert answer.status_code == 402, answer.text
        assert f"up to US${usd(hold_of(EXACT))}" in answer.json()["error"]["message"]
        assert (gw.balance_nano(), gw.idle_held_nano()) == (credit, 0)


def test_a_token_limit_counts_the_prompt_exactly(tmp_path: Path) -> None:
    with gateway(tmp_path, FakeUpstream(chunks=3), "5") as gw:
        limit_key(gw, tpm=100_000)
        answer = chat(gw)
        assert answer.status_code == 200, answer.text
        assert the_requests_hold(gw, tmp_path) == hold_of(EXACT)
        estimate = math.ceil(EXACT * PROMPT_MARGIN) + PROMPT_SLACK + LIMIT
        assert int(answer.headers["x-ratelimit-remaining-tokens"]) == 100_000 - estimate


def test_an_upstream_without_usage_is_billed_our_exact_count(tmp_path: Path) -> None:
    with gateway(tmp_path, FakeUpstream(chunks=3, send_usage=False), "5") as gw:
        before = gw.balance_nano()
        answer = chat(gw)
        assert answer.status_code == 200, answer.text
        assert usage(answer)["prompt_tokens"] == EXACT
        assert before - gw.balance_nano() == EXACT * IN + usage(answer)["completion_tokens"] * OUT


@pytest.mark.parametrize("backend", BACKENDS)
def test_racing_requests_on_a_tight_balance_hold_exactly_and_never_overdraw(
    tmp_path: Path, backend: str
) -> None:
    """16 at once with room for two exact holds (and not one bound): every refused bound is
    counted and held again, two or more are answered, the rest refused, nothing overdrawn."""
    credit = 2 * hold_of(EXACT) + hold_of(EXACT) // 2
    assert credit < hold_of(BOUND) * 2
    with gateway(tmp_path, FakeUpstream(chunks=3, delay_s=0.1), usd(credit), backend) as gw:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: chat(gw), range(16)))
        codes = Counter(a.status_code for a in answers)
        assert set(codes) <= {200, 402} and codes[200] >= 2, codes
        cost = EXACT * IN + 3 * OUT
        assert gw.balance_nano() == credit - codes[200] * cost >= 0
        assert gw.idle_held_nano() == 0
        url = database_url(backend, tmp_path)
        assert audit(url, gw.account).problems() == []


def test_a_replayed_turns_passed_through_fields_are_counted() -> None:
    """Fields a client replays on an assistant turn (``refusal``, ``audio``: the model's extras)
    reach the upstream, so the bound and the count both include them."""
    plain = Message.model_validate({"role": "assistant", "content": "hi"})
    extra = Message.model_validate(
        {"role": "assistant", "content": "hi", "refusal": "no", "audio": {"id": "audio_1"}}
    )
    for bound in (True, False):
        more = count_messages([extra], bound=bound) - count_messages([plain], bound=bound)
        assert more >= len("no") + len('{"id":"audio_1"}') // (1 if bound else 4)
