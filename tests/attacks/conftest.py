"""A gateway in its own process (so the test's threads cannot stall its event loop), behind a
fake upstream served by the test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import requests

from tests.chat.conftest import gateway, upstream  # noqa: F401  (the chat tests' fixtures)
from tests.support.fake_upstream import FakeUpstream
from tests.support.servers import free_port, serve_in_thread

ADMIN = "mtai-admin-attacks"


@dataclass
class Served:
    url: str
    log: Path

    def admin(self, method: str, path: str, **kw: object) -> requests.Response:
        return requests.request(
            method,
            self.url + path,
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=30,
            **kw,  # type: ignore[arg-type]
        )

    def account(self, credit: str) -> tuple[str, str]:
        name = "acct-" + uuid.uuid4().hex[:10]
        made = self.admin("POST", "/admin/accounts", json={"name": name, "credit": credit})
        assert made.status_code == 201, made.text
        return name, made.json()["api_key"]

    def balance(self, name: str) -> tuple[int, int]:
        data = self.admin("GET", f"/admin/accounts/{name}").json()
        nano = 1_000_000_000
        return int(Decimal(data["balance"]) * nano), int(Decimal(data["held"]) * nano)


@contextmanager
def gateway_process(tmp_path: Path, fake: FakeUpstream, **env: str) -> Iterator[Served]:
    with serve_in_thread(fake.app()) as upstream_url:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[providers.up]\nbase_url = "{upstream_url}/v1"\napi_key = "sk-upstream-secret"\n'
            '[[deployments]]\nmodel = "gpt-4o-mini"\nprovider = "up"\n'
        )
        port = free_port()
        log = tmp_path / "server.log"
        environ = {
            **os.environ,
            "MINITOOLAI_DATA_DIR": str(tmp_path / "data"),
            "MINITOOLAI_CONFIG": str(config),
            "MINITOOLAI_ADMIN_KEY": ADMIN,
            "MINITOOLAI_IMAGE_WORKERS": "0",
            "MINITOOLAI_IMAGE_ENGINE": "test-pattern",
            "MINITOOLAI_LOCAL_DEFAULT": "false",
            "MINITOOLAI_LOCAL_SPEECH": "false",
            "MINITOOLAI_IMAGE_FETCH_ALLOW": '["127.0.0.0/8"]',
            **env,
        }
        for name in ("MINITOOLAI_DATABASE_URL", "OPENAI_API_KEY"):
            environ.pop(name, None)
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "minitoolai", "serve", "--port", str(port)],
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
            yield Served(url, log)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
