"""Card payments through the ledger, on SQLite and PostgreSQL: a paid order credits once however
many deliveries race; refunds and disputes take back once per event, never below zero, and
what could not be taken is kept as the order's shortfall."""

from __future__ import annotations

import asyncio

from sqlalchemy import update

from minitoolai.accounts.service import AccountService
from minitoolai.clock import utcnow
from minitoolai.infra.db import Database
from minitoolai.infra.tables import payment_orders
from minitoolai.ledger.service import Ledger
from minitoolai.ledger.store.base import PaymentCredit, TakeBack
from minitoolai.money import usd_to_nano
from minitoolai.payments.orders import Order, OrderBook
from tests.conftest import unique
from tests.support.ledgers import OPEN as _open
from tests.support.ledgers import close_ledgers as close_ledgers  # autouse


def _ledger(db: Database) -> Ledger:
    ledger = Ledger(db)
    _open.append(ledger)
    return ledger


async def _paid_order(db: Database, ledger: Ledger, cents: int = 1000) -> Order:
    """An account with an order of ``cents`` whose session is ``cs_<order>``, credited."""
    account, _ = await AccountService(db, ledger).create(unique())
    orders = OrderBook(db)
    order = await orders.create(account.id, cents, "usd", utcnow())
    await orders.attach_session(order.id, "cs_" + order.id, utcnow())
    credit = await _pay(ledger, order, intent="pi_" + order.id)
    assert credit is not None and credit.amount == cents * 10_000_000
    found = await orders.by_id(order.id)
    assert found is not None and found.status == "paid"
    return found


async def _pay(ledger: Ledger, order: Order, intent: str | None = None) -> PaymentCredit | None:
    return await ledger.pay_order(
        order.id,
        "cs_" + order.id,
        amount_minor=order.amount_minor,
        currency="usd",
        payment_intent=intent or "pi_" + order.id,
    )


async def _conserved(ledger: Ledger, account_id: int) -> None:
    assert await ledger.balances(account_id) == await ledger.entry_sums(account_id)


async def test_racing_deliveries_of_a_paid_session_credit_once(db: Database) -> None:
    ledger = _ledger(db)
    account, _ = await AccountService(db, ledger).create(unique())
    orders = OrderBook(db)
    order = await orders.create(account.id, 2500, "usd", utcnow())
    await orders.attach_session(order.id, "cs_" + order.id, utcnow())
    got = await asyncio.gather(*(_pay(ledger, order) for _ in range(10)))
    assert sum(g is not None for g in got) == 1
    assert await ledger.balances(account.id) == (usd_to_nano("25"), 0)
    assert [e.kind for e in await ledger.recent_entries(account.id)] == ["payment"]
    await _conserved(ledger, account.id)


async def test_a_session_credits_only_its_own_order_for_its_amount(db: Database) -> None:
    ledger = _ledger(db)
    account, _ = await AccountService(db, ledger).create(unique())
    orders = OrderBook(db)
    order = await orders.create(account.id, 500, "usd", utcnow())
    await orders.attach_session(order.id, "cs_" + order.id, utcnow())
    wrong = [
        ("cs_other", 500, "usd"),  # another session
        ("cs_" + order.id, 501, "usd"),  # another amount
        ("cs_" + order.id, 500, "eur"),  # another currency
    ]
    for session_id, cents, currency in wrong:
        got = await ledger.pay_order(
            order.id, session_id, amount_minor=cents, currency=currency, payment_intent=None
        )
        assert got is None
    assert await ledger.balances(account.id) == (0, 0)
    assert (await orders.by_id(order.id)).status == "created"  # type: ignore[union-attr]


async def test_a_partial_then_full_refund_takes_back_each_part_once(db: Database) -> None:
    ledger = _ledger(db)
    order = await _paid_order(db, ledger, 1000)
    intent = "pi_" + order.id
    first = await ledger.take_back_payment(
        "evt_a_" + order.id, "charge.refunded", intent, "refund", 300
    )
    assert (
        isinstance(first, TakeBack) and first.taken == usd_to_nano("3") and first.status == "paid"
    )
    again = await ledger.take_back_payment(
        "evt_a_" + order.id, "charge.refunded", intent, "refund", 300
    )
    assert again == "seen"
    # Stripe's running total: the second refund event says 1000 in all, so 7 more come back
    rest = await ledger.take_back_payment(
        "evt_b_" + order.id, "charge.refunded", intent, "refund", 1000
    )
    assert (
        isinstance(rest, TakeBack) and rest.taken == usd_to_nano("7") and rest.status == "refunded"
    )
    # a late copy of the first total under a new id asks for nothing more
    late = await ledger.take_back_payment(
        "evt_c_" + order.id, "charge.refunded", intent, "refund", 300
    )
    assert isinstance(late, TakeBack) and late.wanted == 0
    assert await ledger.balances(order.account_id) == (0, 0)
    await _conserved(ledger, order.account_id)


