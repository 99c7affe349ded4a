from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, POSTGRES_URL
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway


def database_url(backend: str, tmp_path: Path) -> str:
    if backend == "postgres":
        return POSTGRES_URL
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture
def gateway(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Gateway]:
    """gpt-4o-mini and gpt-4o served by one fake upstream, on SQLite."""
    deployments: list[dict[str, object]] = [
        {"model": "gpt-4o-mini", "provider": "up"},
        {"model": "gpt-4o", "provider": "up"},
    ]
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {"up": upstream}, deployments
    ) as gw:
        yield gw


@pytest.fixture(params=BACKENDS)
def gateway_each_db(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakeUpstream
) -> Iterator[Gateway]:
    deployments: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(
        tmp_path, database_url(request.param, tmp_path), {"up": upstream}, deployments
    ) as gw:
        yield gw
