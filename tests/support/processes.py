"""`minitoolai serve` and `minitoolai worker` as real OS processes, for crash tests.

The processes write their output to a log file (never an unread pipe, which fills up and
blocks the server); ``log_tail()`` shows the end of it in assertion messages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import requests

from tests.support.servers import free_port

CLI = [sys.executable, "-m", "minitoolai"]
ADMIN_KEY = "mtai-admin-crash-test-key"


def minitoolai_env(data_dir: Path, database_url: str, **settings: object) -> dict[str, str]:
    """This environment minus any MINITOOLAI_*/OPENAI_* of the caller, plus ``settings``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MINITOOLAI_") and k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")
    }
    env.update(
        HF_HUB_OFFLINE="1",
        MINITOOLAI_DATA_DIR=str(data_dir),
        MINITOOLAI_DATABASE_URL=database_url,
        MINITOOLAI_ADMIN_KEY=ADMIN_KEY,
        MINITOOLAI_IMAGE_WORKERS="0",
        MINITOOLAI_IMAGE_ENGINE="test-pattern",
        MINITOOLAI_LOCAL_DEFAULT="false",
        MINITOOLAI_LOCAL_SPEECH="false",
    )
    for name, value in settings.items():
        env[f"MINITOOLAI_{name.upper()}"] = str(value)
    return env


class Process:
    """One ``minitoolai <args>`` process; ``kill9`` is the crash, ``stop`` the polite end."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log = self.log_path.open("ab")
        self._log.write(f"\n=== start {' '.join(self.args)} ===\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            [*CLI, *self.args], env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "not running"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._close_log()

    def stop(self, timeout: float = 20) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def port_was_taken(self) -> bool:
        """Whether its latest run ended because its port was in use."""
        latest = self.log_tail(20_000).rsplit("\n=== start ", 1)[-1]
        return "address already in use" in latest.lower()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


class Server(Process):
    """``minitoolai serve`` on a fresh free port each start."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__([], env, log_path)
        self.port = 0
        self.workers = 1  # ``serve --workers``

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        """Start on a free port; healthy once *this* process listens there and answers. A
        free port can be taken by another test's server before ours binds it (its health
        check would pass, and its admin key differ): ours then exits, and starts again on
        another port."""
        deadline = time.monotonic() + timeout
        while True:
            self.port = free_port()
            self.args = ["serve", "--port", str(self.port), "--workers", str(self.workers)]
            super().start()
            if self._healthy(deadline):
                return

    def _healthy(self, deadline: float) -> bool:
        """True once healthy; False if it exited because its port was taken."""
        assert self.proc is not None
        while True:
            try:
                if (
                    listens(self.proc.pid, self.port)
                    and requests.get(self.url + "/healthz", timeout=1).status_code == 200
                ):
                    return True
            except requests.RequestException:
                pass
            if not self.alive():
                if self.port_was_taken():
                    self._close_log()
                    return False
                raise AssertionError(f"serve exited during start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"serve did not become healthy:\n{self.log_tail()}")
            time.sleep(0.1)

    def admin(self, method: str, path: str, **kw: Any) -> requests.Response:
        return requests.request(
            method,
            self.url + path,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10,
            **kw,
        )

    def create_account(self, name: str, credit: str) -> str:
        """Returns the new account's API key."""
        created = self.admin("POST", "/admin/accounts", json={"name": name, "credit": credit})
        assert created.status_code == 201, created.text
        key: str = created.json()["api_key"]
        return key

    def balances(self, name: str) -> tuple[int, int]:
        """(balance, held) in nano-dollars, as the server reports them."""
        data = self.admin("GET", f"/admin/accounts/{name}").json()
        return _nano(data["balance"]), _nano(data["held"])


def _nano(usd: str) -> int:
    return int(Decimal(usd) * 1_000_000_000)


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port`` (Linux's ``/proc``)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) in inodes:
                return True
        except OSError:
            continue
    return False
