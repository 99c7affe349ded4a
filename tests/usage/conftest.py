"""A running gateway whose SQLite file the tests also open, to place charges at chosen times
through the ledger's store."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from minitoolai.accounts.service import AccountService
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger
from tests.conftest import unique
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway
from tests.usage.charges import Placed, place
from tests.web.conftest import signed_up

T = TypeVar("T")


def _in_thread(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on a loop of its own thread (a browser test's thread has Playwright's)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


@dataclass
class Shop:
    gw: Gateway
    database_url: str

    def customer(self) -> tuple[requests.Session, str, int]:
        """A person signed up through the forms: their browser session, email, account id."""
        email = unique("usage") + "@shop.test"
        browser = signed_up(self.gw.url, email)
        return browser, email, self.account_id(email)

    def account_id(self, name: str) -> int:
        return _in_thread(self._account_id(name))

    async def _account_id(self, name: str) -> int:
        db = Database(self.database_url)
        try:
            ledger = Ledger(db)
            account = await AccountService(db, ledger).get(name)
            await ledger.close()
            return account.id
        finally:
            await db.dispose()

    def charges(
        self, account_id: int, specs: list[tuple[datetime, int, str, str, str]]
    ) -> list[Placed]:
        """Place (at, cost, model, kind, status) charges on the account."""

        async def go() -> list[Placed]:
            db = Database(self.database_url)
            ledger = Ledger(db)
            try:
                top_up = sum(cost for _, cost, *_ in specs) + 10**9
                await ledger.top_up(account_id, top_up, "for the usage test")
                return [
                    await place(ledger.store, account_id, at, cost, model=m, kind=k, status=s)
                    for at, cost, m, k, s in specs
                ]
            finally:
                await ledger.close()
                await db.dispose()

        return _in_thread(go())


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    tmp: Path = tmp_path_factory.mktemp("usage")
    url = f"sqlite+aiosqlite:///{tmp / 'usage.db'}"
    with running_gateway(
        tmp, url, {"openai": FakeUpstream()}, [{"model": "gpt-4o-mini", "provider": "openai"}]
    ) as gateway:
        yield Shop(gateway, url)
