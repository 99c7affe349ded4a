"""What a caller may read about its own account: balance and recent usage."""

from __future__ import annotations

from starlette.requests import Request

from minitoolai.http.deps import principal, services, slashed
from minitoolai.http.responses import JSON
from minitoolai.money import nano_to_usd


async def balance(request: Request) -> JSON:
    who = await principal(request)
    total, held = await services(request).ledger.balances(who.account_id)
    return JSON(
        {
            "object": "balance",
            "currency": "USD",
            "balance": nano_to_usd(total),
            "held": nano_to_usd(held),
            "available": nano_to_usd(total - held),
        }
    )


async def usage(request: Request) -> JSON:
    who = await principal(request)
    try:
        limit = max(1, min(500, int(request.query_params.get("limit", "50"))))
    except ValueError:
        limit = 50
    rows = await services(request).accounts.usage(who.account_id, limit)
    return JSON({"object": "list", "data": rows})


routes = [*slashed("/api/balance/", balance, ["GET"]), *slashed("/api/usage/", usage, ["GET"])]
