"""Redeem codes: the operator makes batches of single-use codes; an account redeems one for
its batch's amount.

Codes are shown once, when their batch is made, and kept only as hashes (``codes.text``). The
money moves in the ledger (``Ledger.redeem_code``): marking the code used and crediting the
account is one transaction, conditional on the code being unused and unexpired, so a code
redeemed many times at once credits once. A code that is unknown, used or expired is refused
with one message, so a guesser learns nothing; failed attempts are throttled per account
(``codes.throttle``). Batches and their listings are plain rows, written here.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select

from minitoolai.clock import as_utc, utcnow
from minitoolai.codes.text import code_hash, generate_code, last4, normalise
from minitoolai.codes.throttle import FailedRedemptions
from minitoolai.errors import InvalidRequest, NotFound
from minitoolai.infra.db import Database
from minitoolai.infra.tables import accounts, code_batches, redeem_codes
from minitoolai.ledger.service import Ledger, check_amount
from minitoolai.money import nano_to_usd

log = logging.getLogger("minitoolai.codes")

#: codes made at once (a bigger run is several batches)
MAX_BATCH = 1000
#: the one answer for a code that is unknown, already redeemed or expired: no oracle
INVALID_CODE = "This code is not valid: check it, or it may have been used or have expired."


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


@dataclass(slots=True)
class CodeBatch:
    """A batch just made, with its plain codes: the only time they are seen."""

    id: str
    amount: int
    count: int
    expires_at: datetime | None
    note: str | None
    created_by: str
    created_at: datetime
    codes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "code_batch",
            "id": self.id,
            "amount": nano_to_usd(self.amount),
            "count": self.count,
            "expires_at": _iso(self.expires_at),
            "note": self.note,
            "created_by": self.created_by,
            "created_at": _iso(self.created_at),
            "codes": self.codes,
        }


@dataclass(slots=True)
class Redeemed:
    """What one redemption credited, and the account's balance after it."""

    amount: int
    batch_id: str
    balance: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "redemption",
            "amount": nano_to_usd(self.amount),
            "batch": self.batch_id,
            "balance": nano_to_usd(self.balance),
        }


@dataclass(slots=True)
class Redemption:
    """A used code of a batch: which one (its last 4), by whom, when."""

    last4: str
    account: str
    redeemed_at: datetime

    @property
    def code(self) -> str:
        return f"MTAI-...-{self.last4}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "last4": self.last4,
            "account": self.account,
            "redeemed_at": _iso(self.redeemed_at),
        }


@dataclass(slots=True)
class BatchInfo:
    """A batch as listings show it (``redemptions`` only when one batch is asked for)."""

    id: str
    amount: int
    count: int
    redeemed: int
    expires_at: datetime | None
    note: str | None
    created_by: str
    created_at: datetime
    redemptions: list[Redemption] | None = None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and as_utc(self.expires_at) <= now

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "object": "code_batch",
            "id": self.id,
            "amount": nano_to_usd(self.amount),
            "count": self.count,
            "redeemed": self.redeemed,
            "expires_at": _iso(self.expires_at),
            "note": self.note,
            "created_by": self.created_by,
            "created_at": _iso(self.created_at),
        }
        if self.redemptions is not None:
            out["redemptions"] = [r.to_dict() for r in self.redemptions]
        return out


def _label(value: str | None, what: str, limit: int) -> str | None:
    """Free text kept in the database: printable, so no NUL reaches PostgreSQL."""
    if value is not None and (len(value) > limit or not value.isprintable()):
        raise InvalidRequest(f"the {what} must be at most {limit} printable characters", param=what)
    return value


