"""Starting this project's own processes for the scenarios beyond chat: ``serve``, ``worker``.

The chat contenders (``bench.contenders``) start ``minitoolai serve`` in front of the fake
upstream; the image, local-engine and speech scenarios start it with other settings (the
diagnostic image engine, zero configuration). What they share is here: a fresh data dir, an
account made with the CLI, the process pinned to the gateway core and waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench import pg
from bench.contenders import ADMIN_KEY, Context, base_env
from bench.procs import REPO, Proc, free_port, pinned, start, wait_http


@dataclass
class Home:
    """A fresh folder and the environment of every ``minitoolai`` process of one setup."""

    path: Path
    env: dict[str, str]


def fresh_home(ctx: Context, name: str, settings: dict[str, str], database: str) -> Home:
    """A wiped folder under the run's work dir; on PostgreSQL, the bench database wiped too.

    ``settings`` are extra ``MINITOOLAI_*`` variables; nothing from the caller's environment
    that could steer the gateway (``OPENAI_*``, ``MINITOOLAI_*``) is passed on.
    """
    path = ctx.work / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    env = base_env() | {
        "MINITOOLAI_DATA_DIR": str(path / "data"),
        "MINITOOLAI_ADMIN_KEY": ADMIN_KEY,
        **settings,
    }
    if database == "postgres":
        pg.reset(ctx.postgres_url)
        env["MINITOOLAI_DATABASE_URL"] = ctx.postgres_url
    return Home(path, env)


def database_url(home: Home) -> str:
    """The URL the gateway of ``home`` uses (its SQLite file when none is set)."""
    url = home.env.get("MINITOOLAI_DATABASE_URL")
    if url:
        return url
    return f"sqlite+aiosqlite:///{(Path(home.env['MINITOOLAI_DATA_DIR']) / 'minitoolai.db')}"


def create_account(ctx: Context, home: Home, name: str, credit_usd: str) -> str:
    """``minitoolai accounts create NAME --credit X --json``; returns the API key it printed."""
    cmd = [ctx.python, "-m", "minitoolai", "accounts", "create", name, "--credit", credit_usd]
    done = subprocess.run(
        [*cmd, "--json"], env=home.env, capture_output=True, timeout=180, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"minitoolai accounts create failed:\n{done.stderr.decode()[-2000:]}")
    return str(orjson.loads(done.stdout)["api_key"])


def start_serve(ctx: Context, home: Home, name: str, timeout: float = 120.0) -> tuple[Proc, str]:
    """``minitoolai serve`` on a free loopback port, pinned to the gateway core; its base URL."""
    port = free_port()
    cmd = [ctx.python, "-m", "minitoolai", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = start(name, pinned(cmd, ctx.cores.gateway), ctx.logs, env=home.env)
    base = f"http://127.0.0.1:{port}"
    wait_http(proc, f"{base}/healthz", timeout=timeout)
    return proc, base


def start_worker(ctx: Context, home: Home, name: str, timeout: float = 120.0) -> Proc:
    """``minitoolai worker`` (one job at a time), pinned to the gateway core, once it waits."""
    cmd = [ctx.python, "-m", "minitoolai", "worker", "--concurrency", "1"]
    proc = start(name, pinned(cmd, ctx.cores.gateway), ctx.logs, env=home.env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{name} exited during start-up:\n{proc.tail()}")
        if "waiting for jobs" in proc.tail(4000):
            return proc
        time.sleep(0.2)
    proc.stop()
    raise RuntimeError(f"{name} did not report 'waiting for jobs' within {timeout:.0f}s")


class LineProc:
    """A helper process spoken to one line at a time (a command in, one JSON line out).

    Used for the bare engines, so that a bare run and a run through the gateway can alternate
    (a machine whose load drifts then drifts for both) while each side loads its model once.
    Every read has a timeout; the process is stopped by its own id.
    """

    def __init__(self, name: str, cmd: list[str], log_dir: Path, env: dict[str, str]) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log = log_dir / f"{name}.log"
        with open(self.log, "ab") as err:
            self.popen = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                cwd=REPO,
                env=env,
                start_new_session=True,
            )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def read(self, timeout: float) -> dict[str, Any]:
        """The next JSON line it prints (other lines are skipped), within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(0.01, left))
            except queue.Empty:
                line = ""
            if line is None or (line == "" and time.monotonic() >= deadline):
                tail = self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""
                why = "exited" if line is None else f"gave no answer within {timeout:.0f}s"
                raise RuntimeError(f"{self.name} {why}:\n{tail}")
            if line.startswith("{"):
                result: dict[str, Any] = orjson.loads(line)
                return result

    def ask(self, command: str, timeout: float) -> dict[str, Any]:
        assert self.popen.stdin is not None
        self.popen.stdin.write(command + "\n")
        self.popen.stdin.flush()
        return self.read(timeout)

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(OSError):
                assert self.popen.stdin is not None
                self.popen.stdin.close()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


async def answer_lines(
    ready: dict[str, Any], handle: Callable[[str], Awaitable[dict[str, Any]]]
) -> None:
    """The helper's side of ``LineProc``: print ``ready``, then answer each stdin line with
    one JSON line, until stdin closes.
    """
    out = sys.stdout
    out.write(orjson.dumps(ready).decode() + "\n")
    out.flush()
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        if line.strip():
            out.write(orjson.dumps(await handle(line.strip())).decode() + "\n")
            out.flush()
