"""Budgets over HTTP: set through the admin API, refused with OpenAI's error shape (the real
``openai`` SDK raises ``APIStatusError`` 402 ``budget_exceeded``), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from minitoolai.money import nano_to_usd
from tests.conftest import BACKENDS, POSTGRES_URL
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway
from tests.support.ledger_audit import audit, rows

#: usage past any hold: every answer costs exactly its hold (the settle caps it there)
HUGE_USAGE = b'{"prompt_tokens": 1000000, "completion_tokens": 1000000}'
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=BACKENDS)
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Gateway, str]]:
    url = POSTGRES_URL if request.param == "postgres" else f"sqlite+aiosqlite:///{tmp_path}/b.db"
    upstream = FakeUpstream(usage_json=HUGE_USAGE)
    deployments: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(tmp_path, url, {"up": upstream}, deployments, credit="5") as gw:
        yield gw, url


def _client(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def _ask(client: openai.OpenAI) -> int:
    """200 or the status of the error; a 402 must be ``budget_exceeded``."""
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)  # type: ignore[arg-type]
    except openai.APIStatusError as exc:
        assert exc.status_code == 402 and exc.code == "budget_exceeded", exc
        assert exc.type == "insufficient_quota"
        assert "API key's daily budget" in exc.message and "resets at" in exc.message
        return 402
    return 200


def _nano(usd: str) -> int:
    return int(Decimal(usd) * 1_000_000_000)


def test_a_daily_budget_over_http_admits_exactly_what_fits(gateway: tuple[Gateway, str]) -> None:
    gw, url = gateway
    before = gw.balance_nano()
    # one request under a budget it cannot reach: its cost (a budget's hold counts the prompt
    # exactly; without one it is held on its bound, and this upstream bills every hold)
    probe = gw.admin("POST", f"/admin/accounts/{gw.account}/keys", json={"daily_budget": "100"})
    assert _ask(_client(gw, probe.json()["api_key"])) == 200
    cost = before - gw.balance_nano()
    assert cost > 0
    budget = nano_to_usd(3 * cost + cost // 2)
    created = gw.admin("POST", f"/admin/accounts/{gw.account}/keys", json={"daily_budget": budget})
    assert created.status_code == 201, created.text
    assert created.json()["budgets"] == {"daily": budget, "monthly": None, "total": None}
    key, prefix = created.json()["api_key"], created.json()["prefix"]
    client = _client(gw, key)
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda _: _ask(client), range(24)))
    assert statuses.count(200) == 3 and statuses.count(402) == 21
    (key_id,) = [r["id"] for r in rows(url, "SELECT id FROM api_keys WHERE prefix = :p", p=prefix)]
    settled = rows(
        url,
        "SELECT COALESCE(SUM(cost), 0) AS s, COUNT(*) AS n FROM charges"
        " WHERE api_key_id = :k AND status = 'settled'",
        k=key_id,
    )[0]
    assert int(settled["n"]) == 3 and int(settled["s"]) == 3 * cost <= _nano(budget)
    assert audit(url, gw.account).problems() == []
    # raising the budget through the admin API applies at once; clearing it too
    raised = gw.admin("PUT", f"/admin/keys/{prefix}/budget", json={"daily": budget, "total": "1"})
    assert raised.status_code == 200 and raised.json()["budgets"]["total"] == "1.000000000"
    assert _ask(client) == 402  # still the daily one
    cleared = gw.admin("PUT", f"/admin/keys/{prefix}/budget", json={"daily": None})
    assert cleared.json()["budgets"] == {"daily": None, "monthly": None, "total": "1.000000000"}
    assert _ask(client) == 200
    assert audit(url, gw.account).problems() == []


def test_an_account_budget_over_http_and_bad_bodies(gateway: tuple[Gateway, str]) -> None:
    gw, _ = gateway
    answer = gw.admin("PUT", f"/admin/accounts/{gw.account}/budget", json={"monthly": "0.000001"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "object": "account_budget",
        "account": gw.account,
        "daily": None,
        "monthly": "0.000001000",
        "total": None,
    }
    with pytest.raises(openai.APIStatusError) as err:
        _client(gw, gw.api_key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert err.value.status_code == 402 and err.value.code == "budget_exceeded"
    assert "account's monthly budget of US$0.000001000" in err.value.message
    assert gw.idle_held_nano() == 0
    for bad in ({"daily": "-1"}, {"daily": "0"}, {"daily": "x"}, {"weekly": "1"}):
        assert gw.admin("PUT", f"/admin/accounts/{gw.account}/budget", json=bad).status_code == 400
    assert gw.admin("PUT", "/admin/accounts/nobody-here/budget", json={}).status_code == 404
