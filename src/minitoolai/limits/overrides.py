"""The operator's limits of one key or one account, kept on its row (``limit_rpm``...).

A change names only the rates it changes; ``None`` or 0 clears one (the configured default
applies again). The key cache holds a key's rates with the key, so a change reaches this
process at once (the caller forgets the cached key) and every other within a second
(``accounts.invalidation``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import select, update

from minitoolai.accounts.invalidation import account_changed, key_changed
from minitoolai.accounts.keys import VISIBLE, hash_key
from minitoolai.errors import Conflict, InvalidRequest, NotFound
from minitoolai.infra.db import Database
from minitoolai.infra.tables import accounts, api_keys
from minitoolai.limits.rates import RATE_NAMES, Rates

#: the largest rate that can be stored (the columns are 32-bit)
MAX_RATE: Final = 2**31 - 1
CLEAR_WORDS: Final = ("none", "0", "")


def parse_rate(text: str, name: str) -> int | None:
    """A rate as the CLI takes it: a whole number; ``0`` or ``none`` clears it."""
    if text.strip().lower() in CLEAR_WORDS:
        return None
    try:
        value = int(text)
    except ValueError:
        raise InvalidRequest(f"--{name.replace('_', '-')} is a whole number, or none") from None
    return check_rate(value, name)


def check_rate(value: int | None, name: str) -> int | None:
    if value is None or value == 0:
        return None
    if not 0 < value <= MAX_RATE:
        raise InvalidRequest(f"{name} must be from 0 (none) to {MAX_RATE}", param=name)
    return value


def changes_of(given: Mapping[str, int | None]) -> dict[str, int | None]:
    """The column values of a change (unknown names are the caller's bug)."""
    return {f"limit_{name}": check_rate(value, name) for name, value in given.items()}


@dataclass(frozen=True, slots=True)
class LimitsOf:
    """What a scope's own limits are after a change."""

    account: str
    key_prefix: str | None  # None: the account's own limits
    rates: Rates
    key_hash: str | None = None  # for the caller's key cache

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "rate_limits",
            "account": self.account,
            "key": self.key_prefix,
            **self.rates.to_dict(),
        }


def _rate_columns(table: Any) -> list[Any]:
    return [table.c[f"limit_{name}"] for name in RATE_NAMES]


class LimitOverrides:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def set_key(self, prefix: str, given: Mapping[str, int | None]) -> LimitsOf:
        """Change the limits of the one live key starting with ``prefix``."""
        values = changes_of(given)
        if len(prefix) < 8 or len(prefix) > 200 or not prefix.isprintable():
            raise InvalidRequest("give at least 8 characters of the key", param="prefix")
        if len(prefix) > VISIBLE:
            condition = api_keys.c.key_hash == hash_key(prefix)
        else:
            condition = api_keys.c.prefix.startswith(prefix, autoescape=True)
        async with self.db.write() as conn:
            matches = (
                await conn.execute(
                    select(api_keys.c.id).where(condition, api_keys.c.revoked_at.is_(None))
                )
            ).all()
            if not matches:
                raise NotFound(f"no live key starts with {prefix[:VISIBLE]!r}")
            if len(matches) > 1:
                raise Conflict(f"{len(matches)} keys start with {prefix!r}; give more characters")
            key_id = matches[0].id
            if values:
                await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(values))
            row = (
                await conn.execute(
                    select(
                        api_keys.c.prefix,
                        api_keys.c.key_hash,
                        accounts.c.name,
                        *_rate_columns(api_keys),
                    )
                    .join(accounts, accounts.c.id == api_keys.c.account_id)
                    .where(api_keys.c.id == key_id)
                )
            ).one()
        await key_changed(self.db, key_hash=str(row.key_hash))  # every replica's key cache
        return LimitsOf(row.name, row.prefix, Rates.of(row), str(row.key_hash))

    async def set_account(self, name: str, given: Mapping[str, int | None]) -> tuple[int, LimitsOf]:
        """Change an account's own limits (shared by all its keys); its id and the result."""
        values = changes_of(given)
        if not name.isprintable() or len(name) > 200:
            raise NotFound(f"no account named {name!r}")
        async with self.db.write() as conn:
            if values:
                await conn.execute(update(accounts).where(accounts.c.name == name).values(values))
            row = (
                await conn.execute(
                    select(accounts.c.id, accounts.c.name, *_rate_columns(accounts)).where(
                        accounts.c.name == name
                    )
                )
            ).first()
        if row is None:
            raise NotFound(f"no account named {name!r}")
        await account_changed(self.db, int(row.id))  # every replica's key cache
        return int(row.id), LimitsOf(row.name, None, Rates.of(row))
