"""The multi-process proof: three ``minitoolai serve`` processes on one PostgreSQL and one Redis
(``tests.support.fleet``), a key with a small daily budget hammered by 64 clients spread over
the three: it never spends past its budget, and since every request holds (and, its upstream
reporting more than the hold, costs) the same, exactly floor(budget / hold) get through."""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from collections import Counter
from pathlib import Path

import requests

from minitoolai.accounts.keys import visible_prefix
from minitoolai.money import nano_to_usd
from tests.support.fake_upstream import FakeUpstream
from tests.support.fleet import REDIS_URL, fleet
from tests.support.ledger_audit import audit, rows

HUGE_USAGE = b'{"prompt_tokens": 1000000, "completion_tokens": 1000000}'
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
FITS = 5


def test_three_processes_never_spend_past_a_daily_budget(
    tmp_path: Path, fresh_postgres: str
) -> None:
    with fleet(
        tmp_path,
        fresh_postgres,
        serves=3,
        redis_url=REDIS_URL,
        upstreams={"up": FakeUpstream(usage_json=HUGE_USAGE)},
        deployments={"gpt-4o-mini": "up"},
        limits_redis_prefix=f"mtai-test-budgets:{uuid.uuid4().hex[:8]}:",
    ) as f:
        account = f.create_account(credit="50")
        before = f.balances(account.name)[0]
        # under a budget it cannot reach (a budget's hold counts the prompt exactly; without
        # one the hold is the prompt's bound, and this upstream bills every hold)
        probe = {"Authorization": f"Bearer {f.create_key(account.name, daily_budget='100')}"}
        first = requests.post(
            f.urls[0] + "/v1/chat/completions", json=CHAT, headers=probe, timeout=30
        )
        assert first.status_code == 200, first.text
        hold = before - f.balances(account.name)[0]  # what one request holds, and costs
        budget = FITS * hold + hold // 2
        key = f.create_key(account.name, daily_budget=nano_to_usd(budget))
        headers = {"Authorization": f"Bearer {key}"}
        sessions = threading.local()

        def one(i: int) -> tuple[int, str]:
            session = getattr(sessions, "s", None) or requests.Session()
            sessions.s = session
            answer = session.post(
                f.urls[i % 3] + "/v1/chat/completions", json=CHAT, headers=headers, timeout=60
            )
            code = answer.json()["error"]["code"] if answer.status_code != 200 else ""
            return answer.status_code, code

        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            answers = list(pool.map(one, range(192)))
        assert Counter(answers) == {(200, ""): FITS, (402, "budget_exceeded"): 192 - FITS}, Counter(
            answers
        )
        (key_id,) = [
            r["id"]
            for r in rows(
                fresh_postgres, "SELECT id FROM api_keys WHERE prefix = :p", p=visible_prefix(key)
            )
        ]
        spent = rows(
            fresh_postgres,
            "SELECT COALESCE(SUM(cost), 0) AS s FROM charges"
            " WHERE api_key_id = :k AND status = 'settled'",
            k=key_id,
        )[0]["s"]
        assert int(spent) == FITS * hold <= budget
        assert f.balances(account.name) == (before - (FITS + 1) * hold, 0)
        assert audit(fresh_postgres, account.name).problems() == []
        assert f.tracebacks() == []
