"""Charges placed at chosen times, straight through the ledger's store (its own ``now``
parameters, no sleeps), for the usage and spending tests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from minitoolai.ledger.store.base import Finish, LedgerStore, NewCharge


@dataclass(frozen=True, slots=True)
class Placed:
    id: str
    kind: str
    model: str
    status: str
    cost: int  # what the charge row keeps (a released one: 0)
    at: datetime


async def place(
    store: LedgerStore,
    account_id: int,
    at: datetime,
    cost: int,
    *,
    model: str = "gpt-4o-mini",
    kind: str = "chat",
    status: str = "settled",
) -> Placed:
    """A charge made at ``at``: held, then settled for ``cost`` (or released, or settled and
    refunded, or left held)."""
    charge_id = "req_" + secrets.token_hex(12)
    hold = cost if cost > 0 else 1
    outcome = await store.hold(
        NewCharge(
            id=charge_id,
            account_id=account_id,
            api_key_id=None,
            kind=kind,
            model=model,
            amount=hold,
            idempotency_key=None,
            request_hash=None,
            now=at,
            expires_at=at + timedelta(hours=1),
            request_id=charge_id,
        )
    )
    assert outcome == "held"
    if status != "held":
        done = await store.finish(
            Finish(
                charge_id=charge_id,
                kind="release" if status == "released" else "settle",
                cost=0 if status == "released" else cost,
                prompt_tokens=10,
                completion_tokens=5,
                units=None,
                estimated=False,
                served_by="fake",
                result=None,
                note=None,
                now=at,
            )
        )
        assert done is not None
    if status == "refunded":
        assert await store.refund(charge_id, "test", at) == cost
    kept = 0 if status == "released" else cost
    return Placed(charge_id, kind, model, status, kept, at)
