"""The operator's HTTP API under /admin/: the same operations as the CLI, behind the admin key."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from starlette.routing import Route

from minitoolai.accounts.service import budgets_dict
from minitoolai.audit import ADMIN_API, MAX_LISTING
from minitoolai.codes.service import MAX_BATCH
from minitoolai.errors import AuthenticationFailed, InvalidRequest
from minitoolai.http.deps import services
from minitoolai.http.responses import JSON, parse, read_json
from minitoolai.limits.overrides import MAX_RATE, LimitOverrides
from minitoolai.money import nano_to_usd, usd_to_nano


def _require_admin(request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    expected = services(request).admin_key
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), expected.encode()
    ):
        raise AuthenticationFailed("This endpoint needs the admin key.", code="invalid_admin_key")


def _budget_usd(value: Any) -> str | None:
    """A budget in USD: a positive exact amount, or null (no budget)."""
    if value is None:
        return None
    text = str(value)
    if usd_to_nano(text) <= 0:
        raise ValueError("must be a positive USD amount, or null for none")
    return text


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
    daily_budget: str | None = None  # USD (docs/billing.md, "Budgets")
    monthly_budget: str | None = None
    total_budget: str | None = None

    @field_validator("daily_budget", "monthly_budget", "total_budget", mode="before")
    @classmethod
    def _usd(cls, value: Any) -> str | None:
        return _budget_usd(value)

    def budgets(self) -> dict[str, int | None]:
        return {
            f"{p}_budget": None if (v := getattr(self, f"{p}_budget")) is None else usd_to_nano(v)
            for p in ("daily", "monthly", "total")
        }

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


class LimitsBody(_Body):
    """A key's or an account's own rate limits (docs/limits.md): a field left out is kept as
    it was; 0 or null clears it (the configured default applies again)."""

    rpm: int | None = Field(default=None, ge=0, le=MAX_RATE)
    tpm: int | None = Field(default=None, ge=0, le=MAX_RATE)
    ipm: int | None = Field(default=None, ge=0, le=MAX_RATE)
    max_concurrent: int | None = Field(default=None, ge=0, le=MAX_RATE)

    def changes(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class BudgetBody(_Body):
    """A key's or an account's spend budgets in USD (docs/billing.md): per UTC day, per UTC
    month, in total. A field left out is kept as it was; null clears it."""

    daily: str | None = None
    monthly: str | None = None
    total: str | None = None

    @field_validator("daily", "monthly", "total", mode="before")
    @classmethod
    def _usd(cls, value: Any) -> str | None:
        return _budget_usd(value)

    def changes(self) -> dict[str, int | None]:
        return {
            name: None if (v := getattr(self, name)) is None else usd_to_nano(v)
            for name in sorted(self.model_fields_set)
        }


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
        **body.budgets(),
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


async def set_key_limits(request: Request) -> JSON:
    _require_admin(request)
    svc = services(request)
    body = parse(LimitsBody, await read_json(request))
    changed = await LimitOverrides(svc.db).set_key(request.path_params["prefix"], body.changes())
    if changed.key_hash is not None:
        svc.auth.forget(changed.key_hash)  # this process applies it at once
    await svc.audit.record(
        ADMIN_API, "key.limits", changed.account, {"prefix": changed.key_prefix, **body.changes()}
    )
    return JSON(changed.to_dict())


async def set_account_limits(request: Request) -> JSON:
    _require_admin(request)
    svc = services(request)
    body = parse(LimitsBody, await read_json(request))
    account_id, changed = await LimitOverrides(svc.db).set_account(
        request.path_params["name"], body.changes()
    )
    svc.auth.forget_account(account_id)
    await svc.audit.record(ADMIN_API, "account.limits", changed.account, body.changes())
    return JSON(changed.to_dict())


async def set_key_budget(request: Request) -> JSON:
    _require_admin(request)
    svc = services(request)
    body = parse(BudgetBody, await read_json(request))
    record, key_hash = await svc.accounts.set_key_budget(
        request.path_params["prefix"], **body.changes()
    )
    svc.auth.forget(key_hash)  # this process applies it at once (the budgets ride in the key)
    await svc.audit.record(
        ADMIN_API, "key.budget", record.account_name, {"prefix": record.prefix, **body.changes()}
    )
    return JSON(record.to_dict())


async def set_account_budget(request: Request) -> JSON:
    _require_admin(request)
    svc = services(request)
    body = parse(BudgetBody, await read_json(request))
    account = await svc.accounts.get(request.path_params["name"])
    caps = await svc.accounts.set_account_budget(account.name, **body.changes())
    svc.auth.forget_account(account.id)
    await svc.audit.record(ADMIN_API, "account.budget", account.name, body.changes())
    return JSON({"object": "account_budget", "account": account.name, **budgets_dict(caps)})


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
    Route("/admin/keys/{prefix}/limits", set_key_limits, methods=["PUT"]),
    Route("/admin/accounts/{name}/limits", set_account_limits, methods=["PUT"]),
    Route("/admin/keys/{prefix}/budget", set_key_budget, methods=["PUT"]),
    Route("/admin/accounts/{name}/budget", set_account_budget, methods=["PUT"]),
    Route("/admin/codes", list_codes, methods=["GET"]),
    Route("/admin/codes", create_codes, methods=["POST"]),
    Route("/admin/codes/{batch_id}", show_codes, methods=["GET"]),
]
