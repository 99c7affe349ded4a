"""A streamed answer read to its ``[DONE]`` keeps its upstream connection: the body's end (the
chunked terminator, which often comes a packet later) is awaited in the background, so the next
call does not pay a new connection (and a TLS handshake). An upstream that never ends the body
gets its connection closed after ``DRAIN_S``; a stream abandoned half-way is closed at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
import pytest

from minitoolai.chat.schemas import Message
from minitoolai.engines import openai_compat
from minitoolai.engines.base import ChatChunk, ChatParams
from minitoolai.engines.openai_compat import OpenAICompatEngine
from minitoolai.infra.http import upstream_client
from minitoolai.settings import ProviderConfig

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(data: object) -> bytes:
    return _chunk(b"data: " + orjson.dumps(data) + b"\n\n")


BODY = (
    _event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}]})
    + _event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    + _event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
    + _chunk(b"data: [DONE]\n\n")
)


class Upstream:
    """A raw HTTP/1.1 server: the stream, then its terminator ``end_after`` s later (None:
    never); counts the connections it was given."""

    def __init__(self, end_after: float | None) -> None:
        self.end_after = end_after
        self.connections = 0
        self.closed = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                await reader.readexactly(length)
                writer.write(HEAD + BODY)
                await writer.drain()
                if self.end_after is None:
                    await reader.read()  # the body never ends: wait for the client to hang up
                    return
                await asyncio.sleep(self.end_after)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed += 1
            writer.close()


def _params() -> ChatParams:
    return ChatParams(messages=[Message(role="user", content="hello")], max_tokens=8)


async def _answer(engine: OpenAICompatEngine) -> list[ChatChunk]:
    chunks: AsyncIterator[ChatChunk] = engine.stream(_params())
    return [chunk async for chunk in chunks]


@contextlib.asynccontextmanager
async def _engine(upstream: Upstream) -> AsyncIterator[OpenAICompatEngine]:
    """An engine pointed at ``upstream``, served on a free port, for the block."""
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    session = upstream_client()
    config = ProviderConfig(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test-key")
    try:
        yield OpenAICompatEngine("up", config, "gpt-4o-mini", session)
    finally:
        await session.close()
        server.close()
        await server.wait_closed()


async def _run(end_after: float | None, calls: int) -> tuple[Upstream, list[list[ChatChunk]]]:
    upstream = Upstream(end_after)
    answers = []
    async with _engine(upstream) as engine:
        for _ in range(calls):
            answers.append(await asyncio.wait_for(_answer(engine), 2))
            await asyncio.sleep(0.1)  # the terminator (or the drain's end) arrives meanwhile
    return upstream, answers


def test_streams_whose_body_ends_after_done_share_one_connection() -> None:
    upstream, answers = asyncio.run(_run(end_after=0.02, calls=3))
    assert upstream.connections == 1
    for chunks in answers:  # every answer whole: the text, the finish, the usage
        assert "".join(c.content or "" for c in chunks) == "hi"
        usage = next(c.usage for c in chunks if c.usage)
        assert usage is not None
        assert usage.completion_tokens == 1


def test_a_body_that_never_ends_is_closed_after_the_drain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(openai_compat, "DRAIN_S", 0.05)
    upstream, answers = asyncio.run(_run(end_after=None, calls=2))
    assert len(answers) == 2  # neither answer waited for the drain
    assert upstream.connections == 2  # the first connection could not be reused
    assert upstream.closed >= 1  # and it was closed, not kept open


def test_a_stream_left_half_way_closes_its_connection_at_once() -> None:
    async def scenario() -> Upstream:
        upstream = Upstream(end_after=0.02)
        async with _engine(upstream) as engine:
            stream = engine.stream(_params())
            await anext(stream)  # the client leaves after the first chunk
            await stream.aclose()  # type: ignore[attr-defined]
            await asyncio.sleep(0.1)
            await _answer(engine)
        return upstream

    upstream = asyncio.run(scenario())
    assert upstream.connections == 2


def test_the_first_event_is_relayed_before_the_rest_of_its_read_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole stream arrives in one network read: its first event must not wait for the
    others to be parsed (the time to first token)."""
    fed: list[int] = []  # the lines of each parser call
    feed = openai_compat._ChatParser.feed

    def counting(self: openai_compat._ChatParser, lines: list[bytes]) -> list[ChatChunk]:
        fed.append(len(lines))
        return feed(self, lines)

    monkeypatch.setattr(openai_compat._ChatParser, "feed", counting)

    async def scenario() -> tuple[list[int], list[ChatChunk]]:
        async with _engine(Upstream(end_after=0.02)) as engine:
            chunks = engine.stream(_params())
            first = await anext(chunks)
            seen_at_first = list(fed)
            rest = [chunk async for chunk in chunks]
        return seen_at_first, [first, *rest]

    seen_at_first, chunks = asyncio.run(scenario())
    assert seen_at_first == [1]  # only the first event's line had been parsed
    assert "".join(c.content or "" for c in chunks) == "hi"
    assert any(c.finish_reason == "stop" for c in chunks)
    assert any(c.usage is not None for c in chunks)


def test_a_reads_events_travel_as_one_step_after_the_first() -> None:
    """``steps``: the first event alone (the time to first token), then the rest of its read as
    one list, so the layers above pay once per read; ``stream`` is the same chunks one by one."""

    async def scenario() -> tuple[list[list[ChatChunk]], list[ChatChunk]]:
        async with _engine(Upstream(end_after=0.02)) as engine:
            steps = [step async for step in engine.steps(_params())]
            await asyncio.sleep(0.1)
            return steps, await _answer(engine)

    steps, chunks = asyncio.run(scenario())
    assert [len(step) for step in steps] == [1, 2]  # hi; then the finish and the usage together
    assert [c for step in steps for c in step] == chunks
