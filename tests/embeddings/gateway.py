"""A running gateway for the embeddings tests: optional upstreams and deployments, an account.

Like ``tests.support.gateway.running_gateway``, with the embedding settings these tests need.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

from minitoolai.app import create_app
from minitoolai.settings import Settings
from tests.embeddings.upstream import EmbeddingsUpstream
from tests.support.gateway import ADMIN_KEY, Gateway
from tests.support.servers import serve_in_thread


def new_account(url: str, credit: str) -> tuple[str, str]:
    """A fresh account with ``credit`` US$: its name and API key."""
    name = "acct-" + uuid.uuid4().hex[:12]
    created = requests.post(
        url + "/admin/accounts",
        json={"name": name, "credit": credit},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    return name, str(created.json()["api_key"])


@contextmanager
def embeddings_gateway(
    tmp_path: Path,
    database_url: str,
    upstream: EmbeddingsUpstream | None = None,
    models: tuple[str, ...] = (),
    credit: str = "5",
    local_default: bool = False,
    as_openai: bool = False,
) -> Iterator[Gateway]:
    """``models`` are deployed to ``upstream``; with ``local_default`` the rest go to MiniLM;
    with ``as_openai`` the upstream is ``OPENAI_BASE_URL`` (and ``OPENAI_API_KEY`` is set)."""
    with ExitStack() as stack:
        lines = []
        url = None
        if upstream is not None:
            url = stack.enter_context(serve_in_thread(upstream.app()))
            lines += ["[providers.up]", f'base_url = "{url}/v1"', 'api_key = "sk-up-secret"', ""]
        for model in models:
            lines += ["[[deployments]]", f'model = "{model}"', 'provider = "up"', ""]
        config = tmp_path / "config.toml"
        config.write_text("\n".join(lines))
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            config=config,
            admin_key=ADMIN_KEY,  # type: ignore[arg-type]
            openai_api_key="sk-openai-secret" if as_openai else None,  # type: ignore[arg-type]
            openai_base_url=f"{url}/v1" if as_openai else "https://api.openai.com/v1",
            key_cache_ttl_s=0.0,
            image_workers=0,
            image_engine="test-pattern",
            local_default=local_default,
            local_speech=False,
        )
        app = create_app(settings)
        base = stack.enter_context(serve_in_thread(app))
        name, key = new_account(base, credit)
        yield Gateway(base, key, name, {})
