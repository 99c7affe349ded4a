"""The console's accounts: search, one account's money, credit adjustments, suspension."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from minitoolai.errors import APIError, InvalidRequest
from minitoolai.http.deps import services
from minitoolai.money import nano_to_usd, usd_to_nano
from minitoolai.people.service import WebSession
from minitoolai.web.console_guard import admin_page, admin_post
from minitoolai.web.forms import Form
from minitoolai.web.templating import page, redirect


async def _accounts(request: Request, session: WebSession) -> Response:
    query = request.query_params.get("q", "")
    found = await services(request).account_admin.search(query)
    return await page(request, "console/accounts.html", accounts=found, q=query)


accounts = admin_page(_accounts)


async def _account_page(
    request: Request, name: str, status: int = 200, **context: object
) -> Response:
    svc = services(request)
    account = await svc.account_admin.get(name)
    return await page(
        request,
        "console/account.html",
        status,
        account=account,
        entries=await svc.ledger.recent_entries(account.id, 20),
        open_holds=await svc.ledger.open_holds(account.id),
        key_ttl=svc.settings.key_cache_ttl_s,
        **context,
    )


async def _account(request: Request, session: WebSession) -> Response:
    notice = NOTICES.get(request.query_params.get("done", ""))
    return await _account_page(request, request.path_params["name"], notice=notice)


account = admin_page(_account)


#: what the page says after a form worked (the redirect names one: no free text in URLs)
NOTICES = {
    "adjusted": "Credit adjusted.",
    "suspended": "Account suspended.",
    "restored": "Account restored.",
}


def _back(name: str, done: str) -> Response:
    return redirect(f"/console/accounts/{quote(name, safe='')}?done={done}")


def _amount(text: str) -> int:
    try:
        return usd_to_nano(text.strip().lstrip("+") or "x")
    except ValueError:
        raise InvalidRequest(
            "enter an amount in USD, e.g. 5, -2.50 or 0.000001", param="amount"
        ) from None


async def _adjust(request: Request, form: Form, session: WebSession) -> Response:
    svc = services(request)
    name = request.path_params["name"]
    note = form.get("note").strip()
    try:
        target = await svc.account_admin.get(name)
        amount = _amount(form.get("amount"))
        balance = await svc.ledger.adjust(target.id, amount, note)
    except APIError as exc:
        if exc.status_code == 404:
            raise
        return await _account_page(
            request,
            name,
            exc.status_code,
            error=exc.message,
            form_amount=form.get("amount"),
            form_note=note,
        )
    await svc.audit.record(
        session.person.email,
        "credit.adjust",
        name,
        {"amount": nano_to_usd(amount), "note": note, "balance": nano_to_usd(balance)},
    )
    return _back(name, "adjusted")


adjust = admin_post(_adjust)


async def _suspend(request: Request, form: Form, session: WebSession) -> Response:
    svc = services(request)
    name = request.path_params["name"]
    suspended = form.get("suspended") == "1"
    await svc.account_admin.set_suspended(name, suspended)
    await svc.audit.record(
        session.person.email, "account.suspend" if suspended else "account.unsuspend", name
    )
    return _back(name, "suspended" if suspended else "restored")


suspend = admin_post(_suspend)
