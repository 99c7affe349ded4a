"""What a caller may read about its own account: balance and recent usage."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from minitoolai.bootstrap import Services
from minitoolai.http.responses import JSON
from minitoolai.money import nano_to_usd


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def balance(request: Request) -> JSON:
    svc = services(request)
    who = await svc.auth.authenticate(request.headers.get("authorization"))
    total, held = await svc.ledger.balances(who.account_id)
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
    svc = services(request)
    who = await svc.auth.authenticate(request.headers.get("authorization"))
    try:
        limit = max(1, min(500, int(request.query_params.get("limit", "50"))))
    except ValueError:
        limit = 50
    rows = await svc.accounts.usage(who.account_id, limit)
    return JSON({"object": "list", "data": rows})


def slashed(path: str, endpoint: object, methods: list[str]) -> list[Route]:
    """The seed's paths end with a slash; the same path without it must work too."""
    bare = path.rstrip("/")
    return [Route(bare + "/", endpoint, methods=methods), Route(bare, endpoint, methods=methods)]  # type: ignore[arg-type]


routes = [*slashed("/api/balance/", balance, ["GET"]), *slashed("/api/usage/", usage, ["GET"])]
