"""One chat request's life: validate -> hold -> pick a deployment -> stream -> settle.

The money rules live here and nowhere else:
- the hold is the worst case (prompt estimate + ``max_completion_tokens`` at the model's price)
  and is taken before any engine is called; 402 if the balance cannot cover it;
- deployments are tried in the router's order until one produces a first chunk; if none does,
  the hold is released (the client pays nothing) and the client gets a 502;
- a finished stream settles on the usage the engine reported; a stream cut short (client
  disconnect, upstream failure mid-way) settles on what was generated, counted by the engine's
  tokenizer when its usage never came, and the charge is marked estimated;
- the usage the client is shown is the usage it was charged for.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

import anyio

from minitoolai.accounts.auth import Principal
from minitoolai.chat.images import ImageResolver
from minitoolai.chat.schemas import ChatRequest
from minitoolai.chat.tokens import REPLY_PRIMING, count_messages, text_size
from minitoolai.chat.wire import completion
from minitoolai.engines.base import ChatChunk, ChatEngine, ChatParams, Usage
from minitoolai.engines.errors import EngineBusy, EngineError, EngineRejected
from minitoolai.engines.openai_compat import OpenAICompatEngine
from minitoolai.errors import (
    InsufficientCredit,
    InvalidRequest,
    RateLimited,
    ServiceUnavailable,
    UnsupportedInput,
    UpstreamError,
)
from minitoolai.ledger.idempotency import IdempotencyKey
from minitoolai.ledger.pricing import CHAT_MODELS, Price, PriceTable
from minitoolai.ledger.service import Hold, Ledger, UsageRecord
from minitoolai.money import nano_to_usd
from minitoolai.observability import CHARGED, TOKENS, UPSTREAM_FAILURES
from minitoolai.routing.router import Deployment, Router
from minitoolai.vision import image_tokens_floor

log = logging.getLogger("minitoolai.chat")

#: Safety margin on the prompt estimate in the hold, for tokenizers that count a little
#: differently from ours. The settlement uses the engine's own count.
PROMPT_MARGIN = 1.05
PROMPT_SLACK = 16


@dataclass(slots=True)
class Prepared:
    """A validated request with its images resolved; nothing held yet."""

    request: ChatRequest
    params: ChatParams
    prompt_tokens: int  # our own count (text + images), the fallback if no usage arrives
    hold_amount: int
    price: Price
    candidates: list[Deployment[ChatEngine]]


@dataclass
class ChatRun:
    """A request with its money held and a deployment answering."""

    service: ChatService
    principal: Principal
    prepared: Prepared
    hold: Hold
    deployment: Deployment[ChatEngine] | None = None
    id: str = field(default_factory=lambda: "chatcmpl-" + secrets.token_urlsafe(18))
    created: int = field(default_factory=lambda: int(time.time()))
    model: str = ""
    fingerprint: str = ""
    text: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None  # what was billed, once settled
    engine_usage: Usage | None = None
    settled: bool = False
    _stream: AsyncIterator[ChatChunk] | None = None
    _first: ChatChunk | None = None

    @property
    def public_model(self) -> str:
        return self.prepared.request.model

    async def open(self, *, whole: bool = False) -> None:
        """Get a first chunk from some deployment, or release the hold and raise 502/429.

        ``whole``: the client wants one answer, not a stream; engines that can give one
        (upstreams) are asked for it in a single call.
        """
        last_error = "no deployment is configured"
        busy: EngineBusy | None = None
        for deployment in self.prepared.candidates:
            complete = getattr(deployment.engine, "complete", None) if whole else None
            stream = (
                _single(complete(self.prepared.params))
                if complete is not None
                else deployment.engine.stream(self.prepared.params)
            )
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                last_error = f"{deployment.name} returned an empty answer"
                self.service.router.failed(deployment)
                continue
            except EngineBusy as exc:
                busy = exc
                continue
            except EngineRejected as exc:
                await self._release()
                raise InvalidRequest(f"The model rejected the request: {exc}") from None
            except EngineError as exc:
                last_error = str(exc)
                log.warning("deployment %s failed before the first byte: %s", deployment.name, exc)
                UPSTREAM_FAILURES.labels(deployment.name).inc()
                self.service.router.failed(deployment)
                continue
            except BaseException:
                await self._release()
                raise
            self.service.router.succeeded(deployment)
            self.deployment, self._stream, self._first = deployment, stream, first
            self.model = first.model or deployment.engine.model_id
            self.fingerprint = "fp_" + secrets.token_hex(5)
            return
        await self._release()
        if busy is not None:
            raise RateLimited(
                f"The model '{self.public_model}' is busy; retry shortly.",
                retry_after=busy.retry_after,
            )
        raise UpstreamError(f"No deployment of '{self.public_model}' could answer: {last_error}")

    async def chunks(self) -> AsyncIterator[ChatChunk]:
        """The answer as it arrives; ``usage`` chunks are kept back for billing."""
        assert self._stream is not None and self._first is not None
        first, self._first = self._first, None
        pending: list[ChatChunk] = [first]
        while True:
            if pending:
                chunk = pending.pop()
            else:
                try:
                    chunk = await anext(self._stream)
                except StopAsyncIteration:
                    return
            if chunk.usage is not None:
                self.engine_usage = chunk.usage
            if chunk.content:
                self.text.append(chunk.content)
            if chunk.finish_reason:
                self.finish_reason = chunk.finish_reason
            if chunk.content or chunk.finish_reason or chunk.role:
                yield chunk

    async def settle(self, *, keep_result: bool = False) -> Usage:
        """Charge for what was generated; safe to call more than once.

        With ``keep_result`` the finished completion is stored with the charge, so an
        idempotent retry is answered with it instead of being billed again.
        """
        if self.settled:
            assert self.usage is not None
            return self.usage
        self.settled = True
        estimated = self.engine_usage is None
        if self.engine_usage is not None:
            usage = self.engine_usage
        else:
            engine = self.deployment.engine if self.deployment else None
            text = "".join(self.text)
            completion = engine.count_tokens(text) if (engine and text) else 0
            usage = Usage(self.prepared.prompt_tokens, completion)
        cost = self.prepared.price.tokens(usage.prompt_tokens, usage.completion_tokens)
        result = self.completion(usage) if keep_result else None
        outcome = await self.service.ledger.settle(
            self.hold.charge_id,
            cost,
            UsageRecord(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                estimated=estimated,
                served_by=self.deployment.name if self.deployment else None,
                result=result,
            ),
        )
        if outcome.cost < cost:  # capped at the hold: show what was really charged
            log.error("charge %s capped at its hold", self.hold.charge_id)
        self.usage = usage
        CHARGED.labels(self.public_model).inc(outcome.cost)
        TOKENS.labels(self.public_model, "prompt").inc(usage.prompt_tokens)
        TOKENS.labels(self.public_model, "completion").inc(usage.completion_tokens)
        return usage

    def completion(self, usage: Usage) -> dict[str, Any]:
        return completion(
            self.id,
            self.created,
            self.model,
            self.fingerprint,
            "".join(self.text),
            self.finish_reason,
            usage,
        )

    async def close(self) -> None:
        """Always called last, even when cancelled: settle what is owed, stop the engine."""
        with anyio.CancelScope(shield=True):
            if self._stream is not None:
                try:
                    await self._stream.aclose()  # type: ignore[attr-defined]
                except Exception:  # a broken upstream must not block the settlement
                    log.debug("closing the engine stream failed", exc_info=True)
            if not self.settled:
                try:
                    await self.settle()
                except Exception:  # the sweeper will release the hold; log loudly
                    log.exception("settling %s failed", self.hold.charge_id)

    async def _release(self) -> None:
        with anyio.CancelScope(shield=True):
            self.settled = True
            await self.service.ledger.release(self.hold.charge_id)


class ChatService:
    def __init__(
        self,
        ledger: Ledger,
        prices: PriceTable,
        router: Router[ChatEngine],
        *,
        image_resolver: ImageResolver | None = None,
        max_image_parts: int = 10,
    ) -> None:
        self.ledger = ledger
        self.prices = prices
        self.router = router
        self.image_resolver = image_resolver  # None: vision input is off
        self.max_image_parts = max_image_parts

    async def prepare(self, principal: Principal, request: ChatRequest) -> Prepared:
        """Everything that can fail with a 4xx, before any money moves.

        Work that costs (tokenizing a large prompt, fetching images) comes after a cheap
        check that the account could pay for the smallest such request at all, and large
        prompts are tokenized off the event loop.
        """
        model = request.model
        if not self.router.knows(model) and model in CHAT_MODELS:
            raise ServiceUnavailable(
                f"No engine serves '{model}' on this server. The operator can set OPENAI_API_KEY, "
                f"add a [[deployments]] entry to the config file, or install the local engine.",
                code="model_not_served",
            )
        if not self.router.knows(model):
            raise InvalidRequest(
                f"The model '{model}' does not exist. "
                f"Available: {', '.join(self.router.models()) or 'none'}.",
                param="model",
                code="model_not_found",
            )
        principal.check_model(model)
        candidates = self.router.candidates(model)
        messages = request.message_dicts()
        price = self.prices[model]
        images = request.image_count()
        if images:
            candidates = [d for d in candidates if d.engine.accepts_images]
            if not candidates:
                raise UnsupportedInput(
                    f"model {model} does not accept image input", param="messages"
                )
            if self.image_resolver is None:
                raise UnsupportedInput(
                    "image input is not enabled on this server", param="messages"
                )
            if images > self.max_image_parts:
                raise InvalidRequest(
                    f"A request may carry at most {self.max_image_parts} images; "
                    f"this one has {images}.",
                    param="messages",
                    code="too_many_images",
                )
        heavy = images > 0 or text_size(messages) > INLINE_COUNT_CHARS
        if heavy:
            await self._affordable(principal, messages, images, request, price)
        if images:
            assert self.image_resolver is not None
            messages, image_tokens = await self.image_resolver(model, messages)
        else:
            image_tokens = 0
        if heavy:
            text_tokens, estimate = await anyio.to_thread.run_sync(
                _count, messages, model, candidates, limiter=_TOKENIZERS
            )
        else:
            text_tokens, estimate = _count(messages, model, candidates)
        hold_prompt = math.ceil(estimate * PROMPT_MARGIN) + PROMPT_SLACK + image_tokens
        params = ChatParams(
            messages=messages,
            max_tokens=request.completion_limit,
            temperature=1.0 if request.temperature is None else request.temperature,
            top_p=request.top_p,
            stop=request.stop_list,
            seed=request.seed,
            presence_penalty=request.presence_penalty,
            frequency_penalty=request.frequency_penalty,
            response_format=(
                request.response_format.model_dump() if request.response_format else None
            ),
            user=request.user,
        )
        return Prepared(
            request=request,
            params=params,
            prompt_tokens=text_tokens + image_tokens,
            hold_amount=price.tokens(hold_prompt, request.completion_limit),
            price=price,
            candidates=candidates,
        )

    async def refuse_if_nothing_available(self, principal: Principal) -> None:
        """402 for an account with nothing to spend, before its request is even read."""
        available = await self.ledger.available(principal.account_id)
        if available <= 0:
            raise InsufficientCredit(
                "Insufficient credit: the available balance is US$0. Top up the account."
            )

    async def _affordable(
        self,
        principal: Principal,
        messages: list[dict[str, Any]],
        images: int,
        request: ChatRequest,
        price: Price,
    ) -> None:
        """402 now if even the cheapest reading of this request is more than the account has:
        every token spans at most ``MAX_TOKEN_CHARS`` characters, every image costs at least
        its low-detail minimum."""
        floor_tokens = (
            text_size(messages) // MAX_TOKEN_CHARS
            + images * image_tokens_floor(request.model)
            + REPLY_PRIMING
        )
        least = price.tokens(floor_tokens, request.completion_limit)
        available = await self.ledger.available(principal.account_id)
        if least > available:
            raise InsufficientCredit(
                f"Insufficient credit: this request costs at least US${nano_to_usd(least)} "
                f"and the available balance is US${nano_to_usd(available)}."
            )

    async def start(
        self,
        principal: Principal,
        prepared: Prepared,
        idempotency: IdempotencyKey | None = None,
        *,
        whole: bool = False,
    ) -> ChatRun | Hold:
        """Hold the money and open a stream. A replayed idempotent request returns its Hold."""
        hold = await self.ledger.hold(
            principal.account_id,
            prepared.hold_amount,
            kind="chat",
            model=prepared.request.model,
            api_key_id=principal.key_id,
            idempotency=idempotency,
        )
        if hold.is_replay:
            return hold
        run = ChatRun(self, principal, prepared, hold)
        try:
            await run.open(whole=whole)
        except BaseException:
            if not run.settled:  # cancelled between the hold and the first try
                await run._release()
            raise
        return run


#: Prompts above this many characters are tokenized in a thread, after the credit pre-check.
INLINE_COUNT_CHARS = 64 * 1024
#: No token of o200k/cl100k spans more characters than this (checked in the tests).
MAX_TOKEN_CHARS = 128
#: Large prompts are tokenized two at a time at most, so they cannot take every core.
_TOKENIZERS = anyio.CapacityLimiter(2)


def _count(
    messages: list[dict[str, Any]], model: str, candidates: list[Deployment[ChatEngine]]
) -> tuple[int, int]:
    """Our count of the prompt's text tokens, and the largest any candidate engine would
    count (the hold's estimate). Tokenizes each text once per distinct tokenizer."""
    text_tokens = count_messages(messages, model)
    estimate = text_tokens
    for deployment in candidates:
        if not isinstance(deployment.engine, OpenAICompatEngine):
            estimate = max(estimate, _estimate(deployment.engine, messages))
    return text_tokens, estimate


async def _single(answer: Awaitable[ChatChunk]) -> AsyncIterator[ChatChunk]:
    """A whole answer, shaped as a one-chunk stream for the rest of the pipeline."""
    yield await answer


def _estimate(engine: ChatEngine, messages: list[dict[str, Any]]) -> int:
    """Prompt tokens as a local engine's tokenizer would count them (an upper-bound estimate)."""
    text = "".join(
        m["content"]
        if isinstance(m.get("content"), str)
        else "".join(p.get("text", "") for p in m.get("content") or [] if isinstance(p, dict))
        for m in messages
    )
    return engine.count_tokens(text) + 8 * len(messages) + 16
