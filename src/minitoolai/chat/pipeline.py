"""One chat request's life: validate -> hold -> pick a deployment -> answer -> settle.

The money rules live here and in ``chat.answer``, nowhere else:
- the hold is the worst case (prompt estimate + ``max_completion_tokens`` for each of the ``n``
  choices, at the model's price: the prompt is billed once, every choice's completion) and is
  taken before any engine is called; 402 if the balance cannot cover it;
- deployments are tried in the router's order until one produces a first chunk
  (``routing.failover``); if none does, the hold is released (the client pays nothing) and the
  client gets the failover's error (502, 429 or 400);
- a finished answer settles on the usage the engine reported; one cut short (client
  disconnect, upstream failure mid-way) settles on what was generated, counted by the engine's
  tokenizer when its usage never came, and the charge is marked estimated;
- the usage the client is shown is the usage it was charged for.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import orjson

from minitoolai.accounts.auth import Principal
from minitoolai.catalog import CHAT_MODELS
from minitoolai.chat.answer import ChatAnswer, LiveAnswer, ReplayedAnswer
from minitoolai.chat.images import ImageResolver
from minitoolai.chat.schemas import ChatRequest, Message
from minitoolai.chat.tokens import REPLY_PRIMING, count_messages, count_tools, text_size
from minitoolai.engines.base import ChatChunk, ChatEngine, ChatParams
from minitoolai.errors import (
    InsufficientCredit,
    InvalidRequest,
    ModelNotFound,
    ServiceUnavailable,
    UnsupportedInput,
)
from minitoolai.ledger.idempotency import IdempotencyKey
from minitoolai.ledger.pricing import Price, PriceTable
from minitoolai.ledger.service import Ledger
from minitoolai.money import nano_to_usd
from minitoolai.routing.failover import failover
from minitoolai.routing.router import Deployment, Router
from minitoolai.vision import image_tokens_floor

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
    hold_tokens: int = 0  # the hold's tokens (prompt estimate + every completion): the TPM's


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
            raise ModelNotFound(
                f"The model '{model}' does not exist or you do not have access to it. "
                f"Available: {', '.join(self.router.models()) or 'none'}."
            )
        principal.check_model(model)
        candidates = self.router.candidates(model)
        messages = request.messages
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
        tools = request.engine_tools()
        tool_choice = request.engine_tool_choice()
        # the tools' JSON, measured only when there are tools: a plain request pays nothing
        tools_chars = len(orjson.dumps(tools)) if tools else 0
        heavy = images > 0 or text_size(messages) + tools_chars > INLINE_COUNT_CHARS
        if heavy:
            await self._affordable(principal, messages, images, request, price)
        if images:
            assert self.image_resolver is not None
            image_tokens = await self.image_resolver(model, messages)
        else:
            image_tokens = 0
        if heavy:
            text_tokens, estimate = await anyio.to_thread.run_sync(
                _count, messages, tools, tool_choice, model, candidates, limiter=_TOKENIZERS
            )
        else:
            text_tokens, estimate = _count(messages, tools, tool_choice, model, candidates)
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
            tools=tools,
            tool_choice=tool_choice,
            parallel_tool_calls=request.parallel_tool_calls,
            n=request.choices,
            forwarded=request.forwarded(),
        )
        return Prepared(
            request=request,
            params=params,
            prompt_tokens=text_tokens + image_tokens,
            hold_amount=price.tokens(hold_prompt, request.completion_limit * request.choices),
            price=price,
            candidates=candidates,
            hold_tokens=hold_prompt + request.completion_limit * request.choices,
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
        messages: list[Message],
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
        least = price.tokens(floor_tokens, request.completion_limit * request.choices)
        available = await self.ledger.available(principal.account_id)
        if least > available:
            raise InsufficientCredit(
                f"Insufficient credit: this request costs at least US${nano_to_usd(least)} "
                f"and the available balance is US${nano_to_usd(available)}."
            )

    async def answer(
        self,
        principal: Principal,
        prepared: Prepared,
        idempotency: IdempotencyKey | None = None,
        *,
        whole: bool = False,
    ) -> ChatAnswer:
        """Hold the money and get a deployment answering; a replayed idempotent request is
        answered with what it was answered before (a 409 when nothing was kept).

        ``whole``: the client wants one answer, not a stream (see ``ChatEngine.complete``).
        The completion is kept for retries only when there is an idempotency key.
        """
        hold = await self.ledger.hold(
            principal.account_id,
            prepared.hold_amount,
            kind="chat",
            model=prepared.request.model,
            api_key_id=principal.key_id,
            budgets=principal.budgets,
            idempotency=idempotency,
        )
        if hold.is_replay:
            return ReplayedAnswer(hold.stored_answer())
        params = prepared.params

        def ask(engine: ChatEngine) -> AsyncIterator[ChatChunk]:
            return engine.complete(params) if whole else engine.stream(params)

        try:
            answering = await failover(
                self.router, prepared.candidates, ask, model=prepared.request.model
            )
        except BaseException:  # nobody answered, or cancelled: the client pays nothing
            with anyio.CancelScope(shield=True):
                await self.ledger.release(hold.charge_id)
            raise
        return LiveAnswer(
            self.ledger,
            hold.charge_id,
            prepared.price,
            prepared.prompt_tokens,
            answering,
            keep_result=idempotency is not None,
        )


#: Prompts above this many characters are tokenized in a thread, after the credit pre-check.
INLINE_COUNT_CHARS = 64 * 1024
#: No token of o200k/cl100k spans more characters than this (checked in the tests).
MAX_TOKEN_CHARS = 128
#: Large prompts are tokenized two at a time at most, so they cannot take every core.
_TOKENIZERS = anyio.CapacityLimiter(2)


def _count(
    messages: list[Message],
    tools: list[dict[str, Any]] | None,
    tool_choice: str | dict[str, Any] | None,
    model: str,
    candidates: list[Deployment[ChatEngine]],
) -> tuple[int, int]:
    """Our count of the prompt's tokens (text and tool definitions), and the largest any
    candidate engine would count (the hold's estimate): a local template may render the tools
    longer than their JSON."""
    text_tokens = count_messages(messages, model)
    if tools:
        text_tokens += _count_tools(tools, tool_choice, model)
    estimate = text_tokens
    for deployment in candidates:
        own = deployment.engine.estimate_prompt_tokens(messages, tools)
        if own is not None:
            estimate = max(estimate, own)
    return text_tokens, estimate


def _count_tools(
    tools: list[dict[str, Any]], tool_choice: str | dict[str, Any] | None, model: str
) -> int:
    """The tool definitions' tokens (an upper bound, ``count_tools``), and a named choice's
    (a token per byte of its JSON, at most)."""
    named = len(orjson.dumps(tool_choice)) if isinstance(tool_choice, dict) else 0
    return count_tools(tools, model) + named
