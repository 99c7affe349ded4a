"""Requests that miss the key cache at the same time share one lookup, and sharing it changes
nothing else: a change made during a lookup is not hidden, a caller that leaves does not fail
the others, a wrong key still fails every caller and is not cached."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from minitoolai.accounts.auth import Authenticator, Principal
from minitoolai.accounts.service import AccountService
from minitoolai.errors import AuthenticationFailed
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger
from tests.conftest import unique

Load = Callable[[str, str], Coroutine[Any, Any, Principal]]


def slow_and_counted(auth: Authenticator, delay_s: float = 0.05) -> list[str]:
    """Make each database lookup of ``auth`` take ``delay_s`` (so callers overlap) and count it."""
    calls: list[str] = []
    load: Load = auth._load

    async def counted(digest: str, token: str) -> Principal:
        calls.append(digest)
        await asyncio.sleep(delay_s)
        return await load(digest, token)

    auth._load = counted  # type: ignore[method-assign]
    return calls


async def new_key(db: Database) -> tuple[int, str]:
    account, key = await AccountService(db, Ledger(db)).create(unique())
    return account.id, key


async def test_concurrent_misses_share_one_lookup(db: Database) -> None:
    account_id, key = await new_key(db)
    auth = Authenticator(db, ttl=60)
    calls = slow_and_counted(auth)
    found = await asyncio.gather(*(auth.authenticate(f"Bearer {key}") for _ in range(20)))
    assert {p.account_id for p in found} == {account_id}
    assert len(calls) == 1
    await auth.authenticate(f"Bearer {key}")  # cached now
    assert len(calls) == 1


async def test_a_change_during_a_lookup_is_not_hidden_by_it(db: Database) -> None:
    _, key = await new_key(db)
    auth = Authenticator(db, ttl=60)
    calls = slow_and_counted(auth)
    first = asyncio.ensure_future(auth.authenticate(f"Bearer {key}"))
    await asyncio.sleep(0.01)  # its lookup has begun
    auth.forget_all()  # e.g. a revocation heard on the change bus
    second = asyncio.ensure_future(auth.authenticate(f"Bearer {key}"))
    await asyncio.gather(first, second)
    assert len(calls) == 2  # the second did not join a lookup from before the change
    await auth.authenticate(f"Bearer {key}")
    assert len(calls) == 2  # the second's (after the change) was cached, not the first's


async def test_a_caller_that_leaves_does_not_fail_the_others(db: Database) -> None:
    account_id, key = await new_key(db)
    auth = Authenticator(db, ttl=60)
    calls = slow_and_counted(auth)
    leaving = asyncio.ensure_future(auth.authenticate(f"Bearer {key}"))
    await asyncio.sleep(0.01)
    staying = asyncio.ensure_future(auth.authenticate(f"Bearer {key}"))
    await asyncio.sleep(0.01)
    leaving.cancel()
    assert (await staying).account_id == account_id
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert len(calls) == 1


async def test_a_wrong_key_fails_every_caller_and_is_not_cached(db: Database) -> None:
    _, key = await new_key(db)
    wrong = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    auth = Authenticator(db, ttl=60)
    calls = slow_and_counted(auth)
    results = await asyncio.gather(
        *(auth.authenticate(f"Bearer {wrong}") for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, AuthenticationFailed) for r in results), results
    assert len(calls) == 1
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(f"Bearer {wrong}")
    assert len(calls) == 2  # misses are never cached
