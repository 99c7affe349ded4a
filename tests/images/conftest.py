from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Gateway, running_gateway


@pytest.fixture
def image_gateway(tmp_path: Path) -> Iterator[Gateway]:
    """SQLite, an in-process worker, the diagnostic engine."""
    with running_gateway(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", {}, [], image_workers=1
    ) as gw:
        yield gw
