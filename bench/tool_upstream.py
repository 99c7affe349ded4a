"""The fake upstream of ``bench.tools_bench``: words for a request without tools, a tool call
of the same size for a request with them.

``bench.upstream`` answers every request with ``--chunks`` words. This one answers a request
whose body has ``"tools"`` with one ``get_weather`` call instead, streamed as OpenAI streams
calls: the opening delta (index, id, type, name, empty arguments), then the arguments in
pieces, then ``finish_reason: "tool_calls"``. The two answers have the same number of events
(``--chunks``: the opening plus ``--chunks - 1`` argument pieces, each piece one of the
words), the same usage and nearly the same bytes, so the difference a gateway shows between
them is what it does differently for a tool call. As there, everything is encoded once at
start, on the same raw protocol (uvloop + httptools).

Run: ``python -m bench.tool_upstream --port 0 --chunks 50`` prints ``READY <port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys

import orjson

from bench.aio import run
from bench.upstream import (
    MODEL,
    STREAM_HEAD,
    Answers,
    UpstreamProtocol,
    _chunk_event,
    _usage,
    _words,
    http_chunk,
)

CALL_ID = "call_bench_weather"
TOOL_NAME = "get_weather"
_HAS_TOOLS = re.compile(rb'"tools"\s*:\s*\[')


def argument_pieces(chunks: int) -> list[str]:
    """``chunks - 1`` pieces that join into one JSON object, each about a word long."""
    words = _words(max(1, chunks - 1))
    words[0] = '{"q": "' + words[0]
    words[-1] = words[-1] + '"}'
    return words


def tool_events(chunks: int, with_usage: bool) -> list[bytes]:
    """The SSE events of one streamed tool call, in order."""

    def delta(call: dict[str, object]) -> bytes:
        choice = {"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}
        return _chunk_event([choice])

    events = [
        _chunk_event(
            [{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}]
        ),
        delta(
            {
                "index": 0,
                "id": CALL_ID,
                "type": "function",
                "function": {"name": TOOL_NAME, "arguments": ""},
            }
        ),
    ]
    events += [delta({"index": 0, "function": {"arguments": p}}) for p in argument_pieces(chunks)]
    events.append(_chunk_event([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]))
    if with_usage:
        events.append(_chunk_event([], _usage(chunks)))
    events.append(b"data: [DONE]\n\n")
    return events


def tool_json_answer(chunks: int) -> bytes:
    call = {
        "id": CALL_ID,
        "type": "function",
        "function": {"name": TOOL_NAME, "arguments": "".join(argument_pieces(chunks))},
    }
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
                    "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                    "finish_reason": "tool_calls",
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


def tool_answers(chunks: int) -> Answers:
    def parts(usage: bool) -> tuple[bytes, ...]:
        return (STREAM_HEAD, *(http_chunk(e) for e in tool_events(chunks, usage)), b"0\r\n\r\n")

    return Answers(tool_json_answer(chunks), parts(True), parts(False))


class ToolUpstreamProtocol(UpstreamProtocol):
    """``bench.upstream``'s protocol, answering from the tool answers when asked with tools."""

    def __init__(self, words: Answers, calls: Answers, delay_s: float) -> None:
        super().__init__(words, delay_s)
        self.words, self.calls = words, calls

    def on_message_complete(self) -> None:
        self.answers = self.calls if _HAS_TOOLS.search(b"".join(self.body)) else self.words
        super().on_message_complete()


async def serve(host: str, port: int, chunks: int, delay_ms: float) -> None:
    loop = asyncio.get_running_loop()
    words, calls = Answers.build(chunks), tool_answers(chunks)
    server = await loop.create_server(
        lambda: ToolUpstreamProtocol(words, calls, delay_ms / 1000), host, port, backlog=4096
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write(f"READY {server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.tool_upstream", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--chunks", type=int, default=50, help="events per answer (words or pieces)")
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0)
    args = ap.parse_args(argv)
    run(serve(args.host, args.port, args.chunks, args.chunk_delay_ms))


if __name__ == "__main__":
    main()
