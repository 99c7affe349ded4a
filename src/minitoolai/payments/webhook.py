"""Stripe's webhook: verify an event's signature, then credit or take back what it says.

Money comes in only here, and only when every check holds:

1. the ``Stripe-Signature`` header verifies over the raw body with the webhook secret
   (``stripe.Webhook.construct_event``: HMAC-SHA256, and a timestamp at most 5 minutes old);
2. ``checkout.session.completed`` (or ``async_payment_succeeded``) names a Checkout Session
   that one of our orders holds, and the session names that same order in
   ``client_reference_id`` and ``metadata.order_id`` (and its account in ``metadata``);
3. the session's ``amount_total`` and ``currency`` are the order's, and it is ``paid``.

Then ``Ledger.pay_order`` marks the order paid and credits the account in one transaction,
conditional on the order being unpaid: a retried or racing delivery credits nothing more and is
answered 200. A check that fails is a 400 that changes nothing (Stripe shows it to the operator
and retries). ``charge.refunded`` and ``charge.dispute.created`` are matched by payment intent
and take the credit back once per event id (``Ledger.take_back_payment``). Other events: 200.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from minitoolai.clock import utcnow
from minitoolai.errors import Conflict, InvalidRequest
from minitoolai.ledger.service import Ledger
from minitoolai.ledger.store.base import TakeBack, TakeBackKind
from minitoolai.payments.orders import Order, OrderBook

log = logging.getLogger("minitoolai.payments")

#: Stripe's own default: an event signed longer ago than this is refused (replays)
TOLERANCE_S = 300
PAID_SESSION_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")


class Rejected(InvalidRequest):
    """An event we will not act on: a 400, and nothing changed."""

    default_code = "webhook_rejected"


def _ref(value: Any) -> str | None:
    """An id Stripe may send bare (``"pi_..."``) or expanded (``{"id": "pi_..."}``)."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and 0 < len(value) <= 200 else None


def _count(value: Any) -> int | None:
    """An amount in minor units: a JSON integer, never a bool or a float."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Webhook:
    def __init__(
        self,
        orders: OrderBook,
        ledger: Ledger,
        secret: str,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.orders = orders
        self.ledger = ledger
        self.secret = secret
        self.clock = clock

    def verify(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event, if the header signs this body with our secret, recently; else a 400."""
        import stripe  # here, not at import: a gateway without card payments never loads it

        try:
            event = stripe.Webhook.construct_event(
                payload, signature, self.secret, tolerance=TOLERANCE_S
            )
        except (stripe.SignatureVerificationError, ValueError) as exc:
            log.warning("a Stripe webhook was refused: %s", str(exc)[:200])
            raise Rejected(
                "the Stripe-Signature header does not verify", code="bad_signature"
            ) from None
        found: dict[str, Any] = event.to_dict()
        return found

    async def handle(self, event: dict[str, Any]) -> str:
        """Act on a verified event; says what it did (``credited``, ``already credited``...)."""
        kind = event.get("type")
        data = event.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        event_id = _ref(event.get("id"))
        if not isinstance(kind, str) or not isinstance(obj, dict) or event_id is None:
            raise Rejected("not a Stripe event")
        if kind in PAID_SESSION_EVENTS:
            return await self._paid_session(obj)
        if kind == "charge.refunded":
            return await self._take_back(event_id, kind, "refund", obj, obj.get("amount_refunded"))
        if kind == "charge.dispute.created":
            return await self._take_back(event_id, kind, "dispute", obj, obj.get("amount"))
        return "ignored"

    async def _paid_session(self, session: dict[str, Any]) -> str:
        session_id = _ref(session.get("id"))
        order = None if session_id is None else await self.orders.by_session(session_id)
        if order is None or session_id is None:
            log.warning("a paid session %r that no order of ours made", session_id)
            raise Rejected("no order of this server has this Checkout Session")
        _same_order(session, order)
        if session.get("payment_status") != "paid":
            log.info(
                "order %s: its session completed unpaid (%s)",
                order.id,
                session.get("payment_status"),
            )
            return "not paid"
        credit = await self.ledger.pay_order(
            order.id,
            session_id,
            amount_minor=order.amount_minor,
            currency=order.currency,
            payment_intent=_ref(session.get("payment_intent")),
            now=self.clock(),
        )
        return "credited" if credit is not None else "already credited"

    async def _take_back(
        self, event_id: str, event_type: str, kind: TakeBackKind, obj: dict[str, Any], minor: Any
    ) -> str:
        intent = _ref(obj.get("payment_intent"))
        order = None if intent is None else await self.orders.by_payment_intent(intent)
        if order is None or intent is None:
            # a charge of something else sold on the same Stripe account
            log.info("%s %s: no order of ours has payment intent %r", event_type, event_id, intent)
            return "ignored"
        amount = _count(minor)
        if amount is None or amount < 0 or obj.get("currency") != order.currency:
            log.warning(
                "%s %s for order %s: a wrong amount or currency", event_type, event_id, order.id
            )
            raise Rejected("the amount or currency is not the order's")
        got = await self.ledger.take_back_payment(
            event_id, event_type, intent, kind, amount, now=self.clock()
        )
        if got == "unpaid":  # not credited yet: Stripe retries until the payment lands first
            raise Conflict("this order is not paid yet", code="order_not_paid")
        if isinstance(got, TakeBack):
            return "taken back"
        return "already applied" if got == "seen" else "ignored"


def _same_order(session: dict[str, Any], order: Order) -> None:
    """The session names the order that holds it, for its amount and currency: a 400 if not."""
    metadata = session.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    account = metadata.get("account_id")
    if (
        session.get("client_reference_id") != order.id
        or metadata.get("order_id") != order.id
        or (account is not None and account != str(order.account_id))
    ):
        log.warning("order %s: a session that names another order or account", order.id)
        raise Rejected("the session names another order")
    if (
        _count(session.get("amount_total")) != order.amount_minor
        or session.get("currency") != order.currency
    ):
        log.warning(
            "order %s: a session for %r %r, not the order's %d %s",
            order.id,
            session.get("amount_total"),
            session.get("currency"),
            order.amount_minor,
            order.currency,
        )
        raise Rejected("the session's amount or currency is not the order's")
