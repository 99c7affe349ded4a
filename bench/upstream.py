"""The fake OpenAI upstream every contender talks to: as lean as a Python server can be.

Every contender is measured as "the time it adds on top of this server", so the server itself
must cost as little as possible and cost the same for every caller. It is a raw asyncio
protocol on uvloop with httptools' C parser, and every answer is encoded once at start:

- ``"stream": false`` -> one ``chat.completion`` JSON with ``content-length``;
- ``"stream": true`` -> ``chat.completion.chunk`` events (a role event, ``--chunks`` content
  events, a finish event, a usage event when ``stream_options.include_usage`` is asked for, as
  OpenAI does, then ``[DONE]``), chunked transfer encoding.

With ``--chunk-delay-ms 0`` (the default) a whole stream leaves in one write, so a stream costs
the upstream about what a JSON answer does; a delay spaces the events out like a real model.
It ignores the prompt and the model asked for: the answer never depends on who asks.

Run: ``python -m bench.upstream --port 9000`` prints ``READY <port>`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from dataclasses import dataclass
from typing import cast

import httptools
import orjson

from bench.aio import run

MODEL = "gpt-4o-mini-2024-07-18"
PROMPT_TOKENS = 24
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
_WANTS_USAGE = re.compile(rb'"include_usage"\s*:\s*true')


def _words(n: int) -> list[str]:
    return [f"w{i} " for i in range(n)]


def _chunk_event(choices: list[object], usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, object] = {
        "id": "chatcmpl-upstream",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "system_fingerprint": "fp_upstream",
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


def _usage(n: int) -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": n,
        "total_tokens": PROMPT_TOKENS + n,
    }


def stream_events(chunks: int, with_usage: bool) -> list[bytes]:
    """The SSE events of one streamed answer, in order."""
    events = [
        _chunk_event(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
    ]
    events += [
        _chunk_event([{"index": 0, "delta": {"content": w}, "finish_reason": None}])
        for w in _words(chunks)
    ]
    events.append(_chunk_event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    if with_usage:
        events.append(_chunk_event([], _usage(chunks)))
    events.append(b"data: [DONE]\n\n")
    return events


def json_answer(chunks: int) -> bytes:
    body = orjson.dumps(
        {
            "id": "chatcmpl-upstream",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL,
            "system_fingerprint": "fp_upstream",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(_words(chunks))},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(chunks),
        }
    )
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    return head + body


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
HEALTH = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


def http_chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@dataclass(frozen=True)
class Answers:
    """Every byte the server can send, encoded once."""

    json: bytes
    stream_parts: tuple[bytes, ...]  # with usage; head first, terminator last
    stream_parts_no_usage: tuple[bytes, ...]

    @classmethod
    def build(cls, chunks: int) -> Answers:
        def parts(usage: bool) -> tuple[bytes, ...]:
            body = [http_chunk(e) for e in stream_events(chunks, usage)]
            return (STREAM_HEAD, *body, b"0\r\n\r\n")

        return cls(json_answer(chunks), parts(True), parts(False))


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection; answers each parsed request from ``Answers``."""

    def __init__(self, answers: Answers, delay_s: float) -> None:
        self.answers = answers
        self.delay_s = delay_s
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        url, body = self.url, b"".join(self.body)
        self.url, self.body = b"", []
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not url.endswith(b"/chat/completions"):
            transport.write(HEALTH if url.startswith(b"/health") else NOT_FOUND)
        elif not _STREAM_TRUE.search(body):
            transport.write(self.answers.json)
        else:
            usage = bool(_WANTS_USAGE.search(body))
            parts = self.answers.stream_parts if usage else self.answers.stream_parts_no_usage
            if self.delay_s > 0:  # the connection closes, if it must, after the last part
                self._trickle(transport, parts, 0, self.parser.should_keep_alive())
                return
            transport.write(b"".join(parts))
        if not self.parser.should_keep_alive():
            transport.close()

    def _trickle(
        self, transport: asyncio.Transport, parts: tuple[bytes, ...], i: int, keep: bool
    ) -> None:
        """Head and first event now, then one event every ``delay_s``, like a real model."""
        if transport.is_closing():
            return
        if i == 0:
            transport.write(parts[0] + parts[1])
            i = 2
        else:
            transport.write(parts[i])
            i += 1
        if i < len(parts):
            loop = asyncio.get_running_loop()
            loop.call_later(self.delay_s, self._trickle, transport, parts, i, keep)
        elif not keep:
            transport.close()


async def serve(host: str, port: int, chunks: int, delay_ms: float) -> None:
    loop = asyncio.get_running_loop()
    answers = Answers.build(chunks)
    server = await loop.create_server(
        lambda: UpstreamProtocol(answers, delay_ms / 1000), host, port, backlog=4096
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"READY {bound}\n")
    sys.stdout.flush()
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--chunks", type=int, default=50, help="content events per answer")
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0)
    args = ap.parse_args(argv)
    run(serve(args.host, args.port, args.chunks, args.chunk_delay_ms))


if __name__ == "__main__":
    main()
