"""Fixtures of the embeddings tests: a database of each kind for gateways that live a module."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import BACKENDS, POSTGRES_URL, _on_server


@pytest.fixture(scope="module", params=BACKENDS)
def module_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A URL of a database of its own, for one module: SQLite, then a fresh PostgreSQL one."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("emb") / "gw.db"
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = "t_" + uuid.uuid4().hex[:12]
    asyncio.run(_on_server(f"CREATE DATABASE {name}"))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_on_server(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
