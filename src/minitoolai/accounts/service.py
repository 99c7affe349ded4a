"""Accounts and their API keys: what the operator CLI and the admin API do.

The account and key rows are written here. Money is the ledger's: only it changes an account's
balance (this module reads it with the row, for display), and charges and entries are read
through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from minitoolai.accounts.invalidation import ChangeBus
from minitoolai.accounts.keys import VISIBLE, generate_key, hash_key, visible_prefix
from minitoolai.clock import as_utc, utcnow
from minitoolai.errors import Conflict, InvalidRequest, NotFound
from minitoolai.infra.db import Database
from minitoolai.infra.tables import accounts, api_keys
from minitoolai.ledger.budgets import NO_CAPS, PERIODS, Caps, PeriodKind
from minitoolai.ledger.service import Ledger, check_amount
from minitoolai.money import nano_to_usd


@dataclass(slots=True)
class Account:
    id: int
    name: str
    balance: int
    held: int
    created_at: datetime

    @property
    def available(self) -> int:
        return self.balance - self.held

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "account",
            "name": self.name,
            "balance": nano_to_usd(self.balance),
            "held": nano_to_usd(self.held),
            "available": nano_to_usd(self.available),
            "created_at": as_utc(self.created_at).isoformat(),
        }


@dataclass(slots=True)
class KeyRecord:
    id: int
    account_name: str
    prefix: str
    name: str | None
    allowed_models: list[str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    budgets: Caps = NO_CAPS  # the key's spend budgets (``ledger.budgets``)

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "api_key",
            "account": self.account_name,
            "prefix": self.prefix,
            "name": self.name,
            "allowed_models": self.allowed_models,
            "created_at": as_utc(self.created_at).isoformat(),
            "expires_at": as_utc(self.expires_at).isoformat() if self.expires_at else None,
            "revoked": self.revoked_at is not None,
            "budgets": budgets_dict(self.budgets),
        }


def budgets_dict(caps: Caps) -> dict[str, str | None]:
    """A key's or account's budgets as the CLI and the admin API show them (USD, or null)."""
    return {p: None if (v := caps.cap(p)) is None else nano_to_usd(v) for p in PERIODS}


def _caps(row: Any) -> Caps:
    return Caps(row.daily_budget, row.monthly_budget, row.total_budget)


def _budget_values(changes: dict[PeriodKind, int | None]) -> dict[str, int | None]:
    """The columns of a budget change; a cap is a positive amount (None clears it)."""
    for period, amount in changes.items():
        if period not in PERIODS:
            raise InvalidRequest(f"no {period!r} budget; use daily, monthly or total")
        if amount is not None:
            if amount <= 0:
                raise InvalidRequest("a budget is a positive USD amount", param=period)
            check_amount(amount)
    return {f"{period}_budget": amount for period, amount in changes.items()}


def _valid_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise InvalidRequest("an account name is 1 to 200 printable characters", param="name")
    return name


def _valid_label(label: str | None, what: str) -> str | None:
    """Free text kept in the database: printable, so no NUL reaches PostgreSQL."""
    if label is not None and (len(label) > 500 or not label.isprintable()):
        raise InvalidRequest(f"the {what} must be at most 500 printable characters", param=what)
    return label


class AccountService:
    def __init__(self, db: Database, ledger: Ledger, *, changes: ChangeBus | None = None) -> None:
        self.db = db
        self.ledger = ledger
        #: tells every process's key cache about a revoked or changed key (``key_changed``)
        self.changes = changes or ChangeBus(db)

    async def create(self, name: str, credit: int = 0) -> tuple[Account, str]:
        """Create an account with its first key. Returns the account and the plaintext key."""
        name = _valid_name(name)
        check_amount(credit)  # before anything is written
        try:
            async with self.db.write() as conn:
                account_id = (
                    await conn.execute(
                        insert(accounts)
                        .values(name=name, balance=0, held=0, created_at=utcnow())
                        .returning(accounts.c.id)
                    )
                ).scalar_one()
        except IntegrityError:
            raise Conflict(f"an account named {name!r} already exists") from None
        key, _ = await self.create_key(name)
        if credit:
            await self.ledger.top_up(account_id, credit, "initial credit")
        return await self.get(name), key

    async def get(self, name: str) -> Account:
        if not name.isprintable() or len(name) > 200:  # cannot exist; and NUL breaks PostgreSQL
            raise NotFound(f"no account named {name!r}")
        async with self.db.read() as conn:
            row = (await conn.execute(select(accounts).where(accounts.c.name == name))).first()
        if row is None:
            raise NotFound(f"no account named {name!r}")
        return Account(row.id, row.name, int(row.balance), int(row.held), row.created_at)

    async def all(self) -> list[Account]:
        async with self.db.read() as conn:
            rows = (await conn.execute(select(accounts).order_by(accounts.c.name))).all()
        return [Account(r.id, r.name, int(r.balance), int(r.held), r.created_at) for r in rows]

    async def recent_entries(self, account_id: int, limit: int = 20) -> list[dict[str, Any]]:
        return [
            {
                "kind": e.kind,
                "amount": nano_to_usd(e.amount),
                "held": nano_to_usd(e.held),
                "request": e.charge_id,
                "note": e.note,
                "created_at": as_utc(e.created_at).isoformat(),
            }
            for e in await self.ledger.recent_entries(account_id, limit)
        ]

    async def open_holds(self, account_id: int) -> int:
        return await self.ledger.open_holds(account_id)

    async def usage(self, account_id: int, limit: int = 50) -> list[dict[str, Any]]:
        return [
            {
                "id": r.id,
                "object": "usage",
                "kind": r.kind,
                "model": r.model,
                "served_by": r.served_by,
                "status": r.status,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "units": r.units,
                "estimated": r.estimated,
                "cost": nano_to_usd(r.cost),
                "created_at": as_utc(r.created_at).isoformat(),
                "request_id": r.request_id,
            }
            for r in await self.ledger.usage(account_id, limit)
        ]

    # -- keys --------------------------------------------------------------------------------

    async def create_key(
        self,
        account_name: str,
        *,
        name: str | None = None,
        expires_at: datetime | None = None,
        allowed_models: list[str] | None = None,
        daily_budget: int | None = None,
        monthly_budget: int | None = None,
        total_budget: int | None = None,
    ) -> tuple[str, KeyRecord]:
        name = _valid_label(name, "name")
        budget = _budget_values(
            {"daily": daily_budget, "monthly": monthly_budget, "total": total_budget}
        )
        if allowed_models is not None and not all(
            m and len(m) <= 200 and m.isprintable() for m in allowed_models
        ):
            raise InvalidRequest("allowed_models must be model names", param="allowed_models")
        account = await self.get(account_name)
        key = generate_key()
        now = utcnow()
        async with self.db.write() as conn:
            key_id = (
                await conn.execute(
                    insert(api_keys)
                    .values(
                        account_id=account.id,
                        prefix=visible_prefix(key),
                        key_hash=hash_key(key),
                        name=name,
                        allowed_models=allowed_models,
                        created_at=now,
                        expires_at=expires_at,
                        **budget,
                    )
                    .returning(api_keys.c.id)
                )
            ).scalar_one()
        record = KeyRecord(
            key_id,
            account.name,
            visible_prefix(key),
            name,
            allowed_models,
            now,
            expires_at,
            None,
            Caps(daily_budget, monthly_budget, total_budget),
        )
        return key, record

    async def set_key_budget(self, prefix: str, **changes: int | None) -> tuple[KeyRecord, str]:
        """Set (an amount) or clear (None) the named budgets (``daily``, ``monthly``,
        ``total``) of the one live key starting with ``prefix``; the others stay. Returns the
        key and its hash (to drop it from the key caches: the budgets ride in the Principal)."""
        values = _budget_values(changes)  # type: ignore[arg-type]
        key_id, key_hash = await self._live_key(prefix)
        async with self.db.write() as conn:
            if values:
                await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**values))
            row = (
                await conn.execute(
                    select(api_keys, accounts.c.name.label("account_name"))
                    .join(accounts, accounts.c.id == api_keys.c.account_id)
                    .where(api_keys.c.id == key_id)
                )
            ).one()
        record = KeyRecord(
            row.id,
            row.account_name,
            row.prefix,
            row.name,
            row.allowed_models,
            row.created_at,
            row.expires_at,
            row.revoked_at,
            _caps(row),
        )
        await self.changes.key_changed(key_hash=key_hash)  # every replica's key cache
        return record, key_hash

    async def set_account_budget(self, name: str, **changes: int | None) -> Caps:
        """Set or clear the named budgets of an account (shared by all its keys); the others
        stay. Returns its budgets after."""
        values = _budget_values(changes)  # type: ignore[arg-type]
        account = await self.get(name)
        async with self.db.write() as conn:
            if values:
                await conn.execute(
                    update(accounts).where(accounts.c.id == account.id).values(**values)
                )
            row = (await conn.execute(select(accounts).where(accounts.c.id == account.id))).one()
        await self.changes.account_changed(account.id)  # every replica's key cache
        return _caps(row)

    async def account_budget(self, name: str) -> Caps:
        account = await self.get(name)
        async with self.db.read() as conn:
            row = (await conn.execute(select(accounts).where(accounts.c.id == account.id))).one()
        return _caps(row)

    async def list_keys(self, account_name: str) -> list[KeyRecord]:
        account = await self.get(account_name)
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(api_keys)
                    .where(api_keys.c.account_id == account.id)
                    .order_by(api_keys.c.id)
                )
            ).all()
        return [
            KeyRecord(
                r.id,
                account.name,
                r.prefix,
                r.name,
                r.allowed_models,
                r.created_at,
                r.expires_at,
                r.revoked_at,
                _caps(r),
            )
            for r in rows
        ]

    async def _live_key(self, prefix: str) -> tuple[int, str]:
        """The id and hash of the one live key starting with ``prefix`` (or the whole key)."""
        if len(prefix) < 8 or len(prefix) > 200 or not prefix.isprintable():
            raise InvalidRequest("give at least 8 characters of the key", param="prefix")
        if len(prefix) > VISIBLE:
            condition = api_keys.c.key_hash == hash_key(prefix)
        else:
            condition = api_keys.c.prefix.startswith(prefix, autoescape=True)
        async with self.db.read() as conn:
            matches = (
                await conn.execute(
                    select(api_keys.c.id, api_keys.c.key_hash).where(
                        condition, api_keys.c.revoked_at.is_(None)
                    )
                )
            ).all()
        if not matches:
            raise NotFound(f"no live key starts with {prefix[:VISIBLE]!r}")
        if len(matches) > 1:
            raise Conflict(f"{len(matches)} keys start with {prefix!r}; give more characters")
        return int(matches[0].id), str(matches[0].key_hash)

    async def revoke_key(self, prefix: str) -> str:
        """Revoke the one live key starting with ``prefix``. Returns its key hash (for caches)."""
        if len(prefix) < 8 or len(prefix) > 200 or not prefix.isprintable():
            raise InvalidRequest("give at least 8 characters of the key", param="prefix")
        if len(prefix) > VISIBLE:  # a whole key: find it by its hash
            condition = api_keys.c.key_hash == hash_key(prefix)
        else:
            condition = api_keys.c.prefix.startswith(prefix, autoescape=True)
        async with self.db.write() as conn:
            matches = (
                await conn.execute(
                    select(api_keys.c.id, api_keys.c.key_hash).where(
                        condition, api_keys.c.revoked_at.is_(None)
                    )
                )
            ).all()
            if not matches:
                raise NotFound(f"no live key starts with {prefix[:VISIBLE]!r}")
            if len(matches) > 1:
                raise Conflict(f"{len(matches)} keys start with {prefix!r}; give more characters")
            await conn.execute(
                update(api_keys).where(api_keys.c.id == matches[0].id).values(revoked_at=utcnow())
            )
        await self.changes.key_changed(key_hash=str(matches[0].key_hash))  # every replica
        return str(matches[0].key_hash)
