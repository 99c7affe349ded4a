"""What route handlers share: the services, the caller, the idempotency key of a request,
paths with and without their trailing slash, and noticing a client leave.
"""

from __future__ import annotations

import asyncio
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
    Cancelling runs the work's own cleanup, so a hold taken inside is released or settled.
    The work runs in this task (a task of its own and ``asyncio.wait`` cost ~25 k instructions
    per request); only the watcher is a task, and it cancels this one.
    """
    current = asyncio.current_task()
    assert current is not None
    state = {"done": False, "gone": False}

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        if not state["done"]:
            state["gone"] = True
            current.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        result = await work
    except asyncio.CancelledError:
        # the watcher's cancel, and nobody else's (a server shutting down cancels too)
        if state["gone"] and current.uncancel() == 0:
            raise ClientGone("the client closed the connection") from None
        raise
    finally:
        state["done"] = True
        watcher.cancel()
    if state["gone"]:  # the work caught the cancel and still answered: its answer stands
        current.uncancel()
    return result
