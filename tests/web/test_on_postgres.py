"""The money a person sees, on PostgreSQL: a redeemed code and a charged chat, exact."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import openai
import requests

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import idle_held, running_gateway
from tests.web.conftest import csrf_of, signed_up


def test_redeem_then_spend_on_postgres(tmp_path: Path, fresh_postgres: str) -> None:
    with running_gateway(
        tmp_path,
        fresh_postgres,
        {"openai": FakeUpstream()},
        [{"model": "gpt-4o-mini", "provider": "openai"}],
    ) as gw:
        browser = signed_up(gw.url, "pg-person@example.com")
        key = re.findall(
            r'id="new-key" class="key">(mtai-[^<]+)<', browser.get(gw.url + "/keys").text
        )
        assert key == []  # the sign-up key is not shown again
        code = gw.admin("POST", "/admin/codes", json={"amount": "0.75"}).json()["codes"][0]
        page = browser.get(gw.url + "/topup", timeout=10)
        done = browser.post(
            gw.url + "/topup", data={"csrf_token": csrf_of(page.text), "code": code}, timeout=10
        )
        assert done.status_code == 200 and 'id="balance">$0.75<' in done.text
        again = browser.post(
            gw.url + "/topup", data={"csrf_token": csrf_of(page.text), "code": code}, timeout=10
        )
        assert again.status_code == 400
        made = browser.post(
            gw.url + "/keys", data={"csrf_token": csrf_of(page.text), "name": "pg"}, timeout=10
        )
        new_key = re.findall(r'id="new-key" class="key">(mtai-[^<]+)<', made.text)[0]
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key=new_key, max_retries=0)
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
        cost = Decimal(
            requests.get(
                gw.url + "/api/usage/", headers={"Authorization": f"Bearer {new_key}"}, timeout=10
            ).json()["data"][0]["cost"]
        )
        assert cost > 0

        def held() -> int:
            page = browser.get(gw.url + "/dashboard", timeout=10).text
            return int(Decimal(re.search(r'id="held">\$([0-9.]+)<', page).group(1)) * 10**9)  # type: ignore[union-attr]

        assert idle_held(held) == 0  # once the gateway's lease went back (docs/billing.md)
        dashboard = browser.get(gw.url + "/dashboard", timeout=10).text
        balance = Decimal(re.search(r'id="balance">\$([0-9.]+)<', dashboard).group(1))  # type: ignore[union-attr]
        assert balance == Decimal("0.75") - cost
