"""The operator's HTTP API under /admin/: the same operations as the CLI, behind the admin key."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.routing import Route

from minitoolai.audit import ADMIN_API, MAX_LISTING
from minitoolai.codes.service import MAX_BATCH
from minitoolai.errors import AuthenticationFailed, InvalidRequest
from minitoolai.http.deps import services
from minitoolai.http.responses import JSON, parse, read_json
from minitoolai.money import nano_to_usd, usd_to_nano


def _require_admin(request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    expected = services(request).admin_key
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise AuthenticationFailed("This endpoint needs the admin key.", code="invalid_admin_key")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Usd(_Body):
    amount: str
    note: str | None = Field(default=None, max_length=500)

    @field_validator("amount", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> str:
        text = str(value)
        if usd_to_nano(text) <= 0:
            raise ValueError("must be a positive USD amount")
        return text


class NewAccount(_Body):
    name: str = Field(min_length=1, max_length=200)
    credit: str = "0"

    @field_validator("credit", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> str:
        text = str(value)
        if usd_to_nano(text) < 0:
            raise ValueError("must not be negative")
        return text


class NewKey(_Body):
    name: str | None = Field(default=None, max_length=200)
    expires_at: datetime | None = None
    allowed_models: list[str] | None = None

    @field_validator("expires_at")
    @classmethod
    def _representable(cls, value: datetime | None) -> datetime | None:
        return _in_utc_range(value)


class NewCodes(Usd):
    """A batch of redeem codes: ``count`` codes worth ``amount`` each."""

    count: int = Field(default=1, ge=1, le=MAX_BATCH)
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _representable(cls, value: datetime | None) -> datetime | None:
        return _in_utc_range(value)


class AlertBody(_Body):
    """A low-balance alert: ``below`` USD available (``null`` removes the alert)."""

    below: str | None
    email: bool = True
    webhook_url: str | None = Field(default=None, max_length=2000)

    @field_validator("below", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value)
        if usd_to_nano(text) <= 0:
            raise ValueError("must be a positive USD amount")
        return text


def _in_utc_range(value: datetime | None) -> datetime | None:
    """A date that has no UTC equivalent (year 1 at +01:00, say) is a 400, not a 500."""
    if value is not None:
        try:
            (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError:
            raise ValueError("must lie between the years 1 and 9999 in UTC") from None
    return value


async def list_accounts(request: Request) -> JSON:
    _require_admin(request)
    rows = await services(request).accounts.all()
    return JSON({"object": "list", "data": [a.to_dict() for a in rows]})


async def create_account(request: Request) -> JSON:
    _require_admin(request)
    body = parse(NewAccount, await read_json(request))
    svc = services(request)
    account, key = await svc.accounts.create(body.name, usd_to_nano(body.credit))
    await svc.audit.record(
        ADMIN_API, "account.create", account.name, {"credit": nano_to_usd(account.balance)}
    )
    return JSON({"account": account.to_dict(), "api_key": key}, status_code=201)


async def show_account(request: Request) -> JSON:
    _require_admin(request)
    svc = services(request)
    account = await svc.accounts.get(request.path_params["name"])
    return JSON(
        {
            **account.to_dict(),
            "open_holds": await svc.accounts.open_holds(account.id),
            "recent_entries": await svc.accounts.recent_entries(account.id),
        }
    )


async def add_credit(request: Request) -> JSON:
    _require_admin(request)
    svc = services(request)
    body = parse(Usd, await read_json(request))
    account = await svc.accounts.get(request.path_params["name"])
    await svc.ledger.top_up(account.id, usd_to_nano(body.amount), body.note)
    await svc.audit.record(
        ADMIN_API,
        "credit.add",
        account.name,
        {"amount": nano_to_usd(usd_to_nano(body.amount)), "note": body.note},
    )
    return JSON((await svc.accounts.get(account.name)).to_dict())


async def set_alert(request: Request) -> JSON:
    _require_admin(request)
    svc = services(request)
    body = parse(AlertBody, await read_json(request))
    account = await svc.accounts.get(request.path_params["name"])
    if body.below is None:
        await svc.alerts.clear(account.id)
        await svc.audit.record(ADMIN_API, "alert.clear", account.name)
        return JSON({"object": "balance_alert", "account": account.name, "deleted": True})
    alert = await svc.alerts.configure(
        account.id, usd_to_nano(body.below), email=body.email, webhook_url=body.webhook_url
    )
    await svc.audit.record(ADMIN_API, "alert.set", account.name, alert.audit_details())
    return JSON(alert.to_dict(account.name))


async def list_keys(request: Request) -> JSON:
    _require_admin(request)
    keys = await services(request).accounts.list_keys(request.path_params["name"])
    return JSON({"object": "list", "data": [k.to_dict() for k in keys]})


async def create_key(request: Request) -> JSON:
    _require_admin(request)
    body = parse(NewKey, await read_json(request))
    svc = services(request)
    key, record = await svc.accounts.create_key(
        request.path_params["name"],
        name=body.name,
        expires_at=body.expires_at,
        allowed_models=body.allowed_models,
    )
    await svc.audit.record(
        ADMIN_API, "key.create", record.account_name, {"prefix": record.prefix, "name": body.name}
    )
    return JSON({**record.to_dict(), "api_key": key}, status_code=201)


async def revoke_key(request: Request) -> JSON:
    _require_admin(request)
    svc = services(request)
    key_hash = await svc.accounts.revoke_key(request.path_params["prefix"])
    svc.auth.forget(key_hash)
    await svc.audit.record(ADMIN_API, "key.revoke", request.path_params["prefix"][:12])
    return JSON({"object": "api_key", "prefix": request.path_params["prefix"], "revoked": True})


async def create_codes(request: Request) -> JSON:
    _require_admin(request)
    body = parse(NewCodes, await read_json(request))
    svc = services(request)
    batch = await svc.codes.create_batch(
        usd_to_nano(body.amount),
        body.count,
        expires_at=body.expires_at,
        note=body.note,
        created_by="admin-api",
    )
    await svc.audit.record(
        ADMIN_API,
        "codes.create",
        batch.id,
        {"amount": nano_to_usd(batch.amount), "count": batch.count, "note": batch.note},
    )
    return JSON(batch.to_dict(), status_code=201)


async def list_codes(request: Request) -> JSON:
    _require_admin(request)
    batches = await services(request).codes.batches()
    return JSON({"object": "list", "data": [b.to_dict() for b in batches]})


async def show_codes(request: Request) -> JSON:
    _require_admin(request)
    batch = await services(request).codes.batch(request.path_params["batch_id"])
    return JSON(batch.to_dict())


async def list_audit(request: Request) -> JSON:
    """The audit log, newest first; ``action`` and ``actor`` filter it exactly."""
    _require_admin(request)
    query = request.query_params
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LISTING:
        raise InvalidRequest(f"limit is a whole number from 1 to {MAX_LISTING}", param="limit")
    rows = await services(request).audit.entries(
        action=query.get("action") or None, actor=query.get("actor") or None, limit=limit
    )
    return JSON({"object": "list", "data": [r.to_dict() for r in rows]})


routes = [
    Route("/admin/audit", list_audit, methods=["GET"]),
    Route("/admin/accounts", list_accounts, methods=["GET"]),
    Route("/admin/accounts", create_account, methods=["POST"]),
    Route("/admin/accounts/{name}", show_account, methods=["GET"]),
    Route("/admin/accounts/{name}/credit", add_credit, methods=["POST"]),
    Route("/admin/accounts/{name}/alert", set_alert, methods=["PUT"]),
    Route("/admin/accounts/{name}/keys", list_keys, methods=["GET"]),
    Route("/admin/accounts/{name}/keys", create_key, methods=["POST"]),
    Route("/admin/keys/{prefix}", revoke_key, methods=["DELETE"]),
    Route("/admin/codes", list_codes, methods=["GET"]),
    Route("/admin/codes", create_codes, methods=["POST"]),
    Route("/admin/codes/{batch_id}", show_codes, methods=["GET"]),
]
