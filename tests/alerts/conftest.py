"""Loopback receivers for alerts: a real HTTP server that keeps every POST, and the SMTP
server of the people tests."""

from __future__ import annotations

import http.server
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import pytest

from tests.people.test_mail import _Smtp


@dataclass
class Receiver:
    url: str
    posts: list[dict[str, object]] = field(default_factory=list)
    status: int = 204  # what it answers (a test sets 500 to make it fail)
    connections: int = 0


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        receiver: Receiver = self.server.receiver  # type: ignore[attr-defined]
        receiver.connections += 1
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if receiver.status < 300:
            receiver.posts.append(orjson.loads(body))
        self.send_response(receiver.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def hook() -> Iterator[Receiver]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    receiver = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/balance")
    server.receiver = receiver  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def smtp() -> Iterator[tuple[str, list[bytes]]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.inbox = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield f"smtp://127.0.0.1:{port}?from=billing@shop.test", server.inbox  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
