"""A Server-Sent-Events response that notices a client leaving at once.

Starlette's ``StreamingResponse`` on ASGI 2.4 servers only learns of a disconnect when the next
``send`` fails, which can be a long wait behind a slow upstream. Here a listener runs beside the
producer and cancels it the moment ``http.disconnect`` arrives; the producer's ``aclose`` then
runs in a shielded scope, so its ``finally`` (the settlement) always completes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import anyio
from starlette.types import Receive, Scope, Send

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
]


class EventStream:
    def __init__(self, events: AsyncGenerator[bytes, None], status: int = 200) -> None:
        self.events = events
        self.status = status
        self.headers = HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def listen() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    group.cancel_scope.cancel()
                    return

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(listen)
                try:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": self.status,
                            "headers": self.headers,
                        }
                    )
                    async for event in self.events:
                        await send({"type": "http.response.body", "body": event, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except OSError:
                    pass  # the client is gone; the settlement below still runs
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.events.aclose()
