"""The storefront's /keys page: a daily budget on "Create a key", shown with what the key
spent today."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import running_gateway
from tests.web.conftest import csrf_of, signed_up


def test_a_key_made_on_the_keys_page_gets_its_daily_budget(tmp_path: Path) -> None:
    with running_gateway(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'w.db'}",
        {"openai": FakeUpstream()},
        [{"model": "gpt-4o-mini", "provider": "openai"}],
    ) as gw:
        browser = signed_up(gw.url, "budget-person@example.com")
        page = browser.get(gw.url + "/keys", timeout=10)
        assert 'name="daily_budget"' in page.text
        form = {"csrf_token": csrf_of(page.text), "name": "capped"}
        bad = browser.post(gw.url + "/keys", data={**form, "daily_budget": "-2"}, timeout=10)
        assert bad.status_code == 400 and "daily budget" in bad.text
        assert 'value="-2"' in bad.text  # the form keeps what was typed
        made = browser.post(gw.url + "/keys", data={**form, "daily_budget": "0.5"}, timeout=10)
        assert made.status_code == 201
        new_key = re.findall(r'id="new-key" class="key">(mtai-[^<]+)<', made.text)[0]
        keys = gw.admin("GET", "/admin/accounts/budget-person@example.com/keys").json()["data"]
        (capped,) = [k for k in keys if new_key.startswith(k["prefix"])]
        assert capped["budgets"] == {"daily": "0.500000000", "monthly": None, "total": None}
        listed = browser.get(gw.url + "/keys", timeout=10).text
        assert "$0.50 ($0.00 spent today)" in listed
