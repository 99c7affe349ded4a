"""The crash tests' ``Server`` starts on a free port; a port another process takes first must
not pass for ours (its health check answers, its admin key differs: a flake seen in CI)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.processes import Server, minitoolai_env
from tests.support.servers import free_port


def test_a_port_taken_before_serve_binds_it_is_not_mistaken_for_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    monkeypatch.setattr(processes, "free_port", lambda: next(ports, None) or free_port())
    db = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    server = Server(minitoolai_env(tmp_path / "data", db), tmp_path / "serve.log")
    try:
        server.start()
        assert server.port != taken
        assert server.admin("GET", "/admin/accounts").status_code == 200
        assert "address already in use" in server.log_tail().lower()  # the first try's end
    finally:
        server.stop()
        squatter.close()
