"""What route handlers share: the services, the caller, the idempotency key of a request,
paths with and without their trailing slash, and noticing a client leave.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.routing import Route

from minitoolai.accounts.auth import Principal
from minitoolai.bootstrap import Services
from minitoolai.errors import APIError, InvalidRequest
from minitoolai.ledger.idempotency import MAX_KEY_LENGTH, IdempotencyKey

T = TypeVar("T")


def services(request: Request) -> Services:
    """The services the lifespan built for this app."""
    svc: Services = request.app.state.services
    return svc


async def principal(request: Request) -> Principal:
    """The caller, from its ``Authorization`` header (401 when missing, unknown or expired)."""
    return await services(request).auth.authenticate(request.headers.get("authorization"))


def slashed(path: str, endpoint: object, methods: list[str]) -> list[Route]:
    """The seed's paths end with a slash; the same path without it must work too."""
    bare = path.rstrip("/")
    return [Route(bare + "/", endpoint, methods=methods), Route(bare, endpoint, methods=methods)]  # type: ignore[arg-type]


def idempotency(request: Request, body: Any) -> IdempotencyKey | None:
    """The request's ``Idempotency-Key``, scoped to its endpoint and bound to its body."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not (0 < len(key) <= MAX_KEY_LENGTH) or not key.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
            param="Idempotency-Key",
        )
    return IdempotencyKey.for_body(request.url.path.rstrip("/"), key, body)


class ClientGone(APIError):
    """The client closed the connection before the answer was ready (nginx's 499)."""

    status_code = 499
    error_type = "client_closed_request"


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Await ``work``, cancelling it the moment the client disconnects (``ClientGone``).

    Only for after the body has been read: the next ASGI message is then the disconnect.
    Cancelling runs the work's own cleanup, so a hold taken inside is released or settled;
    a result that was ready first is always returned, never dropped.
    """
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise ClientGone("the client closed the connection")
    return task.result()
