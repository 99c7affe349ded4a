"""The console's redeem codes: make a batch (its codes shown once, with a CSV of them in the
same answer and nowhere else), list batches, see one batch's redemptions."""

from __future__ import annotations

import base64
import csv
import io
from datetime import UTC, date, datetime, time, timedelta

from starlette.requests import Request
from starlette.responses import Response

from minitoolai.codes.service import MAX_BATCH, CodeBatch
from minitoolai.errors import APIError, InvalidRequest
from minitoolai.http.deps import services
from minitoolai.money import nano_to_usd, usd_to_nano
from minitoolai.people.service import WebSession
from minitoolai.web.console_guard import admin_page, admin_post
from minitoolai.web.forms import Form
from minitoolai.web.templating import page


async def _codes_page(request: Request, status: int = 200, **context: object) -> Response:
    batches = await services(request).codes.batches()
    context.setdefault("form", {"amount": "", "count": "1", "expires": "", "note": ""})
    return await page(
        request, "console/codes.html", status, batches=batches, max_batch=MAX_BATCH, **context
    )


async def _codes(request: Request, session: WebSession) -> Response:
    return await _codes_page(request)


codes = admin_page(_codes)


def _expiry(text: str) -> datetime | None:
    """The last day the codes work (UTC): they expire at the next midnight."""
    if not text.strip():
        return None
    try:
        day = date.fromisoformat(text.strip())
        return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidRequest("give the last day as a date (YYYY-MM-DD)", param="expires") from None


def _count(text: str) -> int:
    try:
        return int(text.strip() or "1")
    except ValueError:
        raise InvalidRequest(
            f"the count is a whole number, 1 to {MAX_BATCH}", param="count"
        ) from None


def _amount(text: str) -> int:
    try:
        return usd_to_nano(text.strip() or "x")
    except ValueError:
        raise InvalidRequest("enter an amount in USD, e.g. 5 or 0.50", param="amount") from None


def batch_csv(batch: CodeBatch) -> str:
    """The batch's codes as CSV (each code begins with a letter: no cell reads as a formula)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["code", "amount_usd", "batch", "expires_at"])
    expires = batch.expires_at.isoformat() if batch.expires_at else ""
    for code in batch.codes:
        writer.writerow([code, nano_to_usd(batch.amount), batch.id, expires])
    return out.getvalue()


async def _create(request: Request, form: Form, session: WebSession) -> Response:
    svc = services(request)
    fields = {k: form.get(k) for k in ("amount", "count", "expires", "note")}
    try:
        batch = await svc.codes.create_batch(
            _amount(fields["amount"]),
            _count(fields["count"]),
            expires_at=_expiry(fields["expires"]),
            note=fields["note"].strip() or None,
            created_by=session.person.email,
        )
    except APIError as exc:
        return await _codes_page(request, exc.status_code, error=exc.message, form=fields)
    await svc.audit.record(
        session.person.email,
        "codes.create",
        batch.id,
        {"amount": nano_to_usd(batch.amount), "count": batch.count, "note": batch.note},
    )
    data = base64.b64encode(batch_csv(batch).encode()).decode()
    response = await page(
        request, "console/new_batch.html", 201, batch=batch, csv_href="data:text/csv;base64," + data
    )
    return response


create = admin_post(_create)


async def _batch(request: Request, session: WebSession) -> Response:
    batch = await services(request).codes.batch(request.path_params["batch_id"])
    return await page(request, "console/batch.html", batch=batch)


batch = admin_page(_batch)
