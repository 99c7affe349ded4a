"""A signed-in person's pages: dashboard, keys, usage (and its CSV), top-up."""

from __future__ import annotations

import csv
import io
import logging
from datetime import UTC, datetime, time, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from minitoolai.catalog import CHAT_MODELS
from minitoolai.clock import as_utc, utcnow
from minitoolai.errors import APIError, InvalidRequest, NotFound
from minitoolai.http.deps import services
from minitoolai.money import nano_to_usd
from minitoolai.people.service import WebSession
from minitoolai.web.forms import Form
from minitoolai.web.guard import signed_in, signed_in_post
from minitoolai.web.reads import overview
from minitoolai.web.security import secure_page
from minitoolai.web.templating import page, redirect

log = logging.getLogger("minitoolai.web")

USAGE_ROWS = 500


async def _dashboard(request: Request, session: WebSession) -> Response:
    seen = await overview(services(request).ledger, session.person.account_id)
    return await page(
        request,
        "dashboard.html",
        balance=seen.balance,
        held=seen.held,
        spent_today=seen.spent_today,
        spent_month=seen.spent_month,
        recent=seen.recent,
    )


dashboard = signed_in(_dashboard)


# -- keys ------------------------------------------------------------------------------------


async def _keys_page(
    request: Request, session: WebSession, status: int = 200, **context: Any
) -> Response:
    keys = await services(request).accounts.list_keys(session.person.account_name)
    context = {"form_name": "", "form_expires": "", "form_models": "", **context}
    return await page(
        request,
        "keys.html",
        status,
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


async def _create_key(request: Request, form: Form, session: WebSession) -> Response:
    name = form.get("name").strip() or None
    try:
        key, record = await services(request).accounts.create_key(
            session.person.account_name,
            name=name,
            expires_at=_expiry(form.get("expires")),
            allowed_models=_models(form.get("models")),
        )
    except APIError as exc:
        return await _keys_page(
            request,
            session,
            exc.status_code,
            error=exc.message,
            form_name=form.get("name"),
            form_expires=form.get("expires"),
            form_models=form.get("models"),
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


# -- usage -----------------------------------------------------------------------------------


async def _usage(request: Request, session: WebSession) -> Response:
    rows = await services(request).ledger.usage(session.person.account_id, USAGE_ROWS)
    return await page(request, "usage.html", recent=rows, limit=USAGE_ROWS)


usage = signed_in(_usage)

_CSV_COLUMNS = (
    "created_at",
    "request_id",
    "kind",
    "model",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "units",
    "estimated",
    "cost_usd",
)


async def _usage_csv(request: Request, session: WebSession) -> Response:
    rows = await services(request).ledger.usage(session.person.account_id, 100_000)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_CSV_COLUMNS)
    for r in rows:
        writer.writerow(
            [
                as_utc(r.created_at).isoformat(),
                r.request_id or "",
                r.kind,
                _cell(r.model),
                r.status,
                "" if r.prompt_tokens is None else r.prompt_tokens,
                "" if r.completion_tokens is None else r.completion_tokens,
                "" if r.units is None else r.units,
                "true" if r.estimated else "false",
                nano_to_usd(r.cost),
            ]
        )
    response = Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="minitoolai-usage.csv"'},
    )
    return secure_page(response)


def _cell(text: str) -> str:
    """No spreadsheet formula injection: a cell starting with = + - @ is quoted as text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


usage_csv = signed_in(_usage_csv)


# -- top up ----------------------------------------------------------------------------------


async def _topup_page(
    request: Request, session: WebSession, status: int = 200, **context: Any
) -> Response:
    balance, _ = await services(request).ledger.balances(session.person.account_id)
    return await page(
        request,
        "topup.html",
        status,
        balance=balance,
        **context,
    )


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
