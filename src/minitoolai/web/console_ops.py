"""The console's views of the running service: prices (and their overrides), deployments and
their health, the image job queue, revenue and usage, and the audit log."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from minitoolai.clock import as_utc, utcnow
from minitoolai.errors import APIError
from minitoolai.http.deps import services
from minitoolai.ledger.price_overrides import REFRESH_S, Override, parse_price
from minitoolai.ledger.store.base import RevenueRow
from minitoolai.money import nano_to_usd
from minitoolai.people.service import WebSession
from minitoolai.routing.router import Router
from minitoolai.web.console_charts import bars
from minitoolai.web.console_guard import admin_page, admin_post
from minitoolai.web.forms import Form
from minitoolai.web.templating import page, redirect, usd

#: the price form's fields: (form name, Price field, label)
PRICE_FIELDS = (
    ("input", "input_per_m", "Input per 1M tokens"),
    ("output", "output_per_m", "Output per 1M tokens"),
    ("image", "per_image", "Per image"),
    ("characters", "per_m_chars", "Per 1M characters"),
)
REVENUE_DAYS = 30

# -- prices ----------------------------------------------------------------------------------


async def _prices_page(request: Request, status: int = 200, **context: Any) -> Response:
    svc = services(request)
    table = svc.chat.prices
    overrides = {o.model: o for o in await svc.price_overrides.load()}
    models = sorted({m for m, _ in table.items()} | set(svc.chat.router.models()))
    rows = [
        {
            "model": m,
            "price": table[m],
            "override": overrides.get(m),
            "source": "override"
            if m in overrides
            else ("configured" if m in table else "fallback"),
        }
        for m in models
    ]
    context.setdefault("form", {})
    return await page(
        request,
        "console/prices.html",
        status,
        rows=rows,
        fields=PRICE_FIELDS,
        refresh_s=int(REFRESH_S),
        **context,
    )


async def _prices(request: Request, session: WebSession) -> Response:
    notice = "Prices saved." if request.query_params.get("done") == "saved" else None
    return await _prices_page(request, notice=notice)


prices = admin_page(_prices)


async def _set_prices(request: Request, form: Form, session: WebSession) -> Response:
    svc = services(request)
    model = form.get("model").strip()
    values = {name: form.get(name) for name, _, _ in PRICE_FIELDS}
    try:
        nano = {f: parse_price(values[name], label) for name, f, label in PRICE_FIELDS}
        if form.get("clear") == "1":
            nano = dict.fromkeys(nano)
        await svc.price_overrides.put(Override(model, **nano), by=session.person.email)
    except APIError as exc:
        return await _prices_page(
            request, exc.status_code, error=exc.message, form={"model": model, **values}
        )
    await svc.audit.record(
        session.person.email,
        "prices.set",
        model,
        {f: None if v is None else nano_to_usd(v) for f, v in nano.items()},
    )
    return redirect("/console/prices?done=saved")


set_prices = admin_post(_set_prices)

# -- deployments -----------------------------------------------------------------------------


def _deployment_rows(kind: str, router: Router[Any]) -> list[dict[str, Any]]:
    now = time.monotonic()
    return [
        {
            "kind": kind,
            "model": model,
            "name": d.name,
            "engine": type(d.engine).__name__,
            "priority": d.priority,
            "weight": d.weight,
            "cooling": d.cooling(now),
            "cooldown_left": max(0.0, d.cooldown_until - now),
        }
        for model in router.models()
        for d in router.deployments(model)
    ]


async def _deployments(request: Request, session: WebSession) -> Response:
    svc = services(request)
    engines = svc.engines
    rows = (
        _deployment_rows("chat", engines.chat)
        + _deployment_rows("speech", engines.speech)
        + _deployment_rows("embeddings", engines.embeddings)
    )
    return await page(
        request,
        "console/deployments.html",
        rows=rows,
        cooldown_s=engines.chat.cooldown_s,
        image_engine=svc.settings.image_engine,
        image_workers=svc.settings.image_workers,
    )


deployments = admin_page(_deployments)

# -- the image job queue ---------------------------------------------------------------------


async def _jobs(request: Request, session: WebSession) -> Response:
    queue = services(request).images.queue
    now = utcnow()
    newest = [
        {
            "job": job,
            "account": account,
            "age_s": max(0, int((now - as_utc(job.created_at)).total_seconds())),
        }
        for job, account in await queue.newest(50)
    ]
    return await page(request, "console/jobs.html", counts=await queue.counts(), jobs=newest)


jobs = admin_page(_jobs)

# -- revenue and usage -----------------------------------------------------------------------


@dataclass
class Total:
    label: str
    count: int = 0
    cost: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    units: int = 0
    models: set[str] = field(default_factory=set)

    def add(self, row: RevenueRow) -> None:
        self.count += row.count
        self.cost += row.cost
        self.prompt_tokens += row.prompt_tokens
        self.completion_tokens += row.completion_tokens
        self.units += row.units
        self.models.add(row.model)


def _totals(rows: list[RevenueRow], key: str) -> list[Total]:
    out: dict[str, Total] = defaultdict(lambda: Total(""))
    for row in rows:
        label = getattr(row, key)
        total = out[label]
        total.label = label
        total.add(row)
    return list(out.values())


async def _revenue(request: Request, session: WebSession) -> Response:
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=REVENUE_DAYS - 1)
    rows = await services(request).ledger.revenue(since)
    days = sorted(_totals(rows, "day"), key=lambda t: t.label, reverse=True)
    models = sorted(_totals(rows, "model"), key=lambda t: (-t.cost, t.label))
    grand = Total("all")
    for row in rows:
        grand.add(row)
    return await page(
        request,
        "console/revenue.html",
        days=days,
        models=models,
        grand=grand,
        rows=rows,
        since=since.date().isoformat(),
        day_chart=bars([(t.label, t.cost, usd(t.cost)) for t in reversed(days)]),
        model_chart=bars([(t.label, t.cost, usd(t.cost)) for t in models]),
    )


revenue = admin_page(_revenue)

# -- the audit log ---------------------------------------------------------------------------


async def _audit(request: Request, session: WebSession) -> Response:
    log = services(request).audit
    action = request.query_params.get("action", "").strip()[:64]
    actor = request.query_params.get("actor", "").strip()[:254]
    return await page(
        request,
        "console/audit.html",
        entries=await log.entries(action=action or None, actor=actor or None, limit=200),
        actions=await log.actions(),
        action=action,
        actor=actor,
    )


audit = admin_page(_audit)
