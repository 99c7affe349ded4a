"""Authenticating a bearer key, without a database query on the hot path.

Keys are looked up by hash and cached for ``ttl`` seconds (successes only: caching misses
would let anyone fill memory). A revocation, a change to a key's or an account's rules, a
suspension reach every process's cache at once through ``accounts.invalidation`` (the
``ChangeBus`` this cache subscribes to); ``ttl`` is the bound when that channel is down. Money
is never decided from the cache: the balance check is the hold's conditional UPDATE.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import select

from minitoolai.accounts.invalidation import Change, ChangeBus
from minitoolai.accounts.keys import KEY_PREFIX, hash_key, hashes_match
from minitoolai.clock import as_utc, utcnow
from minitoolai.errors import AuthenticationFailed, PermissionDenied
from minitoolai.infra.db import Database
from minitoolai.infra.tables import accounts, api_keys
from minitoolai.ledger.budgets import Budgets, Caps
from minitoolai.limits.rates import NO_OVERRIDES, Overrides, Rates

#: the one answer to every authentication failure (missing header, wrong scheme, malformed,
#: unknown, revoked or expired key): same message, type and code, so nobody learns which keys
#: exist or what state a stolen one is in (docs/security.md)
_INVALID = (
    "Invalid or missing API key. Send 'Authorization: Bearer <key>'; "
    "you can get a key from your operator."
)
_CODE = "invalid_api_key"
_SUSPENDED = "This account is suspended; ask your operator."


#: the rate-limit overrides loaded with the key (migration 0011): the key's, then the account's
_LIMIT_COLUMNS = [
    table.c[f"limit_{name}"].label(f"{who}_limit_{name}")
    for who, table in (("key", api_keys), ("account", accounts))
    for name in ("rpm", "tpm", "ipm", "max_concurrent")
]


def _overrides(row: object) -> Overrides:
    def rates(who: str) -> Rates:
        values = [getattr(row, f"{who}_limit_{n}") for n in ("rpm", "tpm", "ipm", "max_concurrent")]
        return Rates(*(int(v) if v else None for v in values))

    found = Overrides(rates("key"), rates("account"))
    return NO_OVERRIDES if found == NO_OVERRIDES else found  # the limiter's fast path


#: the spend budgets loaded with the key (migration 0012): the key's, then the account's
_BUDGET_COLUMNS = [
    table.c[f"{period}_budget"].label(f"{who}_{period}_budget")
    for who, table in (("key", api_keys), ("account", accounts))
    for period in ("daily", "monthly", "total")
]


def _budgets(row: object) -> Budgets | None:
    def caps(who: str) -> Caps:
        values = [getattr(row, f"{who}_{p}_budget") for p in ("daily", "monthly", "total")]
        return Caps(*(None if v is None else int(v) for v in values))

    return Budgets.of(caps("key"), caps("account"))


def _denied() -> AuthenticationFailed:
    return AuthenticationFailed(_INVALID, code=_CODE)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key and the account it spends from."""

    key_id: int | None  # None: a signed-in person's playground run (web/playground_api.py)
    account_id: int
    account_name: str
    key_prefix: str
    allowed_models: frozenset[str] | None
    expires_at: float | None  # unix time
    suspended: bool = False  # the operator suspended the account (``accounts.admin``)
    limits: Overrides = NO_OVERRIDES  # the key's and the account's own rates (``limits``)
    #: the key's and the account's spend budgets (``ledger.budgets``); None: neither has any,
    #: and holds take the plain one-statement path
    budgets: Budgets | None = None

    def check_model(self, model: str) -> None:
        if self.allowed_models is not None and model not in self.allowed_models:
            raise PermissionDenied(
                f"This API key may not use the model '{model}'.",
                param="model",
                code="model_not_allowed",
            )


