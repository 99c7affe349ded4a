"""Stripe's webhook over real HTTP, on SQLite and PostgreSQL, with events signed as Stripe signs
them: a paid session credits once however often or however concurrently it is delivered; a
forged, stale or mismatched event is a 400 that credits nothing; refunds and disputes take the
credit back once each."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import openai
import pytest

from tests.payments.conftest import StripeGateway
from tests.support.ledger_audit import rows


def test_a_completed_session_delivered_five_times_credits_once(sgw: StripeGateway) -> None:
    browser, account = sgw.person()
    session = sgw.paid_session(browser, "12.34")
    event = sgw.stripe.completed(session["id"])
    answers = [sgw.deliver(event) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json()["outcome"] for a in answers] == ["credited"] + ["already credited"] * 4
    assert sgw.balance(account) == Decimal("12.34")
    # Stripe may also send the same session under a new event id: still once
    assert sgw.deliver(sgw.stripe.completed(session["id"])).json()["outcome"] == (
        "already credited"
    )
    assert sgw.balance(account) == Decimal("12.34")
    sgw.audit_clean(account)


def test_five_concurrent_deliveries_of_a_completed_session_credit_once(
    sgw: StripeGateway,
) -> None:
    browser, account = sgw.person()
    session = sgw.paid_session(browser, "7")
    event = sgw.stripe.completed(session["id"])
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: sgw.deliver(event), range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    outcomes = sorted(a.json()["outcome"] for a in answers)
    assert outcomes == ["already credited"] * 4 + ["credited"]
    assert sgw.balance(account) == Decimal("7")
    payments = rows(
        sgw.database_url,
        "SELECT e.amount FROM ledger_entries e JOIN accounts a ON a.id = e.account_id"
        " WHERE a.name = :n AND e.kind = 'payment'",
        n=account,
    )
    assert payments == [{"amount": 7_000_000_000}]
    sgw.audit_clean(account)


def _refused(sgw: StripeGateway, answer: object, account: str) -> None:
    assert answer.status_code == 400, answer.text  # type: ignore[attr-defined]
    assert sgw.balance(account) == 0


def test_a_forged_signature_is_a_400_and_credits_nothing(sgw: StripeGateway) -> None:
    browser, account = sgw.person()
    session = sgw.paid_session(browser)
    event = sgw.stripe.completed(session["id"])
    _refused(sgw, sgw.deliver(event, secret="whsec_someone_elses"), account)
    _refused(sgw, sgw.deliver(event, signature="t=1,v1=" + "0" * 64), account)
    _refused(sgw, sgw.deliver(event, signature="garbage"), account)
    payload_signed = sgw.stripe.sign(b'{"id": "evt_other"}')
    _refused(sgw, sgw.deliver(event, signature=payload_signed), account)  # another body's
    # and the genuine delivery still credits afterwards: nothing was spent by the forgeries
    assert sgw.deliver(event).json()["outcome"] == "credited"
    assert sgw.balance(account) == Decimal("10")


def test_a_stale_timestamp_is_refused_as_a_replay(sgw: StripeGateway) -> None:
    browser, account = sgw.person()
    session = sgw.paid_session(browser)
    stale = int(time.time()) - 3600  # correctly signed, an hour ago
    _refused(sgw, sgw.deliver(sgw.stripe.completed(session["id"]), timestamp=stale), account)


@pytest.mark.parametrize(
    "changes",
    [
        {"amount_total": 100_000},  # a wrong amount
        {"amount_total": 999},
        {"amount_total": "1000"},  # not a number
        {"currency": "eur"},  # a wrong currency
        {"id": "cs_test_unknown"},  # an unknown session
        {"client_reference_id": "ord_someone_else"},
        {"metadata": {"order_id": "ord_someone_else"}},
    ],
)
def test_a_mismatched_session_is_a_400_and_credits_nothing(
    sgw: StripeGateway, changes: dict[str, Any]
) -> None:
    browser, account = sgw.person()
    session = sgw.paid_session(browser)
    _refused(sgw, sgw.deliver(sgw.stripe.completed(session["id"], **changes)), account)
    sgw.audit_clean(account)


def test_a_session_naming_another_accounts_order_is_refused(sgw: StripeGateway) -> None:
    mine, my_account = sgw.person()
    theirs, their_account = sgw.person()
    my_session = sgw.paid_session(mine, "5")
    their_session = sgw.paid_session(theirs, "5")
    # my paid session, rewritten to name their order (same amount): neither is credited
    event = sgw.stripe.completed(
        my_session["id"],
        client_reference_id=their_session["client_reference_id"],
        metadata=their_session["metadata"],
    )
    _refused(sgw, sgw.deliver(event), my_account)
    assert sgw.balance(their_account) == 0
    # nor is my order paid to their account through their metadata's account id
    event = sgw.stripe.completed(
        my_session["id"],
        metadata={**my_session["metadata"], "account_id": their_session["metadata"]["account_id"]},
    )
    _refused(sgw, sgw.deliver(event), my_account)
    assert sgw.balance(their_account) == 0


def test_an_unpaid_completed_session_credits_nothing(sgw: StripeGateway) -> None:
    browser, account = sgw.person()
    session = sgw.paid_session(browser)
    answer = sgw.deliver(sgw.stripe.completed(session["id"], paid=False))
    assert answer.status_code == 200 and answer.json()["outcome"] == "not paid"
    assert sgw.balance(account) == 0
    # when the money does arrive, it credits
    assert sgw.deliver(sgw.stripe.completed(session["id"])).json()["outcome"] == "credited"
    assert sgw.balance(account) == Decimal("10")


def test_other_event_types_are_acknowledged_and_ignored(sgw: StripeGateway) -> None:
    answer = sgw.deliver(sgw.stripe.event("customer.created", {"id": "cus_1"}))
    assert answer.status_code == 200 and answer.json()["outcome"] == "ignored"


def test_refunds_partial_then_full_take_the_credit_back_once_each(sgw: StripeGateway) -> None:
    browser, account = sgw.person()
    session = sgw.paid_session(browser, "20")
    sgw.deliver(sgw.stripe.completed(session["id"]))
    partial = sgw.stripe.refunded(session["id"], 500)
    for _ in range(3):  # retried: applied once
        assert sgw.deliver(partial).status_code == 200
    assert sgw.balance(account) == Decimal("15")
    full = sgw.stripe.refunded(session["id"], 2000)  # Stripe's running total
    assert sgw.deliver(full).json()["outcome"] == "taken back"
    assert sgw.deliver(full).json()["outcome"] == "already applied"
    assert sgw.balance(account) == 0
    kinds = rows(
        sgw.database_url,
        "SELECT e.kind, e.amount FROM ledger_entries e JOIN accounts a ON a.id = e.account_id"
        " WHERE a.name = :n ORDER BY e.id",
        n=account,
    )
    assert kinds == [
        {"kind": "payment", "amount": 20_000_000_000},
        {"kind": "payment_refund", "amount": -5_000_000_000},
        {"kind": "payment_refund", "amount": -15_000_000_000},
    ]
    sgw.audit_clean(account)


def test_a_dispute_takes_back_what_the_balance_has_never_below_zero(sgw: StripeGateway) -> None:
    browser, account = sgw.person()
    session = sgw.paid_session(browser, "10")
    sgw.deliver(sgw.stripe.completed(session["id"]))
    # the person spends some of it (gpt-4o-mini costs US$0.10 a token on this gateway)
    client = openai.OpenAI(base_url=sgw.url + "/v1", api_key=sgw.new_key(browser), max_retries=0)
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=8
    )
    left = sgw.balance(account)
    assert 0 < left < 10
    dispute = sgw.stripe.disputed(session["id"], 1000)
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: sgw.deliver(dispute), range(5)))
    assert sorted(a.json()["outcome"] for a in answers) == ["already applied"] * 4 + ["taken back"]
    assert sgw.balance(account) == 0  # what it had, and no more
    order = rows(
        sgw.database_url,
        "SELECT status, taken_back, shortfall FROM payment_orders WHERE stripe_session_id = :s",
        s=session["id"],
    )[0]
    assert order["status"] == "disputed"
    assert order["taken_back"] == int(left * 10**9)
    assert order["taken_back"] + order["shortfall"] == 10_000_000_000
    sgw.audit_clean(account)


def test_a_refund_of_a_charge_that_is_not_ours_is_ignored(sgw: StripeGateway) -> None:
    event = sgw.stripe.event(
        "charge.refunded",
        {"id": "ch_x", "payment_intent": "pi_not_ours", "amount_refunded": 100, "currency": "usd"},
    )
    answer = sgw.deliver(event)
    assert answer.status_code == 200 and answer.json()["outcome"] == "ignored"


def test_the_history_on_the_top_up_page_shows_the_payment(sgw: StripeGateway) -> None:
    browser, _ = sgw.person()
    session = sgw.paid_session(browser, "8.5")
    before = browser.get(sgw.url + "/topup", timeout=10).text
    assert "Card (Stripe)" not in before
    sgw.deliver(sgw.stripe.completed(session["id"]))
    page = browser.get(sgw.url + "/topup", timeout=10).text
    assert 'id="balance">$8.50<' in page
    assert "Card (Stripe)" in page and "$8.50" in page.split("<h2>History</h2>")[1]
