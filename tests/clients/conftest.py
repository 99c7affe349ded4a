"""Gateways for the client-library tests: one in front of a fake upstream that calls tools
(on each database), and one offline on the embedded default (SmolLM2 and MiniLM), shared by
the session because loading the models is the slow part."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.tools import CALLS
from tests.conftest import BACKENDS, POSTGRES_URL
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

DEPLOYMENTS: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]


def database_url(backend: str, tmp_path: Path) -> str:
    if backend == "postgres":
        return POSTGRES_URL
    return f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream(tool_calls=CALLS)


@pytest.fixture
def gateway(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Gateway]:
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {"up": upstream}, DEPLOYMENTS
    ) as gw:
        yield gw


@pytest.fixture(params=BACKENDS)
def gateway_each_db(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakeUpstream
) -> Iterator[Gateway]:
    with running_gateway(
        tmp_path, database_url(request.param, tmp_path), {"up": upstream}, DEPLOYMENTS
    ) as gw:
        yield gw


@pytest.fixture(scope="session")
def offline_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """No upstream: gpt-4o-mini answers from SmolLM2 (llama.cpp), embeddings from MiniLM."""
    tmp = tmp_path_factory.mktemp("offline-clients")
    with running_gateway(
        tmp, f"sqlite+aiosqlite:///{tmp / 'gw.db'}", {}, [], local_default=True
    ) as gw:
        yield gw
