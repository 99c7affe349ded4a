"""A signed-in person's pages: keys and top-up (the dashboard and usage: ``usage_pages``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from minitoolai.catalog import CHAT_MODELS
from minitoolai.clock import as_utc, utcnow
from minitoolai.errors import APIError, InvalidRequest, NotFound
from minitoolai.http.deps import services
from minitoolai.ledger.store.base import Entry
from minitoolai.limits.overrides import MAX_RATE, LimitOverrides
from minitoolai.money import nano_to_usd, usd_to_nano
from minitoolai.payments.checkout import MAX_USD, MIN_USD, PRESETS_USD, amount_minor
from minitoolai.people.service import WebSession
from minitoolai.web.forms import Form
from minitoolai.web.guard import signed_in, signed_in_post
from minitoolai.web.templating import base_url, page, redirect

log = logging.getLogger("minitoolai.web")


# -- keys ------------------------------------------------------------------------------------


async def _keys_page(
    request: Request, session: WebSession, status: int = 200, **context: Any
) -> Response:
    keys = await services(request).accounts.list_keys(session.person.account_name)
    context = {
        "form_name": "",
        "form_expires": "",
        "form_models": "",
        "form_rpm": "",
        "form_tpm": "",
        "form_daily_budget": "",
        **context,
    }
    ledger = services(request).ledger
    spent_today = {  # one indexed read per key with a daily budget
        k.prefix: (await ledger.budget_spend("key", k.id))["daily"][0]
        for k in keys
        if k.budgets.daily is not None and k.revoked_at is None
    }
    return await page(
        request,
        "keys.html",
        status,
        spent_today=spent_today,
        keys=list(reversed(keys)),
        models=sorted(CHAT_MODELS),
        new_key=context.pop("new_key", None),
        new_key_name=context.pop("new_key_name", None),
        **context,
    )


async def _keys(request: Request, session: WebSession) -> Response:
    return await _keys_page(request, session)


keys = signed_in(_keys)


def _expiry(text: str) -> datetime | None:
    """A date from the form: the key works until the end of that day (UTC)."""
    if not text.strip():
        return None
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d").date()
    except ValueError:
        raise InvalidRequest("give the expiry as a date (YYYY-MM-DD)", param="expires") from None
    end = datetime.combine(day, time.max, tzinfo=UTC)
    if end <= utcnow():
        raise InvalidRequest("the expiry date must be in the future", param="expires")
    if end > utcnow() + timedelta(days=3660):
        raise InvalidRequest("the expiry date is more than ten years away", param="expires")
    return end


def _models(text: str) -> list[str] | None:
    names = [name.strip() for name in text.split(",") if name.strip()]
    return names or None


def _daily_budget(text: str) -> int | None:
    """The key's daily budget from the form, in USD (docs/billing.md, Budgets); empty: none."""
    if not text.strip():
        return None
    try:
        amount = usd_to_nano(text.strip())
    except ValueError:
        amount = 0
    if amount <= 0:
        raise InvalidRequest("the daily budget is a USD amount above 0", param="daily_budget")
    return amount


def _key_rates(form: Form) -> dict[str, int | None]:
    """The key's own requests and tokens per minute (docs/limits.md); empty: none."""
    rates: dict[str, int | None] = {}
    for name, label in (("rpm", "requests per minute"), ("tpm", "tokens per minute")):
        text = form.get(name).strip()
        if text:
            if not text.isdigit() or not 0 < int(text) <= MAX_RATE:
                raise InvalidRequest(f"the {label} must be a whole number above 0", param=name)
            rates[name] = int(text)
    return rates


async def _create_key(request: Request, form: Form, session: WebSession) -> Response:
    name = form.get("name").strip() or None
    try:
        rates = _key_rates(form)  # before the key exists: a wrong number creates nothing
        key, record = await services(request).accounts.create_key(
            session.person.account_name,
            name=name,
            expires_at=_expiry(form.get("expires")),
            allowed_models=_models(form.get("models")),
            daily_budget=_daily_budget(form.get("daily_budget")),
        )
        if rates:
            await LimitOverrides(services(request).db).set_key(key, rates)
    except APIError as exc:
        return await _keys_page(
            request,
            session,
            exc.status_code,
            error=exc.message,
            form_name=form.get("name"),
            form_expires=form.get("expires"),
            form_models=form.get("models"),
            form_rpm=form.get("rpm"),
            form_tpm=form.get("tpm"),
            form_daily_budget=form.get("daily_budget"),
        )
    log.info("key %s created for account %d from the web", record.prefix, session.person.account_id)
    # Answered, not redirected: the one time the whole key exists outside the client's hands.
    # The page is no-store, so neither the back button nor a cache shows it again.
    return await _keys_page(request, session, 201, new_key=key, new_key_name=record.name)


