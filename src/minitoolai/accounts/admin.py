"""What the operator's console does to accounts besides money: find them, suspend them.

A suspended account's keys are refused (403 ``account_suspended``) by ``accounts.auth``, in
every process within a second (``accounts.invalidation`` tells their key caches). Its people
cannot use the keys or playground pages. Money stays the ledger's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from minitoolai.accounts.auth import Authenticator
from minitoolai.accounts.invalidation import ChangeBus
from minitoolai.clock import as_utc
from minitoolai.errors import NotFound
from minitoolai.infra.db import Database
from minitoolai.infra.tables import accounts, users

#: accounts a search lists at most
SEARCH_LIMIT = 100


@dataclass(frozen=True, slots=True)
class AccountSummary:
    id: int
    name: str
    email: str | None  # the person who logs in to it, if any
    balance: int
    held: int
    suspended: bool
    created_at: datetime

    @property
    def available(self) -> int:
        return self.balance - self.held


_COLUMNS = (
    accounts.c.id,
    accounts.c.name,
    users.c.email,
    accounts.c.balance,
    accounts.c.held,
    accounts.c.suspended,
    accounts.c.created_at,
)


def _summary(r: Any) -> AccountSummary:  # a row of ``_COLUMNS``
    return AccountSummary(
        int(r.id),
        r.name,
        r.email,
        int(r.balance),
        int(r.held),
        bool(r.suspended),
        as_utc(r.created_at),
    )


class AccountAdmin:
    def __init__(
        self, db: Database, auth: Authenticator, *, changes: ChangeBus | None = None
    ) -> None:
        self.db = db
        self.auth = auth
        #: tells every other process's key cache (``account_changed``)
        self.changes = changes or ChangeBus(db)

    async def search(self, text: str = "") -> list[AccountSummary]:
        """Accounts whose name or login email contains ``text`` (any case), by name."""
        query = select(*_COLUMNS).select_from(
            accounts.outerjoin(users, users.c.account_id == accounts.c.id)
        )
        text = text.strip()[:200]
        if text and text.isprintable():
            query = query.where(
                or_(
                    accounts.c.name.icontains(text, autoescape=True),
                    users.c.email.icontains(text, autoescape=True),
                )
            )
        query = query.order_by(accounts.c.name).limit(SEARCH_LIMIT)
        async with self.db.read() as conn:
            return [_summary(r) for r in (await conn.execute(query)).all()]

    async def get(self, name: str) -> AccountSummary:
        if not name.isprintable() or len(name) > 200:  # cannot exist; and NUL breaks PostgreSQL
            raise NotFound(f"no account named {name!r}")
        query = (
            select(*_COLUMNS)
            .select_from(accounts.outerjoin(users, users.c.account_id == accounts.c.id))
            .where(accounts.c.name == name)
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound(f"no account named {name!r}")
        return _summary(row)

    async def set_suspended(self, name: str, suspended: bool) -> AccountSummary:
        account = await self.get(name)
        async with self.db.write() as conn:
            await conn.execute(
                update(accounts).where(accounts.c.id == account.id).values(suspended=suspended)
            )
        self.auth.forget_account(account.id)
        await self.changes.account_changed(account.id)  # every other process
        return await self.get(name)

    async def is_suspended(self, account_id: int) -> bool:
        async with self.db.read() as conn:
            value = (
                await conn.execute(select(accounts.c.suspended).where(accounts.c.id == account_id))
            ).scalar()
        return bool(value)
