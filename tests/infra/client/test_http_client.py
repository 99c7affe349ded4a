"""The upstream HTTP client (``infra.http``) against raw servers on loopback: keep-alive,
every body framing, timeouts, a pooled connection the server closed, flow control, TLS. Each
test runs on asyncio's loop and on uvloop (``serve``'s), from this folder's conftest."""

from __future__ import annotations

import asyncio
import gzip
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from minitoolai.infra.http import (
    Broken,
    Client,
    ConnectFailed,
    Response,
    Silent,
    TimedOut,
    target,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.bodies: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def request(self, reader: asyncio.StreamReader) -> bytes:
        """One request's body (the head read up to Content-Length)."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.lower().split(b"\r\n")
            if line.startswith(b"content-length:")
        )
        body = await reader.readexactly(length)
        self.bodies.append(body)
        return head


@asynccontextmanager
async def serving(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[Server, int]]:
    server = Server(handler)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    try:
        yield server, listener.sockets[0].getsockname()[1]
    finally:
        listener.close()


def _json(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def _open(client: Client, port: int, body: bytes = b"{}", **timeouts: float) -> Response:
    options = {"connect_timeout": 2.0, "timeout": 5.0, "read_timeout": 2.0} | timeouts
    return await client.post(target(f"http://127.0.0.1:{port}/v1/x"), body, **options)  # type: ignore[arg-type]


async def _post(client: Client, port: int, body: bytes = b"{}", **timeouts: float) -> bytes:
    response = await _open(client, port, body, **timeouts)
    try:
        return await response.read(1 << 30)
    finally:
        response.close()


async def test_answers_with_a_length_share_one_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.request(reader)
            writer.write(_json(b'{"ok": true}'))

    async with serving(handler) as (server, port), Client() as client:
        answers = [await _post(client, port, b'{"n": %d}' % i) for i in range(3)]
    assert answers == [b'{"ok": true}'] * 3
    assert server.connections == 1
    assert server.bodies == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']


async def test_a_chunked_stream_is_read_as_it_comes_and_keeps_its_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for part in (b"data: 1\n\n", b"data: 2\n\n"):
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                await writer.drain()
                await asyncio.sleep(0.02)
            writer.write(b"0\r\n\r\n")

    async with serving(handler) as (server, port), Client() as client:
        response = await _open(client, port)
        reads = [data async for data in response.iter_any()]
        assert response.at_eof()
        response.close()
        assert b"".join(reads) == b"data: 1\n\ndata: 2\n\n"
        assert len(reads) == 2  # each event as it came, not the whole body at the end
        assert await _post(client, port) == b"data: 1\n\ndata: 2\n\n"
    assert server.connections == 1


async def test_a_body_without_a_length_ends_with_its_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")

    async with serving(handler) as (server, port), Client() as client:
        assert await _post(client, port) == b"all of it"
        assert await _post(client, port) == b"all of it"
    assert server.connections == 2


async def test_a_pooled_connection_closed_by_the_upstream_is_replaced_once() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(_json(b"first"))
        await writer.drain()
        # the next request arrives, and the connection closes unanswered (an idle timeout
        # racing the request): it never reached the application, so it is sent again
        await server.request(reader)

    async with serving(handler) as (server, port), Client() as client:
        assert await _post(client, port) == b"first"
        assert await _post(client, port) == b"first"
    assert server.connections == 2


async def test_a_fresh_connection_closed_unanswered_is_not_retried() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)  # then hangs up without a word

    async with serving(handler) as (server, port), Client() as client:
        with pytest.raises(Broken):
            await _post(client, port)
    assert server.connections == 1


async def test_a_stream_cut_mid_body_is_broken() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")

    async with serving(handler) as (server, port), Client() as client:
        with pytest.raises(Broken):
            await _post(client, port)


async def test_silence_before_the_head_and_between_reads() -> None:
    async def no_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        await asyncio.sleep(5)

    async with serving(no_head) as (server, port), Client() as client:
        with pytest.raises(Silent):
            await _post(client, port, read_timeout=0.1)

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await asyncio.sleep(5)

    async with serving(stalls) as (server, port), Client() as client:
        response = await _open(client, port, read_timeout=0.1)
        assert await response.readany() == b"abc"
        with pytest.raises(Silent):
            await response.readany()
        response.close()


async def test_a_slow_drip_is_fine_until_the_whole_deadline() -> None:
    async def drips(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
        for _ in range(1000):
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.03)

    async with serving(drips) as (server, port), Client() as client:
        with pytest.raises(TimedOut):
            await _post(client, port, read_timeout=0.2, timeout=0.5)


async def test_nothing_listening_is_a_connect_failure() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    async with Client() as client:
        with pytest.raises(ConnectFailed, match="cannot connect"):
            await _post(client, port)


async def test_what_is_not_http_is_broken() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    async with serving(handler) as (server, port), Client() as client:
        with pytest.raises(Broken):
            await _post(client, port)


async def test_a_gzip_body_is_decoded_and_an_informational_head_skipped() -> None:
    packed = gzip.compress(b'{"hello": "world"}')

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await server.request(reader)
        assert b"accept-encoding" not in head.lower()  # compression is not asked for
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n")
        writer.write(_json(packed, b"content-encoding: gzip\r\n"))

    async with serving(handler) as (server, port), Client() as client:
        assert await _post(client, port) == b'{"hello": "world"}'


async def test_a_large_body_goes_whole_and_a_large_answer_comes_whole() -> None:
    body = bytes(range(256)) * (12 * 1024)  # 3 MiB: written in pieces
    answer = b"y" * (5 * 1024 * 1024)  # past the high-water mark: reading pauses and resumes

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(_json(answer))
        await writer.drain()

    async with serving(handler) as (server, port), Client() as client:
        response = await _open(client, port, body, timeout=10, read_timeout=5)
        parts = []
        while data := await response.readany():
            parts.append(data)
            await asyncio.sleep(0.001)  # a slow reader
        response.close()
    assert server.bodies == [body]
    assert b"".join(parts) == answer


async def test_the_limit_makes_a_call_wait_for_a_free_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.request(reader)
            await asyncio.sleep(0.05)
            writer.write(_json(b"ok"))

    async with serving(handler) as (server, port), Client(limit=1) as client:
        answers = await asyncio.gather(*(_post(client, port) for _ in range(4)))
    assert answers == [b"ok"] * 4
    assert server.connections == 1


async def test_an_abandoned_answer_closes_its_connection() -> None:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await reader.read()  # until the client hangs up
        closed.set()

    async with serving(handler) as (server, port), Client() as client:
        response = await _open(client, port)
        assert await response.readany() == b"hello"
        response.close()  # the client went away: the upstream is told at once
        await asyncio.wait_for(closed.wait(), 2)


def test_headers_that_could_write_another_header_are_refused() -> None:
    with pytest.raises(ValueError, match="header"):
        target("http://127.0.0.1/v1", headers={"X-Team": "a\r\nX-Admin: yes"})
    with pytest.raises(ValueError, match="header"):
        target("http://127.0.0.1/v1", headers={"Bad Name": "x"})
    with pytest.raises(ValueError, match="http"):
        target("ftp://127.0.0.1/v1")


def test_the_request_head_names_host_path_query_and_headers() -> None:
    to = target("https://[::1]:8443/v1/chat", {"api-version": "2024-10"}, {"Authorization": "x"})
    assert to.origin.host == "::1" and to.origin.port == 8443 and to.origin.tls
    assert to.head.startswith(b"POST /v1/chat?api-version=2024-10 HTTP/1.1\r\nHost: [::1]:8443\r\n")
    assert b"\r\nAuthorization: x\r\n" in to.head


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_is_verified_against_the_trust_store(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.request(reader)
            writer.write(_json(b"secret"))

    async with serving(handler, tls=server_side) as (server, port):
        to = target(f"https://127.0.0.1:{port}/v1")
        async with Client() as untrusting:  # the system's store does not know this certificate
            with pytest.raises(ConnectFailed):
                await untrusting.post(to, b"{}", connect_timeout=2, timeout=5, read_timeout=2)
        trusting = ssl.create_default_context(cafile=str(cert))
        async with Client(tls=trusting) as client:
            for _ in range(2):
                response = await client.post(
                    to, b"{}", connect_timeout=2, timeout=5, read_timeout=2
                )
                assert await response.read(100) == b"secret"
                response.close()
    assert server.connections == 1  # (the refused handshake never reached it) one kept