create_key = signed_in_post(_create_key)


async def _revoke_key(request: Request, form: Form, session: WebSession) -> Response:
    svc = services(request)
    prefix = form.get("prefix")
    mine = [
        k
        for k in await svc.accounts.list_keys(session.person.account_name)
        if k.prefix == prefix and k.revoked_at is None
    ]
    if not mine:
        return await _keys_page(
            request, session, 404, error="No live key of yours has that prefix."
        )
    try:
        key_hash = await svc.accounts.revoke_key(prefix)
    except (NotFound, APIError) as exc:
        return await _keys_page(request, session, exc.status_code, error=exc.message)
    svc.auth.forget(key_hash)
    log.info("key %s revoked from the web", prefix)
    return redirect("/keys")


revoke_key = signed_in_post(_revoke_key)


# -- top up ----------------------------------------------------------------------------------

#: how each kind of credit entry reads in the top-up history
_HOW = {
    "topup": "Added by the operator",
    "payment": "Card (Stripe)",
    "payment_refund": "Card payment refunded",
    "payment_dispute": "Card payment disputed",
}
TOPUP_HISTORY_ROWS = 100


@dataclass(slots=True)
class _Credit:
    created_at: datetime
    how: str
    amount: int


def _how(entry: Entry) -> str:
    if entry.kind == "redeem":  # the note is "code ...WXYZ of batch_..."
        return "Code " + (entry.note or "").split(" of ")[0].removeprefix("code ")
    return _HOW.get(entry.kind, entry.kind)


def _card_csp(response: Response, origins: list[str]) -> Response:
    """The card form's POST is answered by a redirect to Stripe's page, and a form's
    redirects must be allowed by ``form-action`` too."""
    csp = response.headers["Content-Security-Policy"]
    response.headers["Content-Security-Policy"] = csp.replace(
        "form-action 'self'", "form-action 'self' " + " ".join(origins)
    )
    return response


async def _topup_page(
    request: Request, session: WebSession, status: int = 200, **context: Any
) -> Response:
    svc = services(request)
    account_id = session.person.account_id
    balance, _ = await svc.ledger.balances(account_id)
    history = [
        _Credit(as_utc(e.created_at), _how(e), e.amount)
        for e in await svc.ledger.top_up_history(account_id, TOPUP_HISTORY_ROWS)
    ]
    if "notice" not in context and "error" not in context:
        if request.query_params.get("paid"):
            context["notice"] = (
                "Thank you: Stripe is confirming your payment, and your balance rises as soon as"
                " it has. Reload this page in a moment."
            )
        elif request.query_params.get("cancelled"):
            context["notice"] = "The card payment was cancelled: nothing was charged."
    response = await page(
        request,
        "topup.html",
        status,
        balance=balance,
        history=history,
        card=svc.payments is not None,
        presets=PRESETS_USD,
        min_usd=MIN_USD,
        max_usd=MAX_USD,
        form_amount=context.pop("form_amount", ""),
        **context,
    )
    if svc.payments is not None:
        _card_csp(response, svc.payments.checkout.origins())
    return response


async def _topup(request: Request, session: WebSession) -> Response:
    return await _topup_page(request, session)


topup = signed_in(_topup)


async def _redeem(request: Request, form: Form, session: WebSession) -> Response:
    try:
        done = await services(request).codes.redeem(
            session.person.account_id, form.get("code").strip()
        )
    except APIError as exc:
        response = await _topup_page(request, session, exc.status_code, error=exc.message)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response
    log.info("code of batch %s redeemed by account %d", done.batch_id, session.person.account_id)
    amount = "$" + nano_to_usd(done.amount)
    return await _topup_page(request, session, notice=f"Redeemed: {amount} added to your balance.")


redeem = signed_in_post(_redeem)


async def _pay_by_card(request: Request, form: Form, session: WebSession) -> Response:
    """Start a card payment: an order and its Checkout Session, then off to Stripe's page.
    Nothing is credited here; Stripe's webhook does that."""
    payments = services(request).payments
    if payments is None:
        return await _topup_page(request, session, 404, error="Card payments are not offered here.")
    try:
        cents = amount_minor(form.get("amount").strip() or form.get("preset"))
        url = await payments.checkout.start(
            session.person.account_id, cents, base_url(request) + "/topup"
        )
    except APIError as exc:
        return await _topup_page(
            request, session, exc.status_code, error=exc.message, form_amount=form.get("amount")
        )
    return redirect(url)


pay_by_card = signed_in_post(_pay_by_card)
