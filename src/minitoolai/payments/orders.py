"""Card top-up orders: the rows this server writes before Stripe sees a payment, and the reads
that match a webhook's session or payment to one of them.

An order is made when a person asks to pay, before its Checkout Session exists; the session's
id is attached once Stripe answers. Nothing here moves money: an order becomes ``paid``
(and the account credited) only in the ledger (``Ledger.pay_order``), and a refund or dispute
is taken back there too (``Ledger.take_back_payment``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from minitoolai.clock import as_utc
from minitoolai.infra.db import Database
from minitoolai.infra.tables import payment_orders

#: USD's minor unit (the cent) in nano-dollars: a Stripe amount converts exactly
NANO_PER_CENT = 10_000_000


@dataclass(slots=True)
class Order:
    id: str
    account_id: int
    amount: int  # nano-dollars credited when paid
    amount_minor: int  # what Stripe charges, in the currency's minor unit (cents)
    currency: str
    status: str  # created | paid | refunded | disputed
    stripe_session_id: str | None
    payment_intent_id: str | None
    refunded_minor: int
    disputed_minor: int
    taken_back: int  # nano-dollars taken back by refunds and disputes
    shortfall: int  # nano-dollars a take-back could not take (the balance had been spent)
    created_at: datetime


def _order(row: Any) -> Order:
    r = row._mapping
    return Order(
        id=r["id"],
        account_id=int(r["account_id"]),
        amount=int(r["amount"]),
        amount_minor=int(r["amount_minor"]),
        currency=r["currency"],
        status=r["status"],
        stripe_session_id=r["stripe_session_id"],
        payment_intent_id=r["payment_intent_id"],
        refunded_minor=int(r["refunded_minor"]),
        disputed_minor=int(r["disputed_minor"]),
        taken_back=int(r["taken_back"]),
        shortfall=int(r["shortfall"]),
        created_at=as_utc(r["created_at"]),
    )


def _printable(value: str, limit: int = 200) -> bool:
    """An id from outside that could be one of ours (and carries no NUL to PostgreSQL)."""
    return 0 < len(value) <= limit and value.isprintable()


class OrderBook:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self, account_id: int, amount_minor: int, currency: str, now: datetime
    ) -> Order:
        order_id = "ord_" + secrets.token_hex(12)
        values = {
            "id": order_id,
            "account_id": account_id,
            "amount": amount_minor * NANO_PER_CENT,
            "amount_minor": amount_minor,
            "currency": currency,
            "status": "created",
            "created_at": now,
            "updated_at": now,
        }
        async with self.db.write() as conn:
            await conn.execute(insert(payment_orders).values(**values))
        found = await self.by_id(order_id)
        assert found is not None
        return found

    async def attach_session(self, order_id: str, session_id: str, now: datetime) -> bool:
        """Name the order's Checkout Session, once; False if it already had one."""
        async with self.db.write() as conn:
            done = await conn.execute(
                update(payment_orders)
                .where(
                    payment_orders.c.id == order_id, payment_orders.c.stripe_session_id.is_(None)
                )
                .values(stripe_session_id=session_id, updated_at=now)
            )
        return bool(done.rowcount)

    async def _one(self, *where: Any) -> Order | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(payment_orders).where(*where))).first()
        return None if row is None else _order(row)

    async def by_id(self, order_id: str) -> Order | None:
        if not _printable(order_id):
            return None
        return await self._one(payment_orders.c.id == order_id)

    async def by_session(self, session_id: str) -> Order | None:
        if not _printable(session_id):
            return None
        return await self._one(payment_orders.c.stripe_session_id == session_id)

    async def by_payment_intent(self, payment_intent_id: str) -> Order | None:
        if not _printable(payment_intent_id):
            return None
        return await self._one(payment_orders.c.payment_intent_id == payment_intent_id)
