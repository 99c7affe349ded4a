"""Card top-ups through Stripe Checkout (docs/billing.md, "Card payments (Stripe)").

``checkout`` makes an order and its Checkout Session; ``webhook`` verifies Stripe's events and
credits or takes back through the ledger; ``orders`` reads and writes the order rows (no money).
Built only when both ``MINITOOLAI_STRIPE_SECRET_KEY`` and ``MINITOOLAI_STRIPE_WEBHOOK_SECRET``
are set; otherwise the top-up page offers codes only and the webhook path is a 404.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger
from minitoolai.payments.checkout import Checkout
from minitoolai.payments.orders import OrderBook
from minitoolai.payments.webhook import Webhook
from minitoolai.settings import Settings

log = logging.getLogger("minitoolai.payments")


@dataclass
class Payments:
    orders: OrderBook
    checkout: Checkout
    webhook: Webhook


def build_payments(settings: Settings, db: Database, ledger: Ledger) -> Payments | None:
    secret, signing = settings.stripe_secret_key, settings.stripe_webhook_secret
    if secret is None or signing is None:
        if secret is not None or signing is not None:
            log.warning(
                "card payments are off: set both MINITOOLAI_STRIPE_SECRET_KEY and"
                " MINITOOLAI_STRIPE_WEBHOOK_SECRET"
            )
        return None
    orders = OrderBook(db)
    return Payments(
        orders=orders,
        checkout=Checkout(orders, secret.get_secret_value(), api_base=settings.stripe_api_base),
        webhook=Webhook(orders, ledger, signing.get_secret_value()),
    )
