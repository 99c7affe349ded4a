"""A Server-Sent-Events response that notices a client leaving at once, and writes together
the events that are ready together.

Starlette's ``StreamingResponse`` on ASGI 2.4 servers only learns of a disconnect when the next
``send`` fails, which can be a long wait behind a slow upstream. Here a listener runs beside the
producer and cancels it the moment ``http.disconnect`` arrives; the producer's ``aclose`` then
runs in a shielded scope, so its ``finally`` (the settlement) always completes.

Events the producer has ready without waiting (an upstream's network read often carries many)
go out in one ``send``: each send is a socket write and a pass through every ASGI layer, most of
a relayed event's cost. Nothing waits to be batched: what is ready is sent before the producer
is waited on; and a ready run goes out in batches doubling from one event, so its first events
are not held behind the processing of the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from typing import Any, Protocol, cast

import anyio
from starlette.types import Message, Receive, Scope, Send

#: the most events one body message carries
MAX_BATCH = 64

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
]


class _Step(Protocol):
    """An async generator's ``__anext__()`` awaitable, driven by hand."""

    def send(self, value: Any, /) -> Any: ...
    def throw(self, exc: BaseException, /) -> Any: ...
    def close(self) -> None: ...


class _Resumed:
    """Awaits a step that has already run up to its first wait (``suspended``, what it yielded
    to the task): the task waits on that, and the step goes on from there, as ``await`` would
    have done it from the start."""

    __slots__ = ("step", "suspended")

    def __init__(self, step: _Step, suspended: Any) -> None:
        self.step = step
        self.suspended = suspended

    def __await__(self) -> Generator[Any, Any, bytes]:
        step, out = self.step, self.suspended
        while True:
            try:
                value = yield out
            except GeneratorExit:
                step.close()
                raise
            except BaseException as exc:  # a cancellation, thrown in by the task: passed on
                try:
                    out = step.throw(exc)
                except StopIteration as done:
                    return cast(bytes, done.value)
            else:
                try:
                    out = step.send(value)
                except StopIteration as done:
                    return cast(bytes, done.value)


class EventStream:
    def __init__(self, events: AsyncGenerator[bytes, None], status: int = 200) -> None:
        self.events = events
        self.status = status
        self.headers = HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # a plain task beside this one, not an anyio task group: a group's cancel formats the
        # task's repr (its coroutine's stack) at the end of every stream
        current = asyncio.current_task()
        assert current is not None
        gone = False

        async def listen() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            current.cancel()

        listener = asyncio.ensure_future(listen())
        try:
            await send(
                {"type": "http.response.start", "status": self.status, "headers": self.headers}
            )
            await self._relay(send)
        except OSError:
            pass  # the client is gone; the settlement below still runs
        except asyncio.CancelledError:
            if not gone or current.uncancel() > 0:  # not (only) the client leaving
                raise
        finally:
            listener.cancel()
            with anyio.CancelScope(shield=True):
                await self.events.aclose()

    async def _relay(self, send: Send) -> None:
        """Every event, those ready at once in one body message; the last with the end."""
        ready: list[bytes] = []
        limit = 1  # events per body message at most: 1, 2, 4... so the first is not delayed
        following = self.events.__anext__
        while True:
            step = cast(_Step, following())
            try:  # run the producer up to its next event, or to its first wait
                suspended = step.send(None)
            except StopIteration as done:  # an event, ready now
                ready.append(done.value)
                if len(ready) < limit:
                    continue
                limit = min(2 * limit, MAX_BATCH)  # a long ready run: its head goes now
            except StopAsyncIteration:
                break
            except Exception:
                if ready:  # what was ready before the failure still goes out
                    await send(_body(ready, more=True))
                raise
            else:  # it must wait: what it had ready goes first
                if ready:
                    await send(_body(ready, more=True))
                    ready.clear()
                try:
                    ready.append(await _Resumed(step, suspended))
                except StopAsyncIteration:
                    break
                continue
            await send(_body(ready, more=True))
            ready.clear()
        await send(_body(ready, more=False))


def _body(events: list[bytes], *, more: bool) -> Message:
    return {"type": "http.response.body", "body": b"".join(events), "more_body": more}
