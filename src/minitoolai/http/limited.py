"""Rate limits on the wire: admit a request, then send its answer with OpenAI's
``x-ratelimit-*`` headers and finish the admission just before the last byte goes (or when the
client has gone), whatever the answer is (one JSON body, an event stream, audio).

A route calls ``admit`` where the request is admitted (before its hold) and hands its work to
``answered``: an error before the answer exists finishes the admission at once; otherwise the
answer is wrapped (``Limited``). The admission is also this task's ``limits.service.CURRENT``,
so the settle of a token-priced answer corrects the tokens counted at admission.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar, cast

import anyio
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from minitoolai.accounts.auth import Principal
from minitoolai.errors import APIError
from minitoolai.http.deps import services
from minitoolai.limits.service import CURRENT, UNLIMITED, Admission

T = TypeVar("T")


async def admit(
    request: Request,
    who: Principal,
    *,
    tokens: int = 0,
    images: int = 0,
    requests: int = 1,
    concurrent: bool = True,
) -> Admission:
    """Count the request against its limits (429 ``rate_limit_exceeded`` when one is reached)."""
    admission = await services(request).limits.admit(
        who, tokens=tokens, images=images, requests=requests, concurrent=concurrent
    )
    if admission is not UNLIMITED:
        CURRENT.set(admission)
    return admission


class Limited:
    """An answer (any ASGI response) sent with the admission's headers, then finished."""

    def __init__(self, response: Any, admission: Admission) -> None:
        self.response = response
        self.admission = admission
        self._raw = [(name.encode(), value.encode()) for name, value in admission.headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        CURRENT.set(self.admission)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and self._raw:
                message = {**message, "headers": [*message.get("headers", ()), *self._raw]}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # finished before the client has the answer, so its next request finds the
                # lease given back and the tokens corrected
                with anyio.CancelScope(shield=True):
                    await self.admission.release()
            await send(message)

        try:
            await self.response(scope, receive, send_with_headers)
        finally:
            with anyio.CancelScope(shield=True):
                await self.admission.release()


async def answered(admission: Admission, work: Awaitable[T]) -> T:
    """``work``'s answer, limited; an error on the way finishes the admission at once.

    The answer comes back wrapped in ``Limited``, which Starlette runs as the response (any
    ASGI callable is one): typed as the answer so that routes keep their signatures."""
    if admission is UNLIMITED:
        return await work
    try:
        response = await work
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await admission.release()
        if isinstance(exc, APIError) and not getattr(exc, "headers", None):
            exc.headers = admission.headers  # type: ignore[attr-defined]  # rendered with it
        raise
    return cast(T, Limited(response, admission))
