"""A whole running gateway for end-to-end tests: fake upstreams, config, server, an account."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import requests

from minitoolai.app import create_app
from minitoolai.settings import Settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.servers import serve_in_thread

ADMIN_KEY = "mtai-admin-test-key"


def idle_held(read: Callable[[], int], wait_s: float = 5.0) -> int:
    """``read()`` once it is 0 (a lease given back), or its last value after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    held = read()
    while held and time.monotonic() < deadline:
        time.sleep(0.05)
        held = read()
    return held


@dataclass
class Gateway:
    url: str
    api_key: str
    account: str
    upstreams: dict[str, FakeUpstream]

    def admin(self, method: str, path: str, **kw: object) -> requests.Response:
        return requests.request(
            method,
            self.url + path,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10,
            **kw,  # type: ignore[arg-type]
        )

    def balance_nano(self) -> int:
        data = self.admin("GET", f"/admin/accounts/{self.account}").json()
        return int(Decimal(data["balance"]) * 1_000_000_000)

    def held_nano(self) -> int:
        data = self.admin("GET", f"/admin/accounts/{self.account}").json()
        return int(Decimal(data["held"]) * 1_000_000_000)

    def idle_held_nano(self, wait_s: float = 5.0) -> int:
        """What the account holds once its requests ended: on PostgreSQL the gateway's lease
        (docs/billing.md) holds part of the balance until it has held nothing for a second,
        so this waits for it to go back (0), up to ``wait_s``."""
        return idle_held(self.held_nano, wait_s)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"}


@contextmanager
def running_gateway(
    tmp_path: Path,
    database_url: str,
    upstreams: dict[str, FakeUpstream],
    deployments: list[dict[str, object]],
    credit: str = "5",
    extra_toml: str = "",
    **settings_overrides: object,
) -> Iterator[Gateway]:
    with ExitStack() as stack:
        lines = []
        for name, fake in upstreams.items():
            url = stack.enter_context(serve_in_thread(fake.app()))
            lines += [
                f"[providers.{name}]",
                f'base_url = "{url}/v1"',
                'api_key = "sk-upstream-secret"',
                "timeout_s = 10",
                "",
            ]
        for dep in deployments:
            lines.append("[[deployments]]")
            for key, value in dep.items():
                lines.append(f"{key} = {value!r}".replace("'", '"'))
            lines.append("")
        config = tmp_path / "config.toml"
        config.write_text("\n".join(lines) + extra_toml)
        settings = Settings(
            data_dir=settings_overrides.pop("data_dir", tmp_path / "data"),  # type: ignore[arg-type]
            database_url=database_url,
            config=config,
            admin_key=ADMIN_KEY,  # type: ignore[arg-type]
            openai_api_key=None,
            **{
                "key_cache_ttl_s": 0.0,
                "image_workers": 0,
                "image_engine": "test-pattern",
                "local_default": False,
                "local_speech": False,
                # the tests sign many people up from 127.0.0.1 (the limit has its own test)
                "signups_per_hour": 10_000,
                **settings_overrides,
            },  # type: ignore[arg-type]
        )
        url = stack.enter_context(serve_in_thread(create_app(settings)))
        name = "acct-" + uuid.uuid4().hex[:12]
        created = requests.post(
            url + "/admin/accounts",
            json={"name": name, "credit": credit},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        yield Gateway(url, created.json()["api_key"], name, upstreams)
