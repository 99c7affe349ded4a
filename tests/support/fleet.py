"""Many ``minitoolai serve`` and ``minitoolai worker`` processes as one service, for tests.

``fleet()`` starts ``serves`` API processes (each ``python -m minitoolai serve`` on a free
loopback port of its own) and ``workers`` image-worker processes (``minitoolai worker``), all
on one database (the URL the caller passes: ``fresh_postgres``, or a SQLite file for two
processes sharing it), one Redis (or none), one data dir, one config file and one admin key,
as replicas of one deployment run. It returns once every ``/healthz`` answers 200 and every
worker says it waits for jobs, and stops everything (SIGTERM, then SIGKILL) on the way out::

    from tests.support.fake_upstream import FakeUpstream
    from tests.support.fleet import REDIS_URL, fleet

    def test_something(tmp_path, fresh_postgres):
        upstream = FakeUpstream(chunks=5)
        with fleet(
            tmp_path,
            fresh_postgres,
            serves=3,
            workers=2,
            redis_url=REDIS_URL,
            upstreams={"fast": upstream},  # each served in a thread, as [providers.fast]
            deployments={"gpt-4o-mini": "fast"},  # model -> provider, as [[deployments]]
            extra_toml="",  # appended to the config file as is
            hold_timeout_s=4,  # any Settings field, as MINITOOLAI_<NAME>
        ) as f:
            account = f.create_account(credit="10")  # through the admin API
            key = f.create_key(account.name, name="second")  # body fields of POST .../keys
            requests.post(f.urls[1] + "/v1/chat/completions", headers=account.headers(), ...)
            f.kill(0)  # kill -9 serve 0; f.terminate(0) is SIGTERM and waits (returns the code)
            f.kill_worker(1)
            assert f.balances(account.name) == (balance, held)

Settings every process gets (``minitoolai_env`` in ``tests/support/processes.py``): the admin
key ``ADMIN_KEY``, no in-process image workers in ``serve`` (``workers`` does the images), the
``test-pattern`` image engine, no local models, a fixed ``MINITOOLAI_SECRET_KEY`` (job
signatures check on every replica), a ``MINITOOLAI_LIMITS_REDIS_PREFIX`` of this fleet's own
(other tests share the Redis database, and their databases have the same key ids), and what
the caller adds as keyword arguments (``key_cache_ttl_s=0``, ``drain_grace_s=5``...).
``redis_url`` defaults to ``REDIS_URL`` (``MINITOOLAI_TEST_REDIS_URL``, else database 7 on
loopback); ``None`` runs without Redis. ``serve_args`` / ``worker_args`` are added to every
command line (``["--workers", "2"]``, ``["--concurrency", "2"]``); ``restart(i)`` starts a
stopped ``serve`` again on its port.

Each process writes its output to its own file under ``tmp_path / "fleet"``
(``serve-0.log``, ``worker-1.log``); when the ``with`` body raises, the end of every log is
printed (pytest shows it with the failure), and ``f.logs()`` gives the same text for an
assertion message. ``f.tracebacks()`` names the processes whose log holds a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import ADMIN_KEY, Process, listens, minitoolai_env
from tests.support.servers import free_port, serve_in_thread

#: the Redis database the fleet tests use (the suite's own; other numbers belong to others)
REDIS_URL = os.environ.get("MINITOOLAI_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
SECRET_KEY = "fleet-test-secret-key-shared-by-every-replica"


@dataclass
class Account:
    """An account made through the admin API, with the key it was created with."""

    name: str
    api_key: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@dataclass
class Member:
    """One process of the fleet; ``url`` is set for a ``serve`` (its loopback base URL)."""

    name: str
    process: Process
    url: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.alive()

    def log_tail(self, chars: int = 4000) -> str:
        return self.process.log_tail(chars)


@dataclass
class Fleet:
    servers: list[Member]
    workers: list[Member]
    database_url: str
    redis_url: str | None
    data_dir: Path
    config: Path
    env: dict[str, str]  # what every process got (MINITOOLAI_* included)
    admin_key: str = ADMIN_KEY
    upstream_urls: dict[str, str] = field(default_factory=dict)  # provider -> base URL

    @property
    def urls(self) -> list[str]:
        """Every ``serve``'s base URL (``http://127.0.0.1:PORT``), dead ones included."""
        return [s.url for s in self.servers]

    def living(self) -> list[str]:
        return [s.url for s in self.servers if s.alive()]

    # -- the admin API, on the first living replica (or the one named) ------------------------

    def admin(
        self, method: str, path: str, server: int | None = None, **kw: Any
    ) -> requests.Response:
        url = self.urls[server] if server is not None else self.living()[0]
        return requests.request(
            method,
            url + path,
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=10,
            **kw,
        )

    def create_account(self, name: str | None = None, credit: str = "10") -> Account:
        name = name or f"acct-{uuid.uuid4().hex[:10]}"
        created = self.admin("POST", "/admin/accounts", json={"name": name, "credit": credit})
        assert created.status_code == 201, created.text
        return Account(name, created.json()["api_key"])

    def create_key(self, account: str, **fields: Any) -> str:
        """A new key of ``account``; ``fields``: the body of ``POST .../accounts/{name}/keys``."""
        created = self.admin("POST", f"/admin/accounts/{account}/keys", json=fields)
        assert created.status_code == 201, created.text
        key: str = created.json()["api_key"]
        return key

    def balances(self, account: str) -> tuple[int, int]:
        """(balance, held) in nano-dollars, as the admin API reports them."""
        data = self.admin("GET", f"/admin/accounts/{account}").json()
        return _nano(data["balance"]), _nano(data["held"])

    # -- one process at a time ----------------------------------------------------------------

    def kill(self, i: int) -> None:
        """``kill -9`` serve ``i``: no drain, no settle, its holds left for the sweeper."""
        self.servers[i].process.kill9()

    def terminate(self, i: int, timeout: float = 30) -> int | None:
        """SIGTERM serve ``i`` and wait for it (SIGKILL after ``timeout``); its exit code."""
        return _terminate(self.servers[i].process, timeout)

    def restart(self, i: int, timeout: float = 60) -> None:
        """Start serve ``i`` again (after ``kill``/``terminate``), on the same port."""
        member = self.servers[i]
        member.process.start()
        _wait_healthy(member, time.monotonic() + timeout)

    def kill_worker(self, i: int) -> None:
        self.workers[i].process.kill9()

    def terminate_worker(self, i: int, timeout: float = 30) -> int | None:
        return _terminate(self.workers[i].process, timeout)

    # -- what went on -------------------------------------------------------------------------

    def logs(self, chars: int = 3000) -> str:
        """The end of every process's log, one after the other."""
        return "\n".join(
            f"----- {m.name} (pid {m.process.proc.pid if m.process.proc else '-'}) -----\n"
            f"{m.log_tail(chars)}"
            for m in [*self.servers, *self.workers]
        )

    def tracebacks(self) -> list[str]:
        """Names of the processes whose whole log holds a Python traceback."""
        return [m.name for m in [*self.servers, *self.workers] if "Traceback" in m.log_tail(10**7)]


