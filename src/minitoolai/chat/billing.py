"""Settling a token-priced answer: chat's, and a Responses pass-through's (shared, so the
money rule is written once).

The cost is the model's price of the prompt and completion tokens; the ledger charges it,
capped at the hold, shielded from cancellation (a client leaving must not stop the settle).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from minitoolai.engines.base import Usage
from minitoolai.ledger.pricing import Price
from minitoolai.ledger.service import Ledger, UsageRecord
from minitoolai.limits.service import settled

log = logging.getLogger("minitoolai.chat")


async def settle_tokens(
    ledger: Ledger,
    charge_id: str,
    price: Price,
    usage: Usage,
    *,
    estimated: bool,
    served_by: str,
    result: Any = None,
) -> None:
    """Charge ``usage`` at ``price``; ``result`` is kept with the charge for idempotent
    replays (None: nothing to replay)."""
    cost = price.tokens(usage.prompt_tokens, usage.completion_tokens)
    settled(usage.prompt_tokens + usage.completion_tokens)  # the tokens rate's correction
    record = UsageRecord(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        estimated=estimated,
        served_by=served_by,
        result=result,
    )
    with anyio.CancelScope(shield=True):
        outcome = await ledger.settle(charge_id, cost, record)
    if outcome.cost < cost:  # capped at the hold: the client is shown its usage anyway
        log.error("charge %s capped at its hold", charge_id)
