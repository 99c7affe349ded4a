"""A small real HTTP server that speaks enough of Stripe's API for card top-ups, and the events
Stripe would send about them, signed as Stripe signs them.

- ``POST /v1/checkout/sessions``: form-encoded (``line_items[0][price_data][unit_amount]=500``,
  as the ``stripe`` package sends it), a secret key as bearer; answers a Checkout Session
  object (``cs_test_...``, ``url``, ``amount_total``, ``currency``, ``client_reference_id``,
  ``metadata``, ``payment_intent``). The same ``Idempotency-Key`` gets the same session back.
  Everything it was sent is kept in ``sent`` (the fields, unflattened, and the headers).
- ``GET /c/pay/{id}``: a page standing in for Stripe's hosted checkout.
- ``completed``/``refunded``/``disputed`` build the events; ``deliver`` signs one with the
  webhook secret (``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">``, Stripe's
  scheme, written here without the ``stripe`` package so the package is what is tested) and
  POSTs it to a gateway.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

SECRET_KEY = "sk_test_fake_minitoolai"
WEBHOOK_SECRET = "whsec_test_fake_minitoolai"


def _unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``a[b][0][c]=1`` -> ``{"a": {"b": [{"c": "1"}]}}`` (Stripe's form encoding)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node: Any = out
        for part, following in itertools.pairwise(parts):
            nxt: Any = [] if following.isdigit() else {}
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(copy.copy(nxt))
                node = node[index]
            else:
                node = node.setdefault(part, nxt)
        last = parts[-1]
        if isinstance(node, list):
            index = int(last)
            while len(node) <= index:
                node.append(None)
            node[index] = value
        else:
            node[last] = value
    return out


@dataclass
class Sent:
    fields: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeStripe:
    secret_key: str = SECRET_KEY
    webhook_secret: str = WEBHOOK_SECRET
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    #: answer every create with a 500 (Stripe down)
    down: bool = False
    _by_key: dict[str, str] = field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/checkout/sessions", self._create, methods=["POST"]),
                Route("/c/pay/{session_id}", self._pay_page, methods=["GET"]),
            ]
        )

    async def _create(self, request: Request) -> Response:
        body = (await request.body()).decode()
        fields = _unflatten(parse_qsl(body, keep_blank_values=True))
        self.sent.append(Sent(fields, dict(request.headers)))
        if request.headers.get("authorization") != f"Bearer {self.secret_key}":
            return JSONResponse(
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}}, 401
            )
        if self.down:
            return JSONResponse({"error": {"type": "api_error", "message": "down"}}, 500)
        key = request.headers.get("idempotency-key")
        if key and key in self._by_key:
            return JSONResponse(self.sessions[self._by_key[key]])
        item = fields["line_items"][0]
        amount = int(item["price_data"]["unit_amount"]) * int(item.get("quantity", "1"))
        session_id = "cs_test_" + secrets.token_hex(16)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": fields.get("mode"),
            "status": "open",
            "payment_status": "unpaid",
            "url": f"{str(request.base_url).rstrip('/')}/c/pay/{session_id}",
            "amount_total": amount,
            "amount_subtotal": amount,
            "currency": item["price_data"]["currency"],
            "client_reference_id": fields.get("client_reference_id"),
            "metadata": fields.get("metadata", {}),
            "payment_intent": "pi_test_" + secrets.token_hex(12),
            "success_url": fields.get("success_url"),
            "cancel_url": fields.get("cancel_url"),
            "livemode": False,
        }
        self.sessions[session_id] = session
        if key:
            self._by_key[key] = session_id
        return JSONResponse(session)

    async def _pay_page(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["session_id"])
        if session is None:
            return HTMLResponse("<h1>No such session</h1>", 404)
        dollars = f"{session['amount_total'] / 100:.2f}"
        return HTMLResponse(
            f"<!doctype html><title>Fake Checkout</title><h1>Fake Stripe Checkout</h1>"
            f"<p id='amount'>Pay ${dollars} {session['currency'].upper()}</p>"
        )

    # -- events ------------------------------------------------------------------------------

    def last_session(self) -> dict[str, Any]:
        return list(self.sessions.values())[-1]

    @staticmethod
    def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "evt_test_" + secrets.token_hex(12),
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "type": kind,
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": obj},
        }

    def completed(self, session_id: str, *, paid: bool = True, **changes: Any) -> dict[str, Any]:
        """``checkout.session.completed`` for the session (with ``changes`` to its fields)."""
        session = copy.deepcopy(self.sessions[session_id])
        session.update(status="complete", payment_status="paid" if paid else "unpaid")
        session.update(changes)
        return self.event("checkout.session.completed", session)

    def _charge(self, session_id: str) -> dict[str, Any]:
        session = self.sessions[session_id]
        return {
            "id": "ch_" + session["payment_intent"].removeprefix("pi_"),
            "object": "charge",
            "amount": session["amount_total"],
            "currency": session["currency"],
            "payment_intent": session["payment_intent"],
            "paid": True,
        }

    def refunded(self, session_id: str, amount_refunded: int, **changes: Any) -> dict[str, Any]:
        """``charge.refunded``: ``amount_refunded`` is the charge's running total, as Stripe's."""
        charge = self._charge(session_id)
        charge.update(amount_refunded=amount_refunded, refunded=amount_refunded >= charge["amount"])
        charge.update(changes)
        return self.event("charge.refunded", charge)

    def disputed(self, session_id: str, amount: int, **changes: Any) -> dict[str, Any]:
        charge = self._charge(session_id)
        dispute = {
            "id": "dp_" + secrets.token_hex(12),
            "object": "dispute",
            "amount": amount,
            "currency": charge["currency"],
            "charge": charge["id"],
            "payment_intent": charge["payment_intent"],
            "reason": "fraudulent",
            "status": "needs_response",
        }
        dispute.update(changes)
        return self.event("charge.dispute.created", dispute)

    def sign(
        self, payload: bytes, *, timestamp: int | None = None, secret: str | None = None
    ) -> str:
        t = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new(
            (secret or self.webhook_secret).encode(), f"{t}.".encode() + payload, hashlib.sha256
        )
        return f"t={t},v1={mac.hexdigest()}"

    def deliver(
        self,
        gateway_url: str,
        event: dict[str, Any],
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        signature: str | None = None,
    ) -> requests.Response:
        """POST the event to the gateway's webhook as Stripe does (the same bytes signed)."""
        payload = orjson.dumps(event)
        header = signature or self.sign(payload, timestamp=timestamp, secret=secret)
        return requests.post(
            gateway_url + "/webhooks/stripe",
            data=payload,
            headers={"Content-Type": "application/json", "Stripe-Signature": header},
            timeout=30,
        )