def _nano(usd: str) -> int:
    return int(Decimal(usd) * 1_000_000_000)


def _terminate(process: Process, timeout: float) -> int | None:
    process.stop(timeout)
    return process.proc.returncode if process.proc is not None else None


def _wait_healthy(member: Member, deadline: float) -> None:
    """Until ``member`` listens on its port and answers; started again on another port when
    another process took its port first (see ``processes.Server.start``)."""
    process = member.process
    while True:
        port = int(member.url.rsplit(":", 1)[1])
        try:
            if (
                process.proc is not None
                and listens(process.proc.pid, port)
                and requests.get(member.url + "/healthz", timeout=1).status_code == 200
            ):
                return
        except requests.RequestException:
            pass
        if not member.alive() and process.port_was_taken():
            port = free_port()
            process.args[process.args.index("--port") + 1] = str(port)
            member.url = f"http://127.0.0.1:{port}"
            process.stop()  # its log closed
            process.start()
            continue
        if not member.alive():
            raise AssertionError(f"{member.name} exited during start:\n{member.log_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{member.name} did not become healthy:\n{member.log_tail()}")
        time.sleep(0.1)


def _wait_waiting(member: Member, deadline: float) -> None:
    while "waiting for jobs" not in member.log_tail(20_000):
        if not member.alive():
            raise AssertionError(f"{member.name} exited during start:\n{member.log_tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{member.name} did not start waiting:\n{member.log_tail()}")
        time.sleep(0.1)


