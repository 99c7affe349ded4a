"""The web app's "Create key" takes the key's own requests and tokens per minute."""

from __future__ import annotations

import re
import uuid

import requests

from tests.support.gateway import Gateway
from tests.web.conftest import csrf_of, gw, signed_up

__all__ = ["gw"]  # the storefront's module-scoped gateway

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _create(browser: requests.Session, url: str, **fields: str) -> requests.Response:
    form = browser.get(url + "/keys", timeout=10)
    assert "Requests per minute" in form.text and "Tokens per minute" in form.text
    data = {"csrf_token": csrf_of(form.text), "name": "", "expires": "", "models": "", **fields}
    return browser.post(url + "/keys", data=data, timeout=10)


def test_a_key_made_with_a_limit_is_limited(gw: Gateway) -> None:
    browser = signed_up(gw.url, f"limits-{uuid.uuid4().hex[:8]}@example.com")
    made = _create(browser, gw.url, rpm="1", tpm="")
    assert made.status_code == 201, made.text
    [key] = re.findall(r'id="new-key" class="key">(mtai-[^<]+)<', made.text)
    headers = {"Authorization": f"Bearer {key}"}
    first = requests.post(gw.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=10)
    # admitted (then refused for credit: a new account has none), and counted
    assert first.status_code == 402 and first.headers["x-ratelimit-limit-requests"] == "1"
    second = requests.post(gw.url + "/v1/chat/completions", json=CHAT, headers=headers, timeout=10)
    assert second.status_code == 429


def test_a_wrong_limit_makes_no_key(gw: Gateway) -> None:
    browser = signed_up(gw.url, f"limits-{uuid.uuid4().hex[:8]}@example.com")
    bad = _create(browser, gw.url, rpm="lots", tpm="")
    assert bad.status_code == 400 and "requests per minute" in bad.text
    assert 'id="new-key"' not in bad.text
