"""The Python load generator: closed-loop keep-alive clients, one process, its own core.

Why not aiohttp or httpx: a client library costs more per request than some of the gateways
under test, and then the figures measure the client. This is a raw asyncio protocol on uvloop
with httptools' C response parser; each of ``--concurrency`` connections sends one request,
waits for the whole answer, and sends the next (a closed loop, like wrk). It records, for each
request answered inside the measurement window:

- latency: request written -> last byte of the answer (requests whose answer completes
  inside the measurement window);
- time to first token (streams): request written -> first body bytes holding a non-empty
  ``"content"`` delta or a ``"tool_calls"`` delta (the role-only first event of OpenAI streams
  does not count).

Phases: connect, ``--warmup`` seconds unrecorded, then it prints ``START`` (flushed), measures
for ``--duration`` seconds, prints ``END``, gives in-flight requests up to 2 s, and prints one
JSON line of results. The orchestrator reads the gateway's CPU counters at ``START`` and
``END``, so CPU per request covers exactly the measured requests. The run is bounded by
``--duration``, ``--max-requests`` and per-request ``--timeout``; it always stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import orjson

from bench.aio import run

_TOKEN = re.compile(rb'"content"\s*:\s*"[^"]|"tool_calls"\s*:\s*\[')


@dataclass
class Stats:
    latencies: array[float] = field(default_factory=lambda: array("d"))
    ttfts: array[float] = field(default_factory=lambda: array("d"))
    errors: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    sent: int = 0


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that runs one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self.done: asyncio.Future[int] | None = None
        self.first_token: float = 0.0
        self.status = 0
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionResetError("connection closed mid-answer"))
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.parser is None:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.done is not None and not self.done.done():
                self.done.set_exception(exc)

    def send(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.parser = httptools.HttpResponseParser(self)
        self.first_token = 0.0
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.done

    # httptools callbacks
    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        if not self.first_token and _TOKEN.search(body):
            self.first_token = time.perf_counter()

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(self.status)


def build_request(url: str, body: bytes, headers: list[tuple[str, str]]) -> bytes:
    parts = urlsplit(url)
    path = parts.path or "/"
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        "Accept: */*",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Window:
    """The measurement window: a request counts when its answer completes inside it.

    As wrk counts: completions per second of window is the throughput, and a slow gateway
    at high concurrency (answers slower than the window is long) still shows its figures.
    """

    start: float = math.inf
    end: float = math.inf
    stop: float = math.inf  # no new request after this


async def _connect(host: str, port: int) -> Connection:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(Connection, host, port)
    return proto


async def client(
    host: str,
    port: int,
    request: bytes,
    window: Window,
    stats: Stats,
    timeout: float,
    max_requests: int,
) -> None:
    conn: Connection | None = None
    while time.perf_counter() < window.stop and stats.sent < max_requests:
        try:
            if conn is None or conn.transport is None:
                conn = await _connect(host, port)
            stats.sent += 1
            t0 = time.perf_counter()
            async with asyncio.timeout(timeout):
                status = await conn.send(request)
            t1 = time.perf_counter()
        except TimeoutError:
            stats.errors["timeout"] += 1
            _drop(conn)
            conn = None
            continue
        except (OSError, httptools.HttpParserError) as exc:
            stats.errors[type(exc).__name__] += 1
            _drop(conn)
            conn = None
            await asyncio.sleep(0.01)  # a refused connection must not spin the loop
            continue
        if not conn.keep_alive:
            _drop(conn)
            conn = None
        if not window.start <= t1 <= window.end:
            continue
        stats.statuses[status] += 1
        if status != 200:
            stats.errors[f"http_{status}"] += 1
            continue
        stats.latencies.append(t1 - t0)
        if conn is not None and conn.first_token:
            stats.ttfts.append(conn.first_token - t0)


def _drop(conn: Connection | None) -> None:
    if conn is not None and conn.transport is not None:
        conn.transport.close()


def percentiles(values: array[float] | list[float]) -> dict[str, float] | None:
    """p50/p90/p99/p99.9/max/mean in milliseconds (nearest-rank), or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    n = len(ordered)

    def rank(p: float) -> float:
        return ordered[min(n - 1, max(0, math.ceil(p * n) - 1))] * 1000

    return {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "p999": rank(0.999),
        "max": ordered[-1] * 1000,
        "mean": sum(ordered) / n * 1000,
    }


def _mark(word: str) -> None:
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    headers = [(k.strip(), v.strip()) for k, v in (h.split(":", 1) for h in args.header)]
    with open(args.body_file, "rb") as fh:
        request = build_request(args.url, fh.read(), headers)
    stats, window = Stats(), Window()
    now = time.perf_counter()
    window.stop = now + args.warmup + args.duration + 60  # refined below; a hard bound anyway
    tasks = [
        asyncio.create_task(
            client(host, port, request, window, stats, args.timeout, args.max_requests)
        )
        for _ in range(args.concurrency)
    ]
    await asyncio.sleep(args.warmup)
    window.start = time.perf_counter()
    window.end = window.start + args.duration
    window.stop = window.end
    _mark("START")
    await asyncio.sleep(args.duration)
    _mark("END")
    _, pending = await asyncio.wait(tasks, timeout=2.0)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    done = len(stats.latencies)
    return {
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "requests": done,
        "rps": done / args.duration,
        "latency_ms": percentiles(stats.latencies),
        "ttft_ms": percentiles(stats.ttfts),
        "errors": dict(stats.errors),
        "statuses": {str(k): v for k, v in stats.statuses.items()},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    ap.add_argument("--url", required=True, help="full URL of the chat completions endpoint")
    ap.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    ap.add_argument("--body-file", required=True)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--max-requests", type=int, default=10_000_000)
    args = ap.parse_args(argv)
    result = run(drive(args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
