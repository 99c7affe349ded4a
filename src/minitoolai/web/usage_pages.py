"""A signed-in person's money pages: the dashboard (with the low-balance alert form) and
``/usage`` (filters, pages, charts per day and per model) with its CSV export.

Every figure is summed in SQL by the ledger (``web/reads.py`` asks for it); the CSV is streamed
a batch of rows at a time, so a big account's export never sits in memory whole.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from minitoolai.clock import as_utc
from minitoolai.errors import APIError, InvalidRequest
from minitoolai.http.deps import services
from minitoolai.ledger.store.base import UsageCursor, UsageFilter, UsageRow
from minitoolai.money import nano_to_usd, usd_to_nano
from minitoolai.people.service import WebSession
from minitoolai.web.charts import day_bars, model_bars
from minitoolai.web.forms import Form
from minitoolai.web.guard import signed_in, signed_in_post
from minitoolai.web.reads import CHART_DAYS, UsageReport, chart_filter, overview, usage_report
from minitoolai.web.security import secure_page
from minitoolai.web.templating import page, redirect

log = logging.getLogger("minitoolai.web")

PAGE_SIZE = 50
#: what a charge's ``kind`` can be (chat, images, speech, embeddings)
KINDS = ("chat", "embeddings", "image", "speech")

# -- dashboard --------------------------------------------------------------------------------


async def _dashboard_page(
    request: Request, session: WebSession, status: int = 200, **context: Any
) -> Response:
    svc = services(request)
    account_id = session.person.account_id
    seen = await overview(svc.ledger, account_id)
    alert = await svc.alerts.get(account_id)
    form = {
        "alert_below": "" if alert is None else nano_to_usd(alert.threshold),
        "alert_email": True if alert is None else alert.email,
        "alert_webhook": "" if alert is None else alert.webhook_url or "",
        **context.pop("form", {}),
    }
    return await page(
        request,
        "dashboard.html",
        status,
        balance=seen.balance,
        held=seen.held,
        spent_today=seen.spent_today,
        spent_month=seen.spent_month,
        recent=seen.recent,
        alert=alert,
        form=form,
        error=context.pop("error", None),
        notice=context.pop("notice", None),
    )


async def _dashboard(request: Request, session: WebSession) -> Response:
    notice = "Alert saved." if request.query_params.get("saved") == "alert" else None
    return await _dashboard_page(request, session, notice=notice)


dashboard = signed_in(_dashboard)


async def _save_alert(request: Request, form: Form, session: WebSession) -> Response:
    alerts = services(request).alerts
    below = form.get("below").strip().removeprefix("$")
    email = form.get("email") == "on"
    webhook = form.get("webhook_url").strip()
    account_id = session.person.account_id
    try:
        if not below:
            await alerts.clear(account_id)
        else:
            try:
                threshold = usd_to_nano(below)
            except ValueError:
                raise InvalidRequest(
                    "give the threshold in US dollars, e.g. 5 or 2.50", param="below"
                ) from None
            await alerts.configure(account_id, threshold, email=email, webhook_url=webhook)
    except APIError as exc:
        return await _dashboard_page(
            request,
            session,
            exc.status_code,
            error=exc.message,
            form={"alert_below": below, "alert_email": email, "alert_webhook": webhook},
        )
    log.info("account %d set its low-balance alert from the web", account_id)
    return redirect("/dashboard?saved=alert")


save_alert = signed_in_post(_save_alert)


# -- usage ------------------------------------------------------------------------------------


def _day(text: str, param: str) -> datetime | None:
    if not text.strip():
        return None
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest("give dates as YYYY-MM-DD", param=param) from None


def _cursor(text: str) -> UsageCursor | None:
    if not text:
        return None
    when, _, charge_id = text.partition("~")
    try:
        created_at = as_utc(datetime.fromisoformat(when))
    except ValueError:
        raise InvalidRequest("that page link is not valid", param="before") from None
    if not charge_id or len(charge_id) > 64 or not charge_id.isprintable():
        raise InvalidRequest("that page link is not valid", param="before")
    return UsageCursor(created_at, charge_id)


def _cursor_text(cursor: UsageCursor) -> str:
    return f"{as_utc(cursor.created_at).isoformat()}~{cursor.id}"


def usage_filter(params: dict[str, str]) -> UsageFilter:
    """The form's fields as a filter: ``from`` and ``to`` are whole UTC days, both included."""
    model = params.get("model", "").strip() or None
    kind = params.get("kind", "").strip() or None
    if model is not None and (len(model) > 200 or not model.isprintable()):
        raise InvalidRequest("no such model", param="model")
    if kind is not None and kind not in KINDS:
        raise InvalidRequest(f"the kind is one of {', '.join(KINDS)}", param="kind")
    since = _day(params.get("from", ""), "from")
    last = _day(params.get("to", ""), "to")
    if since is not None and last is not None and last < since:
        raise InvalidRequest("the first day is after the last one", param="to")
    until = None if last is None else last + timedelta(days=1)
    return UsageFilter(model=model, kind=kind, since=since, until=until)


