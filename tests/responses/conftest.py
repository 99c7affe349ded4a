"""A gateway per database in front of fake upstreams, shared by a module's tests: one that
calls tools when it is offered them, one that talks past ``max_output_tokens``, one that breaks
mid-answer."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest
import requests

from tests.conftest import BACKENDS, POSTGRES_URL
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

#: nano-dollars per token (prompt, completion) of the models the gateway serves
PRICES = {"gpt-4o-mini": (150, 600), "gpt-4o": (2500, 10_000), "gpt-4.1-mini": (400, 1600)}
CALLS = [
    {"id": "call_w1", "name": "get_weather", "arguments": '{"city": "Rome"}'},
    {"id": "call_t2", "name": "get_time", "arguments": '{"tz": "Europe/Rome"}'},
]


@pytest.fixture(scope="module", params=BACKENDS)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("responses")
    url = POSTGRES_URL if request.param == "postgres" else f"sqlite+aiosqlite:///{tmp / 'gw.db'}"
    upstreams = {
        "up": FakeUpstream(tool_calls=CALLS),
        "long": FakeUpstream(chunks=40),
        "broken": FakeUpstream(chunks=6, break_after=2),
    }
    deployments: list[dict[str, object]] = [
        {"model": "gpt-4o-mini", "provider": "up"},
        {"model": "gpt-4o", "provider": "long"},
        {"model": "gpt-4.1-mini", "provider": "broken"},
    ]
    with running_gateway(tmp, url, upstreams, deployments) as gw:
        yield gw


def client_of(gw: Gateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key or gw.api_key, max_retries=0)


def cost(model: str, usage: Any) -> int:
    prompt, completion = PRICES[model]
    return int(usage.input_tokens * prompt + usage.output_tokens * completion)


def last_charge_nano(gw: Gateway, key: str | None = None) -> int:
    """What ``/api/usage/`` says the newest request cost, in nano-dollars."""
    headers = {"Authorization": f"Bearer {key or gw.api_key}"}
    rows = requests.get(gw.url + "/api/usage/", headers=headers, timeout=10).json()["data"]
    return int(Decimal(rows[0]["cost"]) * 1_000_000_000)


def other_account(gw: Gateway, credit: str = "5") -> str:
    """A second account's key."""
    import uuid

    name = "other-" + uuid.uuid4().hex[:10]
    made = gw.admin("POST", "/admin/accounts", json={"name": name, "credit": credit})
    assert made.status_code == 201, made.text
    key: str = made.json()["api_key"]
    return key
