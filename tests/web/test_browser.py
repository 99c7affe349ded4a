"""The storefront in a real browser (Debian's Chromium driven by Playwright), against a real
server: sign up, a key seen exactly once and used with the openai SDK, a code redeemed once,
CSRF, log-out, a wrong password and its throttle. Screenshots of every page (desktop 1280x800
and one phone size) go to a temporary folder, or to the folder ``MINITOOLAI_SCREENSHOTS`` names:
``MINITOOLAI_SCREENSHOTS=docs/screenshots .venv/bin/python -m pytest tests/web`` renews the
README's pictures.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest
import requests

from tests.support.gateway import Gateway
from tests.web.conftest import PASSWORD

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no `chromium` on PATH (make setup installs Debian's chromium)"
)
#: a test run leaves the tree clean unless asked to renew the pictures
SHOTS = Path(os.environ.get("MINITOOLAI_SCREENSHOTS") or tempfile.mkdtemp(prefix="mtai-shots-"))

if CHROMIUM is not None:
    from playwright.sync_api import Browser, Page, expect, sync_playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A desktop-sized tab; the test fails if the page logged an error (a CSP violation, a
    missing asset, a script error)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    yield tab
    context.close()
    # the status codes our tests provoke (401, 403, 429 pages) are logged as load errors
    unexpected = [e for e in errors if "Failed to load resource" not in e]
    assert unexpected == [], unexpected


def shot(page: Page, name: str) -> None:
    """A full-page PNG; a key on the page is masked (a picture is a copy too)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(SHOTS / f"{name}.png"), full_page=True, mask=[page.locator("#new-key")]
    )


def sign_up(page: Page, url: str) -> str:
    email = f"browser-{uuid.uuid4().hex[:8]}@example.com"
    page.goto(url + "/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Welcome to MiniToolAI")).to_be_visible()
    return email


def test_the_whole_customer_path(page: Page, gw: Gateway) -> None:
    page.goto(gw.url + "/")
    expect(page.get_by_role("heading", name="Prices")).to_be_visible()
    shot(page, "landing")
    page.goto(gw.url + "/signup")
    shot(page, "signup")
    email = sign_up(page, gw.url)
    shot(page, "welcome")
    page.goto(gw.url + "/dashboard")
    expect(page.locator("#balance")).to_have_text("$0.00")
    shot(page, "dashboard-empty")

    # a key, shown exactly once
    page.goto(gw.url + "/keys")
    page.get_by_label("Name").fill("browser test")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text().strip()
    assert re.fullmatch(r"mtai-[A-Za-z0-9_-]{43}", key)
    assert page.content().count(key) == 1
    shot(page, "keys-new")
    page.goto(gw.url + "/keys")
    assert key not in page.content() and key[:12] in page.content()
    expect(page.locator("#new-key")).to_have_count(0)
    shot(page, "keys")

    # the key works with the openai SDK
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    assert "gpt-4o-mini" in [m.id for m in client.models.list()]

    # a code raises the balance once
    code = gw.admin("POST", "/admin/codes", json={"amount": "3.5", "count": 1}).json()["codes"][0]
    page.goto(gw.url + "/topup")
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Redeem").click()
    expect(page.get_by_role("status")).to_contain_text("$3.500000000 added")
    expect(page.locator("#balance")).to_have_text("$3.50")
    shot(page, "topup")
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Redeem").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.locator("#balance")).to_have_text("$3.50")

    # spend some of it; the dashboard and usage show it
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    cost = Decimal(
        requests.get(
            gw.url + "/api/usage/", headers={"Authorization": f"Bearer {key}"}, timeout=10
        ).json()["data"][0]["cost"]
    )
    page.goto(gw.url + "/dashboard")
    shown = Decimal(page.locator("#balance").inner_text().lstrip("$"))
    assert shown == Decimal("3.5") - cost
    shot(page, "dashboard")
    page.goto(gw.url + "/usage")
    expect(page.locator("table.usage tbody tr")).to_have_count(1)
    shot(page, "usage")

    # revoke it
    page.goto(gw.url + "/keys")
    row = page.get_by_role("row").filter(has_text=key[:12])
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("row").filter(has_text=key[:12])).to_contain_text("revoked")
    with pytest.raises(openai.AuthenticationError):
        client.models.list()

    # log out: the session is over
    page.get_by_role("button", name="Log out").click()
    page.goto(gw.url + "/dashboard")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert page.url.endswith("/login?next=/dashboard")
    shot(page, "login")
    page.goto(gw.url + "/password-reset")
    shot(page, "password-reset")
    page.goto(gw.url + "/login?next=/dashboard")

    # and back in, to where we were going
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def test_a_form_without_its_csrf_token_is_refused(page: Page, gw: Gateway) -> None:
    sign_up(page, gw.url)
    page.goto(gw.url + "/keys")
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    page.get_by_label("Name").fill("forged")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_role("heading", name="This form has expired")).to_be_visible()
    page.goto(gw.url + "/keys")
    assert "forged" not in page.content()


def test_a_wrong_password_is_refused_then_throttled(page: Page, gw: Gateway) -> None:
    email = sign_up(page, gw.url)
    page.get_by_role("button", name="Log out").click()
    for _ in range(5):
        page.goto(gw.url + "/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed attempts")


def test_pages_fit_a_phone(browser: Browser, gw: Gateway) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        phone = context.new_page()
        sign_up(phone, gw.url)
        for path, name in (("/", "landing"), ("/dashboard", "dashboard"), ("/keys", "keys")):
            phone.goto(gw.url + path)
            wide = phone.evaluate("document.documentElement.scrollWidth")
            assert wide <= 390, f"{path} scrolls sideways on a phone ({wide}px)"
            shot(phone, f"phone-{name}")
        phone.goto(gw.url + "/password-reset")
        shot(phone, "phone-password-reset")
    finally:
        context.close()