def write_config(
    path: Path, upstream_urls: dict[str, str], deployments: dict[str, str], extra_toml: str
) -> None:
    """``[providers.NAME]`` per upstream, ``[[deployments]]`` per model, then ``extra_toml``."""
    lines = []
    for name, url in upstream_urls.items():
        lines += [f"[providers.{name}]", f'base_url = "{url}/v1"', 'api_key = "sk-upstream"']
        lines += ["timeout_s = 30", ""]
    for model, provider in deployments.items():
        lines += ["[[deployments]]", f'model = "{model}"', f'provider = "{provider}"', ""]
    path.write_text("\n".join(lines) + "\n" + extra_toml)


@contextmanager
def fleet(
    tmp_path: Path,
    database_url: str,
    *,
    serves: int = 3,
    workers: int = 0,
    redis_url: str | None = REDIS_URL,
    upstreams: dict[str, FakeUpstream] | None = None,
    deployments: dict[str, str] | None = None,
    extra_toml: str = "",
    serve_args: list[str] | None = None,
    worker_args: list[str] | None = None,
    start_timeout: float = 90,
    **settings: object,
) -> Iterator[Fleet]:
    """Start the fleet, yield it, stop every process; see the module docstring."""
    home = tmp_path / "fleet"
    home.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        upstream_urls = {
            name: stack.enter_context(serve_in_thread(fake.app()))
            for name, fake in (upstreams or {}).items()
        }
        config = home / "config.toml"
        write_config(config, upstream_urls, deployments or {}, extra_toml)
        data_dir = home / "data"
        more: dict[str, object] = {
            "config": config,
            "secret_key": SECRET_KEY,
            # counters of this fleet only: other tests' databases have the same key ids
            "limits_redis_prefix": f"minitoolai:test:{uuid.uuid4().hex[:12]}:",
            **settings,
        }
        if redis_url:
            more["redis_url"] = redis_url
        env = minitoolai_env(data_dir, database_url, **more)
        servers, members = [], []
        for i in range(serves):
            port = free_port()
            args = ["serve", "--port", str(port), *(serve_args or [])]
            member = Member(f"serve-{i}", Process(args, env, home / f"serve-{i}.log"))
            member.url = f"http://127.0.0.1:{port}"
            servers.append(member)
        members = [
            Member(
                f"worker-{i}",
                Process(["worker", *(worker_args or [])], env, home / f"worker-{i}.log"),
            )
            for i in range(workers)
        ]
        the_fleet = Fleet(servers, members, database_url, redis_url, data_dir, config, env)
        stack.callback(_stop_all, the_fleet)
        try:
            for member in [*servers, *members]:  # all at once: migrations meet their lock
                member.process.start()
            deadline = time.monotonic() + start_timeout
            for member in servers:
                _wait_healthy(member, deadline)
            for member in members:
                _wait_waiting(member, deadline)
            yield the_fleet
        except BaseException:
            sys.stderr.write(f"\nfleet logs ({home}):\n{the_fleet.logs()}\n")
            raise


def _stop_all(the_fleet: Fleet) -> None:
    """SIGTERM every process still running, then wait for each (SIGKILL after 20 s)."""
    members = [*the_fleet.servers, *the_fleet.workers]
    for m in members:
        if m.alive():
            assert m.process.proc is not None
            m.process.proc.send_signal(signal.SIGTERM)
    for m in members:
        m.process.stop(20)  # SIGKILL if it is still there after 20 s