async def test_a_refund_never_takes_the_balance_below_zero_and_keeps_the_shortfall(
    db: Database,
) -> None:
    ledger = _ledger(db)
    order = await _paid_order(db, ledger, 1000)
    spent = await ledger.hold(order.account_id, usd_to_nano("6"), kind="chat", model="m")
    await ledger.settle(spent.charge_id, usd_to_nano("6"))
    held = await ledger.hold(order.account_id, usd_to_nano("1"), kind="chat", model="m")
    got = await ledger.take_back_payment(
        "evt_" + order.id, "charge.refunded", "pi_" + order.id, "refund", 1000
    )
    # $10 asked back; $4 left, $1 of it held by a live request: $3 taken, $7 short
    assert isinstance(got, TakeBack)
    assert (got.wanted, got.taken, got.shortfall) == (
        usd_to_nano("10"),
        usd_to_nano("3"),
        usd_to_nano("7"),
    )
    assert await ledger.balances(order.account_id) == (usd_to_nano("1"), usd_to_nano("1"))
    after = await OrderBook(db).by_id(order.id)
    assert after is not None and after.shortfall == usd_to_nano("7")
    assert after.taken_back == usd_to_nano("3") and after.status == "refunded"
    await ledger.release(held.charge_id)
    await _conserved(ledger, order.account_id)


async def test_a_dispute_takes_back_once_and_never_more_than_was_paid(db: Database) -> None:
    ledger = _ledger(db)
    order = await _paid_order(db, ledger, 2000)
    intent = "pi_" + order.id
    await ledger.take_back_payment("evt_r_" + order.id, "charge.refunded", intent, "refund", 500)
    racing = await asyncio.gather(
        *(
            ledger.take_back_payment(
                "evt_d_" + order.id, "charge.dispute.created", intent, "dispute", 2000
            )
            for _ in range(5)
        )
    )
    applied = [r for r in racing if isinstance(r, TakeBack)]
    assert len(applied) == 1 and racing.count("seen") == 4
    assert applied[0].taken == usd_to_nano("15")  # what was paid less what was refunded
    assert applied[0].status == "disputed"
    assert await ledger.balances(order.account_id) == (0, 0)
    await _conserved(ledger, order.account_id)


async def test_take_backs_of_unknown_or_unpaid_orders_write_nothing(db: Database) -> None:
    ledger = _ledger(db)
    assert (
        await ledger.take_back_payment("evt_x", "charge.refunded", "pi_nobody", "refund", 100)
        == "unknown"
    )
    account, _ = await AccountService(db, ledger).create(unique(), usd_to_nano("5"))
    orders = OrderBook(db)
    order = await orders.create(account.id, 500, "usd", utcnow())
    await orders.attach_session(order.id, "cs_" + order.id, utcnow())
    # a payment intent on an unpaid order: only the fake's sessions carry one this early
    async with db.write() as conn:
        await conn.execute(
            update(payment_orders)
            .where(payment_orders.c.id == order.id)
            .values(payment_intent_id="pi_" + order.id)
        )
    got = await ledger.take_back_payment(
        "evt_u_" + order.id, "charge.refunded", "pi_" + order.id, "refund", 500
    )
    assert got == "unpaid"
    assert await ledger.balances(account.id) == (usd_to_nano("5"), 0)
    # the event was not recorded: once the payment lands, the retry applies
    assert await _pay(ledger, order) is not None
    later = await ledger.take_back_payment(
        "evt_u_" + order.id, "charge.refunded", "pi_" + order.id, "refund", 500
    )
    assert isinstance(later, TakeBack) and later.taken == usd_to_nano("5")
    await _conserved(ledger, account.id)


async def test_the_history_lists_credits_and_take_backs_newest_first(db: Database) -> None:
    ledger = _ledger(db)
    order = await _paid_order(db, ledger, 700)
    await ledger.top_up(order.account_id, usd_to_nano("2"), note="operator")
    spent = await ledger.hold(order.account_id, usd_to_nano("1"), kind="chat", model="m")
    await ledger.settle(spent.charge_id, usd_to_nano("1"))
    await ledger.take_back_payment(
        "evt_h_" + order.id, "charge.refunded", "pi_" + order.id, "refund", 100
    )
    history = await ledger.top_up_history(order.account_id)
    assert [(e.kind, e.amount) for e in history] == [
        ("payment_refund", -usd_to_nano("1")),
        ("topup", usd_to_nano("2")),
        ("payment", usd_to_nano("7")),
    ]
    assert order.id in (history[-1].note or "")
