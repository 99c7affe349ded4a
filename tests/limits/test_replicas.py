"""The proof that N processes share one limit: three ``minitoolai serve`` processes and two
``minitoolai worker`` processes on one PostgreSQL and one Redis (``tests.support.fleet``), a key
limited to 120 requests a minute, 64 clients spread over the three: exactly 120 answers, every
other request a 429 with the headers, all inside one window (the window opens with the first
request; the hammer ends well before it closes)."""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import requests

from tests.limits.conftest import REDIS_URL
from tests.support.fake_upstream import FakeUpstream
from tests.support.fleet import fleet
from tests.support.ledger_audit import audit

LIMIT = 120
CLIENTS = 64
REQUESTS = 480
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_three_processes_share_one_limit(tmp_path: Path, fresh_postgres: str) -> None:
    with fleet(
        tmp_path,
        fresh_postgres,
        serves=3,
        workers=2,
        redis_url=REDIS_URL,
        upstreams={"up": FakeUpstream()},
        deployments={"gpt-4o-mini": "up"},
        limits_redis_prefix=f"mtai-test-fleet:{uuid.uuid4().hex[:8]}:",
    ) as f:
        account = f.create_account(credit="50")
        prefix = f.admin("GET", f"/admin/accounts/{account.name}/keys").json()["data"][0]
        limited = f.admin(
            "PUT", f"/admin/keys/{prefix['prefix']}/limits", server=1, json={"rpm": LIMIT}
        )
        assert limited.status_code == 200, limited.text
        time.sleep(6)  # past every replica's key cache (5 s): each now has the key's limit
        sessions = threading.local()
        urls = f.urls

        def one(i: int) -> tuple[int, dict[str, str]]:
            session = getattr(sessions, "s", None) or requests.Session()
            sessions.s = session
            answer = session.post(
                urls[i % 3] + "/v1/chat/completions",
                json=CHAT,
                headers=account.headers(),
                timeout=30,
            )
            return answer.status_code, {k.lower(): v for k, v in answer.headers.items()}

        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            answers = list(pool.map(one, range(REQUESTS)))
        elapsed = time.monotonic() - began
        assert elapsed < 50, f"the hammer took {elapsed:.1f} s: more than one window"
        statuses = Counter(status for status, _ in answers)
        assert statuses == Counter({200: LIMIT, 429: REQUESTS - LIMIT}), (statuses, f.logs())
        for status, headers in answers:
            assert headers["x-ratelimit-limit-requests"] == str(LIMIT)
            assert "x-ratelimit-remaining-requests" in headers
            assert "x-ratelimit-reset-requests" in headers
            if status == 429:
                assert headers["x-ratelimit-remaining-requests"] == "0"
                assert int(headers["retry-after"]) >= 1
        # every process answered some, and the books are sound: 120 charges, no holds left
        served = Counter(i % 3 for i, (status, _) in enumerate(answers) if status == 200)
        assert len(served) == 3, served
        books = audit(fresh_postgres, account.name)
        assert books.problems() == []
        assert books.by_status() == Counter({"settled": LIMIT})
