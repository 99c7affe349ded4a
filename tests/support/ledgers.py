"""The ledgers a test opened, closed after it (their pools, journals and leases): a module
appends each one it makes to ``OPEN`` and imports ``close_ledgers``, an autouse fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from minitoolai.ledger.service import Ledger

OPEN: list[Ledger] = []


@pytest.fixture(autouse=True)
async def close_ledgers() -> AsyncIterator[None]:
    yield
    while OPEN:
        await OPEN.pop().close()
