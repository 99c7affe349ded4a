from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from minitoolai.accounts.auth import Authenticator
from minitoolai.accounts.keys import KEY_PREFIX, hash_key
from minitoolai.accounts.service import AccountService
from minitoolai.clock import utcnow
from minitoolai.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from minitoolai.infra.db import Database
from minitoolai.infra.tables import api_keys
from minitoolai.ledger.service import Ledger
from tests.conftest import unique


async def test_keys_are_random_shown_once_and_stored_only_as_hash(db: Database) -> None:
    accounts = AccountService(db, Ledger(db))
    account, key = await accounts.create(unique())
    second, _ = await accounts.create_key(account.name, name="ci")
    assert key.startswith(KEY_PREFIX) and len(key) > 40 and key != second
    async with db.read() as conn:
        rows = (
            await conn.execute(select(api_keys).where(api_keys.c.account_id == account.id))
        ).all()
    stored = {value for row in rows for value in row._mapping.values() if isinstance(value, str)}
    assert key not in stored and hash_key(key) in stored and key[:12] in stored


async def test_authenticate_revoke_expire_and_model_limits(db: Database) -> None:
    accounts = AccountService(db, Ledger(db))
    auth = Authenticator(db, ttl=60)
    account, key = await accounts.create(unique())
    who = await auth.authenticate(f"Bearer {key}")
    assert who.account_id == account.id and who.allowed_models is None

    for bad in (None, "", "Bearer", f"Basic {key}", "Bearer mtai-x", f"Bearer {key}x"):
        with pytest.raises(AuthenticationFailed) as err:
            await auth.authenticate(bad)
        assert err.value.status_code == 401

    limited, _ = await accounts.create_key(account.name, allowed_models=["gpt-4o-mini"])
    principal = await auth.authenticate(f"Bearer {limited}")
    principal.check_model("gpt-4o-mini")
    with pytest.raises(PermissionDenied):
        principal.check_model("gpt-4o")

    expired, _ = await accounts.create_key(account.name, expires_at=utcnow() - timedelta(seconds=1))
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(f"Bearer {expired}")

    # revoking through this process takes effect at once, despite the cache
    auth.forget(await accounts.revoke_key(key[:12]))
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(f"Bearer {key}")
    with pytest.raises(NotFound):
        await accounts.revoke_key(key[:12])


async def test_revoke_needs_an_unambiguous_prefix(db: Database) -> None:
    accounts = AccountService(db, Ledger(db))
    account, _ = await accounts.create(unique())
    await accounts.create_key(account.name)
    with pytest.raises(NotFound):
        await accounts.revoke_key(KEY_PREFIX + "%%%")  # LIKE wildcards are escaped: no match
    with pytest.raises(InvalidRequest):
        await accounts.revoke_key(KEY_PREFIX)  # too short to name one key
    with pytest.raises(Conflict):
        await accounts.create(account.name)


async def test_auth_cache_avoids_the_database(db: Database) -> None:
    accounts = AccountService(db, Ledger(db))
    auth = Authenticator(db, ttl=60)
    _, key = await accounts.create(unique())
    await auth.authenticate(f"Bearer {key}")
    await db.dispose()  # with no database at all, the cached key still authenticates
    calls = [auth.authenticate(f"Bearer {key}") for _ in range(100)]
    assert len({p.key_id for p in await asyncio.gather(*calls)}) == 1
