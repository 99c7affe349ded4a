"""Fixtures: every vision test runs under a connect guard; ``net`` is the loopback test network.

See ``helpers`` for what the guard and the network are.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from .helpers import (
    SERVER_HOST,
    ConnectGuard,
    Counting,
    Net,
    ServerState,
    bind_shared_port,
    build_app,
    make_tls_contexts,
    standard_files,
)


@pytest.fixture(autouse=True)
def connect_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectGuard]:
    guard = ConnectGuard()
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        guard.check(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard.check(self, address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield guard
    assert not guard.blocked, f"a non-loopback connection was attempted: {guard.blocked}"


@pytest_asyncio.fixture
async def net(connect_guard: ConnectGuard) -> AsyncIterator[Net]:
    port, (server_sock, sock4, sock6) = bind_shared_port()
    listener = Counting()
    listeners = [await asyncio.start_server(listener.on_connect, sock=s) for s in (sock4, sock6)]
    state = ServerState(files=standard_files())
    runner = web.AppRunner(
        build_app(state), shutdown_timeout=0.2, handle_signals=False, access_log=None
    )
    await runner.setup()
    await web.SockSite(runner, server_sock).start()
    try:
        yield Net(port=port, listener=listener, state=state, guard=connect_guard, runner=runner)
    finally:
        state.stop.set()
        await runner.cleanup()
        for srv in listeners:
            srv.close()
            await srv.wait_closed()


@pytest_asyncio.fixture
async def tls(net: Net, tmp_path: Path) -> AsyncIterator[tuple[int, ssl.SSLContext]]:
    """An HTTPS site for the same app on 127.0.0.2, certified for ``images.test`` only.

    Yields (port, client context that trusts the certificate).
    """
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available to make a test certificate")
    server_ctx, client_ctx = make_tls_contexts(tmp_path, "images.test")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((SERVER_HOST, 0))
    site = web.SockSite(net.runner, sock, ssl_context=server_ctx)
    await site.start()
    yield sock.getsockname()[1], client_ctx
