"""One chat request's life: validate -> hold -> pick a deployment -> answer -> settle.

The money rules live here and in ``chat.answer``, nowhere else:
- the hold is the worst case (prompt estimate + ``max_completion_tokens`` for each of the ``n``
  choices, at the model's price: the prompt is billed once, every choice's completion) and is
  taken before any engine is called; the prompt estimate is a bound that needs no tokenizer
  (its UTF-8 length), counted exactly when a token limit or a budget applies or when the
  balance cannot cover the bound; 402 if the balance cannot cover the exact hold;
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
from minitoolai.chat import tokens
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
from minitoolai.ledger.service import Hold, Ledger
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
    """A validated request with its images resolved; nothing held yet.

    The hold's prompt is a bound (``chat.tokens.count_messages(bound=True)``: no tokenizer)
    unless the exact count was asked for (token limits and budgets count it) or made since:
    ``ChatService.hold`` counts exactly and holds again when the balance refuses the bound.
    """

    request: ChatRequest
    params: ChatParams
    price: Price
    candidates: list[Deployment[ChatEngine]]
    image_tokens: int
    #: the largest count of the prompt any candidate engine makes itself (a local template
    #: may render the tools longer than their JSON); 0 when none counts its own
    engines_estimate: int
    #: the prompt is large: counted exactly in a thread
    heavy: bool
    #: our exact count of the prompt (text and tools), once made
    text_tokens: int | None = None
    hold_amount: int = 0
    hold_tokens: int = 0  # the hold's tokens (prompt estimate + every completion): the TPM's
    bounded: bool = True  # the hold is on the prompt's bound, not on its exact count

    def hold_on(self, text_tokens: int, *, bounded: bool) -> None:
        """Make the hold the worst case with ``text_tokens`` as the text's count."""
        self.bounded = bounded
        estimate = max(text_tokens, self.engines_estimate)
        hold_prompt = math.ceil(estimate * PROMPT_MARGIN) + PROMPT_SLACK + self.image_tokens
        completions = self.request.completion_limit * self.request.choices
        self.hold_amount = self.price.tokens(hold_prompt, completions)
        self.hold_tokens = hold_prompt + completions

    async def counted(self) -> int:
        """Our exact count of the prompt (text, tools, images), made once: what is billed when
        an engine reports no usage. Counted in a thread when the prompt is large or the
        tokenizer is not loaded yet."""
        if self.text_tokens is None:
            p, model = self.params, self.request.model
            if self.heavy or not tokens.ready(tokens.encoding_name(model)):
                self.text_tokens = await anyio.to_thread.run_sync(
                    _count, p.messages, p.tools, p.tool_choice, model, limiter=_TOKENIZERS
                )
            else:
                self.text_tokens = _count(p.messages, p.tools, p.tool_choice, model)
        return self.text_tokens + self.image_tokens

    async def exact(self) -> None:
        """Count exactly (once) and hold on that count."""
        if self.bounded:
            await self.counted()
            assert self.text_tokens is not None
            self.hold_on(self.text_tokens, bounded=False)


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

    async def prepare(
        self, principal: Principal, request: ChatRequest, *, exact: bool = False
    ) -> Prepared:
        """Everything that can fail with a 4xx, before any money moves.

        ``exact``: hold on the prompt's exact count, not on its bound (the caller counts
        tokens against a limit). Work that costs (fetching images, a large prompt's exact
        count) comes after a cheap check that the account could pay for the smallest such
        request at all, and large prompts are tokenized off the event loop.
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
            bound, engines_estimate = await anyio.to_thread.run_sync(
                _estimates, messages, tools, tool_choice, model, candidates, limiter=_TOKENIZERS
            )
        else:
            bound, engines_estimate = _estimates(messages, tools, tool_choice, model, candidates)
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
        prepared = Prepared(
            request=request,
            params=params,
            price=price,
            candidates=candidates,
            image_tokens=image_tokens,
            engines_estimate=engines_estimate,
            heavy=heavy,
        )
        if exact or principal.budgets is not None:  # they count the hold's tokens
            await prepared.exact()
        else:
            prepared.hold_on(bound, bounded=True)
        return prepared

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

    async def hold(
        self, principal: Principal, prepared: Prepared, idempotency: IdempotencyKey | None
    ) -> Hold:
        """Hold the request's worst case; a bound the balance refuses is counted exactly and
        held again, so a request is refused for credit only on its exact count."""
        try:
            return await self._hold(principal, prepared, idempotency)
        except InsufficientCredit:
            if not prepared.bounded:
                raise
        await prepared.exact()
        return await self._hold(principal, prepared, idempotency)

    async def _hold(
        self, principal: Principal, prepared: Prepared, idempotency: IdempotencyKey | None
    ) -> Hold:
        return await self.ledger.hold(
            principal.account_id,
            prepared.hold_amount,
            kind="chat",
            model=prepared.request.model,
            api_key_id=principal.key_id,
            budgets=principal.budgets,
            idempotency=idempotency,
            durable=False,  # settled here, by this process: its settle flushes it
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
        hold = await self.hold(principal, prepared, idempotency)
        if hold.is_replay:
            return ReplayedAnswer(hold.stored_answer())
        params = prepared.params

        def ask(engine: ChatEngine) -> AsyncIterator[list[ChatChunk]]:
            return engine.steps(params, whole=whole)

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
            prepared.counted,
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
    *,
    bound: bool = False,
) -> int:
    """Our count of the prompt's tokens (text and tool definitions); with ``bound``, at least
    that many, with no tokenizer."""
    text_tokens = count_messages(messages, model, bound=bound)
    if tools:
        text_tokens += _count_tools(tools, tool_choice, model, bound)
    return text_tokens


def _estimates(
    messages: list[Message],
    tools: list[dict[str, Any]] | None,
    tool_choice: str | dict[str, Any] | None,
    model: str,
    candidates: list[Deployment[ChatEngine]],
) -> tuple[int, int]:
    """The prompt's bound (``_count(bound=True)``), and the largest count of it any candidate
    engine makes itself (0: none does)."""
    counts = (d.engine.estimate_prompt_tokens(messages, tools) for d in candidates)
    engines = max((own for own in counts if own is not None), default=0)
    return _count(messages, tools, tool_choice, model, bound=True), engines


def _count_tools(
    tools: list[dict[str, Any]],
    tool_choice: str | dict[str, Any] | None,
    model: str,
    bound: bool,
) -> int:
    """The tool definitions' tokens (an upper bound, ``count_tools``), and a named choice's
    (a token per byte of its JSON, at most)."""
    named = len(orjson.dumps(tool_choice)) if isinstance(tool_choice, dict) else 0
    return count_tools(tools, model, bound=bound) + named