_FIELDS = ("model", "kind", "from", "to")


async def _usage(request: Request, session: WebSession) -> Response:
    ledger = services(request).ledger
    account_id = session.person.account_id
    params = {k: request.query_params.get(k, "") for k in _FIELDS}
    chosen = {k: v.strip() for k, v in params.items() if v.strip()}
    status, error = 200, None
    try:
        where = usage_filter(params)
        report = await usage_report(
            ledger,
            account_id,
            where,
            PAGE_SIZE,
            _cursor(request.query_params.get("before", "")),
        )
    except APIError as exc:
        status, error = exc.status_code, exc.message
        report = UsageReport([], None, [], [])
    # the models to choose from: those used lately (an index range, not the whole history)
    lately = chart_filter(UsageFilter())
    used = [m.label for m in await ledger.usage_by_model(account_id, lately)]
    next_url = None
    if report.next_page is not None:
        next_url = "/usage?" + urlencode({**chosen, "before": _cursor_text(report.next_page)})
    return await page(
        request,
        "usage.html",
        status,
        recent=report.rows,
        days=report.days,
        models=report.models,
        day_chart=day_bars(report.days) if report.days else None,
        model_chart=model_bars(report.models) if report.models else None,
        total_cost=sum(d.cost for d in report.days),
        total_requests=sum(d.requests for d in report.days),
        chart_days=CHART_DAYS if report.windowed else None,
        filters=params,
        filtered=bool(chosen),
        model_choices=sorted(set(used) | ({params["model"]} if params["model"] else set())),
        kinds=KINDS,
        csv_url="/usage.csv" + ("?" + urlencode(chosen) if chosen else ""),
        next_url=next_url,
        first_page=not request.query_params.get("before"),
        first_url="/usage" + ("?" + urlencode(chosen) if chosen else ""),
        error=error,
    )


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


def _csv_line(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()


def _csv_row(r: UsageRow) -> list[Any]:
    return [
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


def _cell(text: str) -> str:
    """No spreadsheet formula injection: a cell starting with = + - @ is quoted as text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


async def _usage_csv(request: Request, session: WebSession) -> Response:
    ledger = services(request).ledger
    try:
        where = usage_filter({k: request.query_params.get(k, "") for k in _FIELDS})
    except APIError as exc:
        return secure_page(Response(exc.message + "\n", exc.status_code, media_type="text/plain"))
    account_id = session.person.account_id

    async def lines() -> AsyncIterator[str]:
        yield _csv_line(list(_CSV_COLUMNS))
        batch: list[str] = []
        async for row in ledger.usage_export(account_id, where):
            batch.append(_csv_line(_csv_row(row)))
            if len(batch) >= 500:
                yield "".join(batch)
                batch.clear()
        if batch:
            yield "".join(batch)

    response = StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="minitoolai-usage.csv"'},
    )
    return secure_page(response)


usage_csv = signed_in(_usage_csv)
