"""Starting a card payment: the form makes an order and a Checkout Session at (the fake of)
Stripe for the right amount, currency and order, then sends the browser there. Without the
Stripe settings there is no card form and no webhook."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.payments.conftest import StripeGateway, stripe_gateway
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import running_gateway
from tests.support.ledger_audit import rows
from tests.web.conftest import csrf_of, signed_up


def test_pay_by_card_makes_an_order_and_its_session_and_redirects(sgw: StripeGateway) -> None:
    browser, account = sgw.person()
    page = browser.get(sgw.url + "/topup", timeout=10)
    assert "Pay by card" in page.text and 'for="amount">Amount<' in page.text
    # the card form's redirect to Stripe's page is allowed by the page's form-action
    assert (
        f"form-action 'self' https://checkout.stripe.com {sgw.stripe_url}"
        in (page.headers["content-security-policy"])
    )
    made = sgw.pay(browser, amount="12.50")
    assert made.status_code == 303
    sent = sgw.stripe.sent[-1]
    session = sgw.stripe.last_session()
    assert made.headers["location"] == session["url"]
    assert sent.headers["authorization"] == f"Bearer {sgw.stripe.secret_key}"
    item = sent.fields["line_items"][0]
    assert item["price_data"]["unit_amount"] == "1250" and item["quantity"] == "1"
    assert item["price_data"]["currency"] == "usd" and sent.fields["mode"] == "payment"
    order = rows(
        sgw.database_url,
        "SELECT o.* FROM payment_orders o JOIN accounts a ON a.id = o.account_id WHERE a.name = :n",
        n=account,
    )
    assert len(order) == 1
    assert order[0]["status"] == "created" and order[0]["stripe_session_id"] == session["id"]
    assert order[0]["amount"] == 12_500_000_000 and order[0]["amount_minor"] == 1250
    assert order[0]["currency"] == "usd"
    assert sent.fields["client_reference_id"] == order[0]["id"]
    assert sent.fields["metadata"]["order_id"] == order[0]["id"]
    assert sent.headers["idempotency-key"].endswith(order[0]["id"])
    assert sent.fields["success_url"].startswith(sgw.url + "/topup?paid=")
    assert sent.fields["cancel_url"].startswith(sgw.url + "/topup?cancelled=")
    assert sgw.balance(account) == 0  # nothing is credited before Stripe says it is paid
    # the fake's checkout page is where the browser lands
    assert "Pay $12.50 USD" in requests.get(session["url"], timeout=10).text


def test_a_preset_amount_is_used_when_no_amount_is_typed(sgw: StripeGateway) -> None:
    browser, _ = sgw.person()
    assert sgw.pay(browser, preset="25", amount="").status_code == 303
    assert sgw.stripe.last_session()["amount_total"] == 2500


@pytest.mark.parametrize(
    "amount", ["0.99", "1000.01", "-5", "abc", "1e3", "5.001", "NaN", "Infinity"]
)
def test_amounts_out_of_bounds_are_a_400_and_make_no_order(sgw: StripeGateway, amount: str) -> None:
    browser, account = sgw.person()
    before = len(sgw.stripe.sent)
    answer = sgw.pay(browser, amount=amount)
    assert answer.status_code == 400 and 'role="alert"' in answer.text
    assert len(sgw.stripe.sent) == before
    assert (
        rows(
            sgw.database_url,
            "SELECT o.id FROM payment_orders o JOIN accounts a ON a.id = o.account_id"
            " WHERE a.name = :n",
            n=account,
        )
        == []
    )


def test_the_card_form_is_csrf_checked(sgw: StripeGateway) -> None:
    browser, _ = sgw.person()
    before = len(sgw.stripe.sent)
    answer = browser.post(sgw.url + "/topup/card", data={"amount": "10"}, timeout=10)
    assert answer.status_code == 403 and len(sgw.stripe.sent) == before


def test_stripe_down_is_a_502_page_that_credits_nothing(tmp_path: Path) -> None:
    with stripe_gateway(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'down.db'}") as gateway:
        gateway.stripe.down = True
        browser, account = gateway.person()
        answer = gateway.pay(browser, amount="5")
        assert answer.status_code == 502 and "could not be started" in answer.text
        assert gateway.balance(account) == 0


def test_without_the_stripe_settings_there_is_no_card_form_and_no_webhook(tmp_path: Path) -> None:
    with running_gateway(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'plain.db'}",
        {"openai": FakeUpstream()},
        [],
    ) as gw:
        browser = signed_up(gw.url, "no-card@example.com")
        page = browser.get(gw.url + "/topup", timeout=10)
        assert page.status_code == 200 and "Pay by card" not in page.text
        assert "Redeem" in page.text
        assert "checkout.stripe.com" not in page.headers["content-security-policy"]
        answer = browser.post(
            gw.url + "/topup/card", data={"csrf_token": csrf_of(page.text), "amount": "5"}
        )
        assert answer.status_code == 404
        assert requests.post(gw.url + "/webhooks/stripe", data=b"{}", timeout=10).status_code == 404
