"""``POST /webhooks/stripe``: Stripe's deliveries. Not a page (no CSRF token: the signature is
the proof) and not the API (no API key): ``payments.webhook`` verifies and acts."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from minitoolai.errors import NotFound, PayloadTooLarge
from minitoolai.http.deps import services
from minitoolai.http.responses import JSON, body_length

#: Stripe's events are a few KiB; the signature is checked over the whole body, so bound it
MAX_EVENT = 256 * 1024


async def _body(request: Request) -> bytes:
    length = body_length(request)
    if length is not None and length > MAX_EVENT:
        raise PayloadTooLarge(f"an event is at most {MAX_EVENT} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_EVENT:
            raise PayloadTooLarge(f"an event is at most {MAX_EVENT} bytes")
    return bytes(body)


async def stripe_webhook(request: Request) -> Response:
    payments = services(request).payments
    if payments is None:
        raise NotFound("card payments are not configured on this server")
    event = payments.webhook.verify(await _body(request), request.headers.get("stripe-signature"))
    outcome = await payments.webhook.handle(event)
    return JSON({"received": True, "outcome": outcome})


routes: list[BaseRoute] = [Route("/webhooks/stripe", stripe_webhook, methods=["POST"])]
