"""EventStream writes the events a producer has ready together in one body message (batches
doubling from one event), sends what is ready before the producer waits, still sends it when
the producer fails, and still stops and closes the producer when the client leaves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from minitoolai.http.sse import MAX_BATCH, EventStream


class Client:
    """The ASGI side of one response: what was sent, and a disconnect when told."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.leave = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body"]


def events(n: int) -> list[bytes]:
    return [b"data: %d\n\n" % i for i in range(n)]


async def ready(items: list[bytes]) -> AsyncGenerator[bytes, None]:
    for item in items:
        yield item


def test_ready_events_go_out_in_batches_doubling_from_one() -> None:
    client = Client()
    sent = events(10)
    asyncio.run(EventStream(ready(sent))({}, client.receive, client.send))
    assert client.messages[0]["type"] == "http.response.start"
    bodies = client.bodies()
    assert bodies == [
        b"".join(sent[:1]),
        b"".join(sent[1:3]),
        b"".join(sent[3:7]),
        b"".join(sent[7:]),
    ]
    assert [m["more_body"] for m in client.messages[1:]] == [True, True, True, False]


def test_a_long_ready_run_is_capped_per_message() -> None:
    client = Client()
    sent = events(4 * MAX_BATCH)
    asyncio.run(EventStream(ready(sent))({}, client.receive, client.send))
    assert b"".join(client.bodies()) == b"".join(sent)
    assert max(body.count(b"data:") for body in client.bodies()) == MAX_BATCH


def test_what_is_ready_is_sent_before_the_producer_waits() -> None:
    client = Client()
    seen_before_wait: list[bytes] = []

    async def producer() -> AsyncGenerator[bytes, None]:
        yield b"a"
        yield b"b"
        await asyncio.sleep(0.01)  # an upstream read that has to wait
        seen_before_wait.extend(client.bodies())
        yield b"c"

    asyncio.run(EventStream(producer())({}, client.receive, client.send))
    assert b"".join(seen_before_wait) == b"ab"
    assert b"".join(client.bodies()) == b"abc"
    assert client.messages[-1] == {"type": "http.response.body", "body": b"c", "more_body": False}


def test_a_failing_producer_still_sends_what_it_had_ready() -> None:
    client = Client()

    async def producer() -> AsyncGenerator[bytes, None]:
        yield b"a"
        yield b"b"
        yield b"c"
        raise RuntimeError("broken")

    with pytest.raises(RuntimeError, match="broken"):
        asyncio.run(EventStream(producer())({}, client.receive, client.send))
    assert b"".join(client.bodies()) == b"abc"


def test_a_client_leaving_stops_and_closes_the_producer() -> None:
    client = Client()
    closed = asyncio.Event()

    async def producer() -> AsyncGenerator[bytes, None]:
        try:
            yield b"a"
            await asyncio.sleep(30)  # an upstream that says nothing more
            yield b"never"
        finally:
            await asyncio.sleep(0)  # the settlement awaits too: it must run to its end
            closed.set()

    async def scenario() -> None:
        stream = asyncio.ensure_future(EventStream(producer())({}, client.receive, client.send))
        await asyncio.sleep(0.01)
        client.leave.set()
        await asyncio.wait_for(stream, 2)  # returns: a client leaving is not an error
        assert closed.is_set()

    asyncio.run(scenario())
    assert client.bodies() == [b"a"]


def test_a_cancellation_from_outside_goes_on_and_still_closes_the_producer() -> None:
    client = Client()
    closed = asyncio.Event()

    async def producer() -> AsyncGenerator[bytes, None]:
        try:
            yield b"a"
            await asyncio.sleep(30)
            yield b"never"
        finally:
            closed.set()

    async def scenario() -> None:
        stream = asyncio.ensure_future(EventStream(producer())({}, client.receive, client.send))
        await asyncio.sleep(0.01)
        stream.cancel()  # the server shutting down, not the client leaving
        with pytest.raises(asyncio.CancelledError):
            await stream
        assert closed.is_set()

    asyncio.run(scenario())
