"""The one pooled HTTP/1.1 client every upstream call shares (one per process, per event loop).

An upstream call always has one shape: POST a body to a configured URL, read the status, read
the body as it arrives (one whole answer or a stream of events), keep the connection for the
next call. This client does that and nothing else, on asyncio's transports with httptools'
response parser (the C parser uvicorn and the bench's upstream use). aiohttp's client did the
same for about a quarter of a proxied request's CPU (bench/README.md, issue 16), most of it on
what an upstream call never uses: URL objects and header multidicts built per call, cookies,
redirects, proxies, tracing hooks, timer contexts per read.

On purpose it does not follow redirects (an upstream that redirects is misconfigured, and the
redirect would carry the provider's key elsewhere), read proxies from the environment, keep
cookies or ask for compression (a gzip or deflate body sent anyway is decoded).

Every failure is an :class:`HTTPError`: :class:`ConnectFailed` (refused, unreachable, TLS
failed, or not connected within the connect timeout), :class:`Silent` (nothing read within the
read timeout), :class:`TimedOut` (the call's whole deadline passed), :class:`Broken` (the
connection closed before the answer's end, or what came back is not HTTP). A connection taken
from the pool that turns out closed before the first byte of its answer is replaced once: the
upstream closed it while idle, so the request never reached it.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, urlencode, urlsplit

import httptools

#: what a body read waits for, when the caller names no timeout of its own
_UNSET: Any = object()
#: a body buffered past this many bytes pauses reading from the socket until it is read
_HIGH_WATER = 256 * 1024
#: a request body larger than this is written in pieces of this size (one write copies it)
_WRITE_PIECE = 256 * 1024


class HTTPError(Exception):
    """An upstream call failed; the message never quotes a URL, a header or a body."""


class ConnectFailed(HTTPError):
    pass


class Silent(HTTPError):
    pass


class TimedOut(HTTPError):
    pass


class Broken(HTTPError):
    pass


@dataclass(frozen=True, slots=True)
class Origin:
    host: str
    port: int
    tls: bool


@dataclass(frozen=True, slots=True)
class Target:
    """Where a POST goes, with its request line and fixed headers encoded once."""

    origin: Origin
    head: bytes  # the request line and every header but Content-Length, each line ended


def target(
    url: str, query: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> Target:
    """A URL (``http`` or ``https``), extra query parameters and headers, encoded once.

    Header names and values with CR, LF or NUL are refused (``ValueError``): the operator's
    configuration must not be able to write a second header, or a second request."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an upstream URL is http:// or https:// with a host")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    if port != (443 if tls else 80):
        shown = f"{shown}:{port}"
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    search = "&".join(p for p in (parts.query, urlencode(query or {})) if p)
    lines = [
        f"POST {path}{'?' + search if search else ''} HTTP/1.1",
        f"Host: {shown}",
        "User-Agent: minitoolai",
        "Accept: */*",
    ]
    for name, value in (headers or {}).items():
        if not name or any(c in name for c in "\r\n\0: \t") or any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {name!r} has a character a header cannot hold")
        lines.append(f"{name}: {value}")
    return Target(Origin(host, port, tls), ("\r\n".join(lines) + "\r\n").encode("latin-1"))


#: a limit this close is taken as passed (uvloop's clock and timers count milliseconds: a timer
#: re-armed for less would fire again and again until the clock moves on)
_CLOCK_SLACK_S = 0.001


