"""Test helpers for the vision layer: loopback servers, a connect guard, fake DNS, images.

Every test runs under ``connect_guard``: any ``connect()`` to a non-loopback address raises
before the syscall and fails the test, so even a broken SSRF check cannot send a packet off
this machine. The ``net`` fixture binds one port number P on three loopback addresses:

* ``127.0.0.2:P`` - an image server (tests allow it with ``allowed_networks=["127.0.0.2/32"]``)
* ``127.0.0.1:P`` and ``[::1]:P`` - counting listeners that must see zero connections

so an attack aimed at "the same port on a forbidden loopback address" lands on a counter.
"""

from __future__ import annotations

import asyncio
import errno
import io
import ipaddress
import os
import socket
import ssl
import struct
import subprocess
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

from minitoolai.vision import FetchPolicy

SERVER_HOST = "127.0.0.2"
ALLOW_SERVER = ("127.0.0.2/32",)
STREAM_TOTAL = 32 * 1024 * 1024  # what /stream would send if nobody stopped reading


# --------------------------------------------------------------------------- connect guard


@dataclass
class ConnectGuard:
    loopback: list[tuple[str, int]] = field(default_factory=list)
    blocked: list[Any] = field(default_factory=list)

    def check(self, sock: socket.socket, address: Any) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        try:
            ip = ipaddress.ip_address(str(address[0]).split("%")[0])
        except ValueError:
            ip = None
        if ip is not None and ip.is_loopback:
            self.loopback.append((str(ip), int(address[1])))
            return
        self.blocked.append(address)
        raise PermissionError(errno.EACCES, f"test guard: connect to {address!r} blocked")


# --------------------------------------------------------------------------- fake DNS


class FakeResolver:
    """host -> addresses, without DNS. A list of lists answers successive calls in turn."""

    def __init__(self, table: Mapping[str, Sequence[str] | Sequence[Sequence[str]]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.calls.append(host)
        answer = self.table.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, f"unknown test host {host}")
        if answer and not isinstance(answer[0], str):  # successive answers
            n = sum(1 for c in self.calls if c == host) - 1
            return list(answer[min(n, len(answer) - 1)])
        return [str(a) for a in answer]


# --------------------------------------------------------------------------- images


def make_image(fmt: str, size: tuple[int, int] = (64, 48), **save: Any) -> bytes:
    """A real image, made with Pillow."""
    im = Image.new("RGB", size, (200, 30, 90))
    im.putpixel((1, 1), (0, 255, 0))
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def make_animated_gif(size: tuple[int, int] = (16, 12), frames: int = 3) -> bytes:
    ims = [Image.new("P", size, i * 40) for i in range(frames)]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=50, loop=0)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming ``width`` x ``height`` with (almost) no pixel data: a bomb's header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------- servers


@dataclass
class Counting:
    connections: int = 0

    async def on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@dataclass
class ServerState:
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    streamed: int = 0
    stream_done: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def build_app(state: ServerState) -> web.Application:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        state.hits.append(request.path_qs)
        state.hosts.append(request.headers.get("Host", ""))
        response: web.StreamResponse = await handler(request)
        return response

    async def file(request: web.Request) -> web.Response:
        body, ctype = state.files[request.match_info["name"]]
        return web.Response(body=body, content_type=ctype)

    async def hop(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n == 0:
            body, ctype = state.files["image.png"]
            return web.Response(body=body, content_type=ctype)
        return web.Response(status=302, headers={"Location": f"/hop/{n - 1}"})  # relative

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": request.query["to"]})

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        await resp.prepare(request)  # chunked: no Content-Length to refuse early
        chunk = b"\x89PNG\r\n\x1a\n" + os.urandom(64 * 1024 - 8)
        try:
            while state.streamed < STREAM_TOTAL:
                await resp.write(chunk)
                state.streamed += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # client hung up: that is the point
        finally:
            state.stream_done.set()
        return resp

    async def big_length(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.content_length = 100 * 1024 * 1024
        await resp.prepare(request)
        await resp.write(b"\x89PNG\r\n\x1a\n")
        await state.stop.wait()
        return resp

    async def slow(request: web.Request) -> web.Response:
        await state.stop.wait()
        return web.Response(body=b"")

    async def slow_body(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        await resp.prepare(request)
        await resp.write(b"\x89PNG\r\n\x1a\n")
        await state.stop.wait()
        return resp

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404, text="nope")

    app = web.Application(middlewares=[record])
    app.router.add_get("/img/{name}", file)
    app.router.add_get("/hop/{n}", hop)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/stream", stream)
    app.router.add_get("/big-length", big_length)
    app.router.add_get("/slow", slow)
    app.router.add_get("/slow-body", slow_body)
    app.router.add_get("/missing", missing)
    return app


@dataclass
class Net:
    port: int
    listener: Counting
    state: ServerState
    guard: ConnectGuard
    runner: web.AppRunner

    def url(self, path: str, host: str = SERVER_HOST) -> str:
        return f"http://{host}:{self.port}{path}"

    def assert_untouched(self) -> None:
        """Nothing at all was connected to: no listener, no server, no connect() call."""
        assert self.listener.connections == 0
        assert self.state.hits == []
        assert self.guard.loopback == []
        assert self.guard.blocked == []


def bind_shared_port() -> tuple[int, list[socket.socket]]:
    """One port number free on 127.0.0.2, 127.0.0.1 and ::1."""
    for _ in range(50):
        first = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        first.bind((SERVER_HOST, 0))
        port = first.getsockname()[1]
        socks = [first]
        try:
            for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                s = socket.socket(family, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((host, port))
        except OSError:
            for s in socks:
                s.close()
            continue
        return port, socks
    raise RuntimeError("no shared loopback port found")


def standard_files() -> dict[str, tuple[bytes, str]]:
    png = make_image("PNG", (40, 30))
    return {
        "image.jpg": (make_image("JPEG", (64, 48)), "image/jpeg"),
        "image.png": (png, "image/png"),
        "image.webp": (make_image("WEBP", (33, 17)), "image/webp"),
        "anim.gif": (make_animated_gif((16, 12)), "image/gif"),
        "png-named.jpg": (png, "image/jpeg"),
        "random.png": (os.urandom(4096), "image/png"),
        "bomb.png": (png_header_only(20000, 20000), "image/png"),
    }


def server_policy(**kw: Any) -> FetchPolicy:
    """A policy that trusts only the test image server's address."""
    return FetchPolicy(allowed_networks=ALLOW_SERVER, **kw)


def make_tls_contexts(workdir: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts for a throwaway self-signed certificate naming ``name``.

    The certificate has no IP address in it, so a client only accepts it when it verifies the
    *host name*: exactly what pinning the address must not break.
    """
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client
