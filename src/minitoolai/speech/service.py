"""Speech: hold the price of the input's characters, stream the audio, settle.

The price is known before any work (per 1M input characters), so the hold is exact. A request
that fails before any audio is produced is released; once audio flows the input has been
consumed and the request is charged in full, whether or not the client reads to the end.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio

from minitoolai.accounts.auth import Principal
from minitoolai.engines.base import SpeechEngine, SpeechParams
from minitoolai.engines.errors import EngineError
from minitoolai.errors import Conflict, ServiceUnavailable
from minitoolai.ledger.idempotency import IdempotencyKey
from minitoolai.ledger.pricing import PriceTable
from minitoolai.ledger.service import Ledger, UsageRecord
from minitoolai.routing.failover import failover
from minitoolai.routing.router import Router

log = logging.getLogger("minitoolai.speech")


class SpeechService:
    def __init__(self, ledger: Ledger, prices: PriceTable, router: Router[SpeechEngine]) -> None:
        self.ledger = ledger
        self.prices = prices
        self.router = router

    async def start(
        self,
        principal: Principal,
        model: str,
        params: SpeechParams,
        idempotency: IdempotencyKey | None,
    ) -> AsyncIterator[bytes]:
        """Hold, then get the first audio bytes (so failures are still HTTP errors, mapped
        by ``routing.failover``)."""
        principal.check_model(model)
        if not self.router.knows(model):
            raise ServiceUnavailable(
                f"No engine serves '{model}' on this server: install the local speech engine "
                f"or add a [[deployments]] entry for it.",
                code="model_not_served",
            )
        chars = len(params.input)
        cost = self.prices[model].characters(chars)
        hold = await self.ledger.hold(
            principal.account_id,
            cost,
            kind="speech",
            model=model,
            api_key_id=principal.key_id,
            budgets=principal.budgets,
            idempotency=idempotency,
        )
        if hold.is_replay:
            raise Conflict(
                "This Idempotency-Key was already used; audio is not replayed.",
                code="idempotency_key_used",
            )
        try:
            answering = await failover(
                self.router,
                self.router.candidates(model),
                lambda engine: engine.synthesize(params),
                model=model,
            )
        except BaseException:  # nobody answered, or cancelled: the client pays nothing
            with anyio.CancelScope(shield=True):
                await self.ledger.release(hold.charge_id)
            raise
        usage = UsageRecord(units=chars, served_by=answering.deployment.name)
        return self._relay(answering.first, answering.rest, hold.charge_id, cost, usage)

    async def _relay(
        self,
        first: bytes,
        stream: AsyncIterator[bytes],
        charge_id: str,
        cost: int,
        usage: UsageRecord,
    ) -> AsyncIterator[bytes]:
        try:
            yield first
            async for chunk in stream:
                yield chunk
        except EngineError as exc:  # mid-stream: the audio is cut short; nothing more to send
            log.warning("speech stream %s broke: %s", charge_id, exc)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await stream.aclose()  # type: ignore[attr-defined]
                finally:
                    await self.ledger.settle(charge_id, cost, usage)
