"""A gateway in its own process (so the test's threads cannot stall its event loop), behind a
fake upstream served by the test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.chat.conftest import gateway, upstream  # noqa: F401  (the chat tests' fixtures)
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import Server, minitoolai_env
from tests.support.servers import serve_in_thread


class Served(Server):
    def account(self, credit: str) -> tuple[str, str]:
        """A new account: its name and its API key."""
        name = "acct-" + uuid.uuid4().hex[:10]
        return name, self.create_account(name, credit)


@contextmanager
def gateway_process(tmp_path: Path, fake: FakeUpstream) -> Iterator[Served]:
    with serve_in_thread(fake.app()) as upstream_url:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[providers.up]\nbase_url = "{upstream_url}/v1"\napi_key = "sk-upstream-secret"\n'
            '[[deployments]]\nmodel = "gpt-4o-mini"\nprovider = "up"\n'
        )
        env = minitoolai_env(
            tmp_path / "data",
            f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
            config=config,
            image_fetch_allow='["127.0.0.0/8"]',
        )
        server = Served(env, tmp_path / "server.log")
        server.start()
        try:
            yield server
        finally:
            server.stop()