class CodeService:
    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        *,
        clock: Callable[[], datetime] = utcnow,
        throttle: FailedRedemptions | None = None,
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.clock = clock  # decides expiry; tests pass one they move
        self.throttle = throttle or FailedRedemptions(clock=clock)

    async def create_batch(
        self,
        amount: int,
        count: int = 1,
        *,
        expires_at: datetime | None = None,
        note: str | None = None,
        created_by: str = "cli",
    ) -> CodeBatch:
        """Make ``count`` codes worth ``amount`` nano-dollars each. The plain codes are in the
        answer and nowhere else."""
        if amount <= 0:
            raise InvalidRequest("a code must be worth a positive amount", param="amount")
        check_amount(amount)
        if not 1 <= count <= MAX_BATCH:
            raise InvalidRequest(f"a batch has 1 to {MAX_BATCH} codes", param="count")
        now = self.clock()
        if expires_at is not None:
            expires_at = expires_at.replace(tzinfo=UTC) if expires_at.tzinfo is None else expires_at
            try:  # SQLite keeps the wall clock: store UTC
                expires_at = expires_at.astimezone(UTC)
            except OverflowError:
                raise InvalidRequest(
                    "expires_at must lie between the years 1 and 9999 in UTC", param="expires_at"
                ) from None
            if expires_at <= now:
                raise InvalidRequest("expires_at must be in the future", param="expires_at")
        note = _label(note, "note", 500)
        created_by = _label(created_by, "created_by", 200) or "cli"
        batch_id = "batch_" + secrets.token_hex(8)
        plain = [generate_code() for _ in range(count)]
        rows = []
        for text in plain:
            body = normalise(text)
            assert body is not None  # a made code always reads back
            rows.append({"batch_id": batch_id, "code_hash": code_hash(body), "last4": last4(body)})
        async with self.db.write() as conn:
            await conn.execute(
                insert(code_batches).values(
                    id=batch_id,
                    amount=amount,
                    count=count,
                    expires_at=expires_at,
                    note=note,
                    created_by=created_by,
                    created_at=now,
                )
            )
            # 80 random bits each: a clash of hashes would be an IntegrityError, and nothing kept
            await conn.execute(insert(redeem_codes), rows)
        log.info(
            "made code batch %s: %d x US$%s by %s", batch_id, count, nano_to_usd(amount), created_by
        )
        return CodeBatch(batch_id, amount, count, expires_at, note, created_by, now, plain)

    async def redeem(self, account_id: int, code: str) -> Redeemed:
        """Credit the account with the code's amount, once per code.

        Raises ``InvalidRequest`` (``invalid_code``, one message) for a code that is unknown,
        used or expired, and ``RateLimited`` once the account has failed too often lately.
        """
        mark = self.throttle.admit(account_id)
        try:
            body = normalise(code)
            credit = (
                None
                if body is None
                else await self.ledger.redeem_code(account_id, code_hash(body), self.clock())
            )
        except BaseException:  # not a wrong guess (no account, the database away): uncounted
            self.throttle.forgive(account_id, mark)
            raise
        if credit is None:
            log.info("account %d: a code was refused", account_id)
            raise InvalidRequest(INVALID_CODE, param="code", code="invalid_code")
        self.throttle.forgive(account_id, mark)
        log.info(
            "account %d redeemed a code of %s for US$%s",
            account_id,
            credit.batch_id,
            nano_to_usd(credit.amount),
        )
        return Redeemed(credit.amount, credit.batch_id, credit.balance)

    async def batches(self) -> list[BatchInfo]:
        """Every batch, newest first, with how many of its codes were redeemed."""
        used = (
            select(redeem_codes.c.batch_id, func.count().label("redeemed"))
            .where(redeem_codes.c.redeemed_at.is_not(None))
            .group_by(redeem_codes.c.batch_id)
            .subquery()
        )
        query = (
            select(code_batches, func.coalesce(used.c.redeemed, 0).label("redeemed"))
            .select_from(code_batches.outerjoin(used, used.c.batch_id == code_batches.c.id))
            .order_by(code_batches.c.created_at.desc(), code_batches.c.id)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_info(r, int(r.redeemed)) for r in rows]

    async def batch(self, batch_id: str) -> BatchInfo:
        """One batch, with each redeemed code (its last 4), who redeemed it and when."""
        if not batch_id.isprintable() or len(batch_id) > 40:  # cannot exist; NUL breaks PG
            raise NotFound(f"no code batch {batch_id!r}")
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(code_batches).where(code_batches.c.id == batch_id))
            ).first()
            if row is None:
                raise NotFound(f"no code batch {batch_id!r}")
            used = (
                await conn.execute(
                    select(redeem_codes.c.last4, accounts.c.name, redeem_codes.c.redeemed_at)
                    .join(accounts, accounts.c.id == redeem_codes.c.redeemed_by)
                    .where(
                        redeem_codes.c.batch_id == batch_id,
                        redeem_codes.c.redeemed_at.is_not(None),
                    )
                    .order_by(redeem_codes.c.redeemed_at, redeem_codes.c.id)
                )
            ).all()
        info = _info(row, len(used))
        info.redemptions = [Redemption(u.last4, u.name, as_utc(u.redeemed_at)) for u in used]
        return info


def _info(row: Any, redeemed: int) -> BatchInfo:
    r = row._mapping  # ``row.count`` would be the tuple method
    return BatchInfo(
        id=r["id"],
        amount=int(r["amount"]),
        count=int(r["count"]),
        redeemed=redeemed,
        expires_at=None if r["expires_at"] is None else as_utc(r["expires_at"]),
        note=r["note"],
        created_by=r["created_by"],
        created_at=as_utc(r["created_at"]),
    )