class _Connection(asyncio.Protocol):
    """One connection and the answer being read on it (one at a time: no pipelining)."""

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.origin = origin
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_since = 0.0
        self.pool: list[_Connection] | None = None  # the idle list it is on, while idle
        self._writable: asyncio.Future[None] | None = None
        # a wait's limit: one timer watches every wait of a stream (``Client.wait``)
        self.wait_until = 0.0
        self.watchdog: asyncio.TimerHandle | None = None
        self.watch_at = 0.0
        self.reset()

    def reset(self) -> None:
        """Ready for the next answer on this connection."""
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.keep_alive = False
        self.informational = False
        self.complete = False
        self.received = False
        self.error: HTTPError | None = None
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.waiter: asyncio.Future[bool] | None = None
        self.inflate: Any = None
        self.paused = False

    # -- asyncio's side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(Broken("the answer is not HTTP/1.1"))
            self.close()

    def eof_received(self) -> bool:
        return False  # the transport closes itself; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.pool is not None:  # closed while idle: no longer offered
            self.pool.remove(self)
            self.pool = None
        if not self.complete and self.error is None:
            if self.head_done and self._until_close():
                self.complete = True  # a body without a length ends with its connection
            else:
                self.error = Broken("the connection closed before the answer's end")
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._wake()
        self.unwatch()

    def pause_writing(self) -> None:
        self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # -- the parser's side
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.informational = True  # 100 Continue, 103 Early Hints: the answer follows
            self.headers = []
            return
        self.status = status
        self.head_done = True
        # read now: the parser forgets it once the message is complete
        self.keep_alive = bool(self.parser.should_keep_alive())
        encoding = self.header(b"content-encoding")
        if encoding is not None and encoding.strip().lower() not in (b"identity", b""):
            if encoding.strip().lower() in (b"gzip", b"x-gzip", b"deflate"):
                self.inflate = zlib.decompressobj(wbits=47)  # gzip or zlib, from the header
            else:
                self.error = Broken("the answer's content-encoding is not gzip or deflate")
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.inflate is not None:
            try:
                body = self.inflate.decompress(body)
            except zlib.error:
                self._fail(Broken("the answer's compressed body is corrupt"))
                return
        if body:
            self.body.append(body)
            self.buffered += len(body)
            if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()
            self._wake()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self.complete = True
        self._wake()

    # -- helpers
    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def _until_close(self) -> bool:
        return (
            self.header(b"content-length") is None
            and b"chunked" not in (self.header(b"transfer-encoding") or b"").lower()
        )

    def _fail(self, error: HTTPError) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def take(self) -> bytes:
        data = self.body.popleft() if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    async def drained(self) -> None:
        if self._writable is not None:
            await self._writable

    def reusable(self) -> bool:
        """Its answer ended cleanly and the upstream lets it be kept."""
        if not self.complete or self.error is not None or self.lost:
            return False
        return self.keep_alive

    def close(self) -> None:
        self.unwatch()
        if self.transport is not None:
            self.transport.close()

    def watch(self, due: float) -> None:
        """The waiter is woken with False once ``due`` passes. A timer per wait would be made
        and cancelled on every network read; instead one stays armed and, when it fires early
        (the reads since moved the limit on), re-arms itself for the limit now set."""
        self.wait_until = due
        if self.watchdog is None or self.watch_at > due:
            self.unwatch()
            self.watch_at = due
            self.watchdog = self.loop.call_at(due, self._watched)

    def unwatch(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None

    def _watched(self) -> None:
        self.watchdog = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # nobody waits: the next wait arms it again
        due = self.wait_until
        if self.loop.time() + _CLOCK_SLACK_S >= due:
            waiter.set_result(False)
        else:
            self.watch_at = due
            self.watchdog = self.loop.call_at(due, self._watched)


class Response:
    """An answer's status and headers; its body is read with :meth:`readany`. Always
    :meth:`close` it (or :meth:`release` it): that returns or closes its connection."""

    __slots__ = ("_client", "_conn", "_deadline", "_done", "read_timeout", "status")

    def __init__(
        self, client: Client, conn: _Connection, deadline: float, read_timeout: float | None
    ) -> None:
        self._client = client
        self._conn = conn
        self._deadline = deadline
        self._done = False
        self.status = conn.status
        #: the longest a body read waits for data (None: until the deadline)
        self.read_timeout = read_timeout

    def header(self, name: str) -> str | None:
        value = self._conn.header(name.lower().encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    def at_eof(self) -> bool:
        """The whole body has arrived and been read."""
        return self._conn.complete and not self._conn.body

    async def readany(self, timeout: float | None = _UNSET) -> bytes:
        """What has arrived of the body (waiting for some), or ``b""`` at its end."""
        conn = self._conn
        while True:
            if conn.body:
                return conn.take()
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                return b""
            await self._client.wait(
                conn, self.read_timeout if timeout is _UNSET else timeout, self._deadline
            )

    async def read(self, limit: int) -> bytes:
        """The body's first ``limit`` bytes (fewer if it ends first)."""
        parts: list[bytes] = []
        size = 0
        while size < limit and (data := await self.readany()):
            parts.append(data)
            size += len(data)
        return b"".join(parts)[:limit]

    async def iter_any(self) -> AsyncIterator[bytes]:
        while data := await self.readany():
            yield data

    def close(self) -> None:
        """Done with this answer: its connection goes back to the pool if the body ended
        cleanly and may be kept, and is closed otherwise (which also stops the upstream)."""
        if self._done:
            return
        self._done = True
        self._client.give_back(self._conn)

    def release(self, wait_s: float, max_bytes: int) -> None:
        """Done with this answer, whose content is complete: if the body's end is still on
        its way (a chunked terminator a packet later), it is awaited in the background for
        ``wait_s`` and ``max_bytes`` at most, so the connection can be kept."""
        if self._done:
            return
        if self._conn.complete or self._conn.error is not None or self._conn.lost:
            self.close()
            return
        self._done = True
        self._client.drain(self._conn, wait_s, max_bytes)


class Client:
    """Connections pooled per origin (LIFO, so the warmest is reused), ``limit`` open at most:
    a call past the limit waits for a connection to free up."""

    def __init__(
        self, *, limit: int = 1000, keepalive_s: float = 30.0, tls: ssl.SSLContext | None = None
    ) -> None:
        self._limit = asyncio.Semaphore(limit)
        self._keepalive_s = keepalive_s
        self._idle: dict[Origin, list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._draining: set[asyncio.Task[None]] = set()
        self._tls = tls  # None: the system's trust store, made on the first https call
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def post(
        self,
        to: Target,
        body: bytes,
        extra_headers: bytes = b"",
        *,
        connect_timeout: float,
        timeout: float,
        read_timeout: float | None,
    ) -> Response:
        """POST ``body``; the answer once its status and headers have arrived.

        ``timeout`` bounds the whole call, body included; ``read_timeout`` (None: no bound but
        ``timeout``) bounds the wait for the answer's head and, by default, each body read.
        ``extra_headers``: encoded header lines (each ended by CRLF), already checked."""
        if self._closed:
            raise ConnectFailed("the client is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        head = b"%sContent-Length: %d\r\n%s\r\n" % (to.head, len(body), extra_headers)
        for attempt in (1, 2):
            conn, reused = await self._connection(to.origin, connect_timeout, deadline)
            try:
                await self._send(conn, head, body)
                while not conn.head_done and conn.error is None:
                    await self.wait(conn, read_timeout, deadline)
                if conn.error is not None:
                    raise conn.error
            except Broken:
                self.give_back(conn)
                if reused and not conn.received and attempt == 1:
                    continue  # closed by the upstream while idle: the request never got there
                raise
            except BaseException:
                self.give_back(conn)
                raise
            return Response(self, conn, deadline, read_timeout)
        raise AssertionError("unreachable")

    async def _send(self, conn: _Connection, head: bytes, body: bytes) -> None:
        transport = conn.transport
        assert transport is not None
        if len(body) <= _WRITE_PIECE:
            transport.write(head + body)
            return
        transport.write(head)
        view = memoryview(body)
        for start in range(0, len(body), _WRITE_PIECE):
            if conn.lost:
                return  # the read that follows reports it
            transport.write(view[start : start + _WRITE_PIECE])
            await conn.drained()

    async def wait(self, conn: _Connection, timeout: float | None, deadline: float) -> None:
        """Until the connection has news (data, the head, its end, an error) or a limit passes."""
        loop = conn.loop
        now = loop.time()
        left = deadline - now
        silent = timeout is not None and timeout < left
        limit = timeout if silent and timeout is not None else left
        if limit <= 0:
            raise TimedOut("the call's deadline passed")
        waiter: asyncio.Future[bool] = loop.create_future()
        conn.waiter = waiter
        conn.watch(now + limit)
        try:
            woken = await waiter
        finally:
            conn.waiter = None
        if not woken:
            if silent:
                raise Silent(f"nothing read for {limit:g} s")
            raise TimedOut("the call's deadline passed")

    async def _connection(
        self, origin: Origin, connect_timeout: float, deadline: float
    ) -> tuple[_Connection, bool]:
        await self._limit.acquire()
        try:
            idle = self._idle.get(origin)
            while idle:
                conn = idle.pop()
                conn.pool = None
                stale = conn.loop.time() - conn.idle_since > self._keepalive_s
                if conn.lost or conn.received or stale:  # received: said something while idle
                    conn.close()
                    continue
                conn.reset()
                self._busy.add(conn)
                return conn, True
            conn = await self._connect(origin, min(connect_timeout, deadline - _now()))
        except BaseException:
            self._limit.release()
            raise
        self._busy.add(conn)
        return conn, False

    async def _connect(self, origin: Origin, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        tls = self._context() if origin.tls else None
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                _, conn = await loop.create_connection(
                    lambda: _Connection(origin, loop),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except TimeoutError:
            raise ConnectFailed(f"cannot connect within {timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectFailed(f"cannot connect ({type(exc).__name__})") from None
        return conn

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    def give_back(self, conn: _Connection) -> None:
        if conn not in self._busy:
            return
        self._busy.discard(conn)
        self._limit.release()
        if self._closed or not conn.reusable():
            conn.close()
            return
        conn.unwatch()
        conn.idle_since = conn.loop.time()
        conn.received = False
        conn.pool = self._idle.setdefault(conn.origin, [])
        conn.pool.append(conn)

    def drain(self, conn: _Connection, wait_s: float, max_bytes: int) -> None:
        task = asyncio.ensure_future(self._drain(conn, wait_s, max_bytes))
        self._draining.add(task)  # a reference, or the task could be collected half-way
        task.add_done_callback(self._draining.discard)

    async def _drain(self, conn: _Connection, wait_s: float, max_bytes: int) -> None:
        deadline = conn.loop.time() + wait_s
        read = 0
        try:
            while not conn.complete and conn.error is None and read <= max_bytes:
                if conn.body:
                    read += len(conn.take())
                    continue
                await self.wait(conn, None, deadline)
        except HTTPError:
            pass  # not reusable: closed below
        finally:
            self.give_back(conn)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._draining):
            task.cancel()
        for idle in self._idle.values():
            for conn in list(idle):
                conn.pool = None
                conn.close()
            idle.clear()
        for conn in list(self._busy):
            conn.close()


def _now() -> float:
    return asyncio.get_running_loop().time()


def upstream_client() -> Client:
    """The process's upstream client: up to 1,000 connections open (upstreams see at most
    that many from one process), idle ones kept 30 s."""
    return Client(limit=1000, keepalive_s=30.0)
