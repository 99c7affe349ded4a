"""A card top-up in a real browser (Debian's Chromium driven by Playwright): press "Pay by
card", land on (the fake of) Stripe's checkout page, then Stripe's signed webhook arrives and
the dashboard's balance rises. Screenshots go where ``tests/web/test_browser.py`` puts them."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.payments.conftest import StripeGateway, stripe_gateway
from tests.web.conftest import PASSWORD
from tests.web.test_browser import SHOTS

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no `chromium` on PATH (make setup installs Debian's chromium)"
)

if CHROMIUM is not None:
    from playwright.sync_api import Page, expect, sync_playwright


@pytest.fixture(scope="module")
def card_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeGateway]:
    tmp: Path = tmp_path_factory.mktemp("card")
    with stripe_gateway(tmp, f"sqlite+aiosqlite:///{tmp / 'card.db'}") as gateway:
        yield gateway


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = chromium.new_context(viewport={"width": 1280, "height": 800})
        tab = context.new_page()
        errors: list[str] = []
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        yield tab
        chromium.close()
    unexpected = [e for e in errors if "Failed to load resource" not in e]
    assert unexpected == [], unexpected  # a CSP violation (form-action) would show here


def test_pay_by_card_then_the_webhook_raises_the_balance(
    page: Page, card_gateway: StripeGateway
) -> None:
    url = card_gateway.url
    email = f"card-{uuid.uuid4().hex[:8]}@example.com"
    page.goto(url + "/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Welcome to MiniToolAI")).to_be_visible()

    page.goto(url + "/topup")
    expect(page.get_by_role("button", name="Pay by card")).to_be_visible()
    page.get_by_label("Amount").fill("15")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "topup-card.png"), full_page=True)
    page.get_by_role("button", name="Pay by card").click()
    expect(page.get_by_role("heading", name="Fake Stripe Checkout")).to_be_visible()
    session = card_gateway.stripe.last_session()
    assert page.url == session["url"]
    expect(page.locator("#amount")).to_have_text("Pay $15.00 USD")

    # Stripe confirms: the signed event arrives, and only then is there money
    page.goto(url + "/dashboard")
    expect(page.locator("#balance")).to_have_text("$0.00")
    answer = card_gateway.deliver(card_gateway.stripe.completed(session["id"]))
    assert answer.status_code == 200 and answer.json()["outcome"] == "credited"
    page.reload()
    expect(page.locator("#balance")).to_have_text("$15.00")

    page.goto(url + "/topup?paid=1")
    expect(page.get_by_role("status")).to_contain_text("Stripe is confirming")
    expect(page.locator("table.history")).to_contain_text("Card (Stripe)")
    expect(page.locator("table.history")).to_contain_text("$15.00")
    page.screenshot(path=str(SHOTS / "topup-history.png"), full_page=True)
    # Playwright's loop runs in this thread; the audit runs its own in another
    with ThreadPoolExecutor(1) as pool:
        pool.submit(card_gateway.audit_clean, email).result()
