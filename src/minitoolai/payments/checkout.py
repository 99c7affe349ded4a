"""Starting a card top-up: an order of ours first, then a Stripe Checkout Session naming it.

The session is made with the ``stripe`` package (``StripeClient``; its API base is
``MINITOOLAI_STRIPE_API_BASE`` when set, for a local fake in tests), in a thread since the
package's HTTP client blocks. The order's id is the session's ``client_reference_id``, its
metadata and its idempotency key (a retried create cannot make a second session), and the
answer is checked against the order before the browser is sent to it. No money moves here:
only the webhook credits (``payments.webhook``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from minitoolai.clock import utcnow
from minitoolai.errors import APIError, InvalidRequest
from minitoolai.payments.orders import OrderBook

if TYPE_CHECKING:
    import stripe
    from stripe.params.checkout import SessionCreateParams

log = logging.getLogger("minitoolai.payments")

CURRENCY = "usd"
#: what one card top-up may be, in US dollars (Stripe's minimum for USD is $0.50)
MIN_USD = Decimal("1")
MAX_USD = Decimal("1000")
#: the amounts the top-up page offers at one click
PRESETS_USD = ("5", "10", "25", "50")
PRODUCT_NAME = "MiniToolAI credit"


class CheckoutFailed(APIError):
    """Stripe could not be reached or answered something we cannot send a person to."""

    status_code = 502
    error_type = "api_error"


_PLAIN_USD = re.compile(r"[0-9]{1,7}(\.[0-9]{1,2})?")


def amount_minor(text: str) -> int:
    """A US dollar amount from the form (``10``, ``12.50``, ``$7``) in cents, within bounds:
    plain digits with at most two decimals (no exponent, sign or separators)."""
    cleaned = text.strip().removeprefix("$").strip()
    if not _PLAIN_USD.fullmatch(cleaned) or not MIN_USD <= Decimal(cleaned) <= MAX_USD:
        raise InvalidRequest(
            f"give an amount in US dollars from {MIN_USD} to {MAX_USD} with at most two"
            " decimals, e.g. 10 or 12.50",
            param="amount",
        )
    return int(Decimal(cleaned) * 100)


class Checkout:
    def __init__(
        self,
        orders: OrderBook,
        secret_key: str,
        *,
        api_base: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        import stripe  # here, not at import: a gateway without card payments never loads it

        self.orders = orders
        self.clock = clock
        self.api_base = api_base
        self.client: stripe.StripeClient = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=2,  # the idempotency key makes a retried create safe
            http_client=stripe.RequestsClient(timeout=20),
        )

    def origins(self) -> list[str]:
        """Where a browser is sent to pay (Stripe's Checkout; the fake behind ``api_base`` in
        tests): the top-up page's ``form-action`` must allow them."""
        found = ["https://checkout.stripe.com"]
        if self.api_base:
            parts = urlsplit(self.api_base)
            found.append(f"{parts.scheme}://{parts.netloc}")
        return found

    async def start(self, account_id: int, cents: int, return_url: str) -> str:
        """Make an order and its Checkout Session; the URL to send the browser to."""
        import stripe

        order = await self.orders.create(account_id, cents, CURRENCY, self.clock())
        params: SessionCreateParams = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": CURRENCY,
                        "unit_amount": cents,
                        "product_data": {"name": PRODUCT_NAME},
                    },
                }
            ],
            "client_reference_id": order.id,
            "metadata": {"order_id": order.id, "account_id": str(account_id)},
            "payment_intent_data": {"metadata": {"order_id": order.id}},
            "success_url": f"{return_url}?paid={order.id}",
            "cancel_url": f"{return_url}?cancelled={order.id}",
        }
        try:
            session = await asyncio.to_thread(
                self.client.v1.checkout.sessions.create,
                params,
                {"idempotency_key": f"minitoolai-{order.id}"},
            )
        except stripe.StripeError as exc:
            log.warning("order %s: Stripe refused or could not be reached: %s", order.id, exc)
            raise CheckoutFailed(
                "The card payment could not be started; please try again in a moment."
            ) from None
        url = _session_url(session, order.id, cents)
        await self.orders.attach_session(order.id, str(session.id), self.clock())
        log.info("order %s: Checkout Session %s for %d cents", order.id, session.id, cents)
        return url


def _session_url(session: Any, order_id: str, cents: int) -> str:
    """The session's URL, once the session is seen to be the one we asked for."""
    url = getattr(session, "url", None)
    if (
        not isinstance(getattr(session, "id", None), str)
        or getattr(session, "client_reference_id", None) != order_id
        or getattr(session, "amount_total", None) != cents
        or getattr(session, "currency", None) != CURRENCY
        or not isinstance(url, str)
        or not url.startswith(("https://", "http://"))
    ):
        log.error("order %s: Stripe answered a session that is not the one asked for", order_id)
        raise CheckoutFailed("The card payment could not be started.")
    return url
