"""A client that leaves before the first upstream byte, or while a non-streamed answer is being
made, is noticed at once: the upstream call is stopped and the hold released (regression: it
was noticed only when the upstream answered, holding the credit all that time)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import orjson
import pytest

from tests.chat.conftest import database_url
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

MESSAGES = [{"role": "user", "content": "Count for me, please."}]


def send_and_leave(gw: Gateway, body: dict[str, object], path: str) -> None:
    """POST the body on a raw socket, wait until the gateway holds the credit, hang up."""
    host, port = gw.url.removeprefix("http://").split(":")
    raw = orjson.dumps(body)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {gw.api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n".encode()
            + raw
        )
        deadline = time.monotonic() + 5
        while gw.idle_held_nano() == 0:
            assert time.monotonic() < deadline, "the request was never held"
            time.sleep(0.02)


@pytest.mark.parametrize(
    ("stream", "path"),
    [
        (False, "/v1/chat/completions"),
        (True, "/v1/chat/completions"),
        (True, "/api/chat-completions/"),
    ],
)
def test_a_client_leaving_before_the_answer_frees_its_hold_at_once(
    tmp_path: Path, stream: bool, path: str
) -> None:
    upstream = FakeUpstream(stall_s=20, fault_at=0)  # says nothing for 20 s
    deps: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(tmp_path, database_url("sqlite", tmp_path), {"up": upstream}, deps) as gw:
        before = gw.balance_nano()
        send_and_leave(gw, {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": stream}, path)
        left = time.monotonic()
        while gw.held_nano() != 0:
            assert time.monotonic() - left < 3, "the hold outlived the client by 3 s"
            time.sleep(0.05)
        assert gw.balance_nano() == before  # nothing was generated: nothing is owed


def test_control_characters_in_a_path_cannot_forge_an_access_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = FakeUpstream()
    deps: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with (
        caplog.at_level("INFO", logger="minitoolai.access"),
        running_gateway(tmp_path, database_url("sqlite", tmp_path), {"up": upstream}, deps) as gw,
    ):
        forged = "/v1/x%0A2026-12-01%2000:00:00%20INFO%20minitoolai.access:%20POST%20/admin%00"
        host, port = gw.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(f"GET {forged} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            while sock.recv(65536):
                pass
        time.sleep(0.2)
    lines = [r.getMessage() for r in caplog.records if r.name == "minitoolai.access"]
    forged_line = next(line for line in lines if "/v1/x" in line)
    assert "\n" not in forged_line and "\x00" not in forged_line
    assert "\\n2026-12-01" in forged_line and forged_line.endswith("ms")