class Authenticator:
    def __init__(
        self,
        db: Database,
        ttl: float = 5.0,
        max_entries: int = 100_000,
        *,
        changes: ChangeBus | None = None,
    ) -> None:
        self.db = db
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, Principal]] = {}
        # Bumped by every forget: a lookup that began before a change does not cache what it
        # read, which may be from before the change.
        self._generation = 0
        # digest -> (the generation it began in, its load): concurrent misses of one key share
        # one query (an expiring hot key would otherwise cost one SELECT per request in flight)
        self._loading: dict[str, tuple[int, asyncio.Task[Principal]]] = {}
        if changes is not None:
            changes.subscribe(self.on_change)

    async def authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise _denied()
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX) or len(token) > 200:
            raise _denied()
        digest = hash_key(token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            principal = cached[1]
        else:
            principal = await self._shared_load(digest, token, now)
        if principal.expires_at is not None and principal.expires_at <= time.time():
            raise _denied()
        if principal.suspended:  # a valid key: saying so tells a thief nothing new
            raise PermissionDenied(_SUSPENDED, code="account_suspended")
        return principal

    async def _shared_load(self, digest: str, token: str, now: float) -> Principal:
        """The key's row, read once for every request that misses it at the same time. A load
        that began before a change is joined by no later request (it may have read the row
        before the change) and caches nothing. It runs as its own task, so a caller that is
        cancelled (its client left) does not cancel it for the others."""
        generation = self._generation
        loading = self._loading.get(digest)
        if loading is None or loading[0] != generation:
            task = asyncio.ensure_future(self._load(digest, token))
            loading = (generation, task)
            self._loading[digest] = loading
            task.add_done_callback(lambda _: self._landed(digest, loading, now))
        return await asyncio.shield(loading[1])

    def _landed(
        self, digest: str, loading: tuple[int, asyncio.Task[Principal]], now: float
    ) -> None:
        if self._loading.get(digest) is loading:
            del self._loading[digest]
        generation, task = loading
        if task.cancelled() or task.exception() is not None or generation != self._generation:
            return
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        self._cache[digest] = (now + self.ttl, task.result())

    def forget(self, key_hash: str) -> None:
        self._generation += 1
        self._cache.pop(key_hash, None)

    def forget_account(self, account_id: int) -> None:
        """Drop the account's cached keys (it was suspended, restored or its rules changed)."""
        self._generation += 1
        for digest, (_, principal) in list(self._cache.items()):
            if principal.account_id == account_id:
                self._cache.pop(digest, None)

    def forget_key_id(self, key_id: int) -> None:
        self._generation += 1
        for digest, (_, principal) in list(self._cache.items()):
            if principal.key_id == key_id:
                self._cache.pop(digest, None)

    def forget_all(self) -> None:
        self._generation += 1
        self._cache.clear()

    def on_change(self, change: Change) -> None:
        """What ``ChangeBus`` calls, for a change made by this process or any other."""
        if change.key_hash is not None:
            self.forget(change.key_hash)
        elif change.key_id is not None:
            self.forget_key_id(change.key_id)
        elif change.account_id is not None:
            self.forget_account(change.account_id)
        else:
            self.forget_all()

    async def _load(self, digest: str, token: str) -> Principal:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        api_keys.c.id,
                        api_keys.c.key_hash,
                        api_keys.c.prefix,
                        api_keys.c.allowed_models,
                        api_keys.c.expires_at,
                        api_keys.c.revoked_at,
                        accounts.c.id.label("account_id"),
                        accounts.c.name,
                        accounts.c.suspended,
                        *_LIMIT_COLUMNS,
                        *_BUDGET_COLUMNS,
                    )
                    .join(accounts, accounts.c.id == api_keys.c.account_id)
                    .where(api_keys.c.key_hash == digest)
                )
            ).first()
        if row is None or row.revoked_at is not None or not hashes_match(row.key_hash, token):
            raise _denied()
        expires = as_utc(row.expires_at).timestamp() if row.expires_at else None
        if expires is not None and expires <= utcnow().timestamp():
            raise _denied()
        models = frozenset(row.allowed_models) if row.allowed_models else None
        return Principal(
            row.id,
            row.account_id,
            row.name,
            row.prefix,
            models,
            expires,
            bool(row.suspended),
            limits=_overrides(row),
            budgets=_budgets(row),
        )
