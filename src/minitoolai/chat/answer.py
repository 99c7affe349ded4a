"""One chat answer: who answers is known when it is returned, then its events, then its bill.

``ChatService.answer`` returns a ``ChatAnswer`` whose ``id``, ``created``, ``model`` and
``fingerprint`` are final; iterating it yields the events of ``chat.events``. A live answer
settles its own charge: on the usage the engine reported when it ends, or, when it is cut short
(client gone, engine broken half-way), on what was delivered, counted by the engine's tokenizer
and marked estimated. It keeps the finished completion with the charge for idempotent retries
only when asked to and only when nothing failed. Settling happens in its own ``finally``,
shielded from cancellation, and again in ``aclose`` for an answer nobody iterated. A replayed
answer yields the stored completion's events and bills nothing.

An answer with ``n`` > 1 choices (``ChatParams.n``) interleaves its choices' events, each
naming its ``choice``; its bill is the engine's usage (which covers every choice) or, cut
short, the prompt once plus every choice's counted tokens.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio

from minitoolai.chat.assembly import Choices
from minitoolai.chat.billing import settle_tokens
from minitoolai.chat.events import (
    BEGAN,
    Began,
    Billed,
    ChatEvent,
    Delta,
    Failure,
    Finish,
    ToolCallDelta,
)
from minitoolai.chat.wire import completion_of
from minitoolai.engines.base import ChatChunk, ChatEngine, Usage
from minitoolai.engines.errors import EngineError
from minitoolai.ids import hex_id, urlsafe_id
from minitoolai.ledger.pricing import Price
from minitoolai.ledger.service import Ledger
from minitoolai.routing.failover import Answering

log = logging.getLogger("minitoolai.chat")


class ChatAnswer:
    """An answer to one chat request. Iterate it once, by event or by ``steps()``; always
    ``aclose`` it when done."""

    def __init__(self, answer_id: str, created: int, model: str, fingerprint: str) -> None:
        self.id = answer_id
        self.created = created
        self.model = model  # what really answered, as the client is shown it
        self.fingerprint = fingerprint
        self._steps = self._run()
        self._events: AsyncGenerator[ChatEvent, None] | None = None

    def steps(self) -> AsyncIterator[list[ChatEvent]]:
        """The events that come together (those of one engine step), a list at a time: a
        renderer that writes them together pays once per step, not once per event."""
        return self._steps

    def __aiter__(self) -> AsyncIterator[ChatEvent]:
        if self._events is None:
            self._events = self._one_by_one()
        return self._events

    async def _one_by_one(self) -> AsyncGenerator[ChatEvent, None]:
        async for step in self._steps:
            for event in step:
                yield event

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.aclose()
        await self._steps.aclose()

    def _run(self) -> AsyncGenerator[list[ChatEvent], None]:
        raise NotImplementedError


class LiveAnswer(ChatAnswer):
    """An engine answering now, with the money for it held."""

    def __init__(
        self,
        ledger: Ledger,
        charge_id: str,
        price: Price,
        count_prompt: Callable[[], Awaitable[int]],
        answering: Answering[ChatEngine, list[ChatChunk]],
        *,
        keep_result: bool,
    ) -> None:
        self._ledger = ledger
        self._charge_id = charge_id
        self._price = price
        self._count_prompt = count_prompt  # our count, billed if the engine reports none
        self._served_by = answering.deployment.name
        self._engine = answering.deployment.engine
        self._first = answering.first
        self._stream = answering.rest
        self._keep_result = keep_result
        self._choices = Choices()
        self._engine_usage: Usage | None = None
        self._settled = False
        self._closed = False
        super().__init__(
            "chatcmpl-" + urlsafe_id(18),
            int(time.time()),
            self._first[0].model or self._engine.model_id,
            "fp_" + hex_id(5),
        )

    async def _run(self) -> AsyncGenerator[list[ChatEvent], None]:
        choices = self._choices
        first = choices.first
        next_step = self._stream.__anext__
        step = self._first
        failure: Failure | None = None
        try:
            while True:
                events: list[ChatEvent] = []
                add = events.append
                for chunk in step:
                    index = chunk.choice
                    parts = first if index == 0 else choices.of(index)
                    if chunk.usage is not None:  # kept for billing, never shown as it came
                        self._engine_usage = chunk.usage
                    if chunk.logprobs is not None:
                        parts.add_logprobs(chunk.logprobs)
                    if chunk.content:
                        parts.text.append(chunk.content)
                        add(Delta(chunk.content, chunk.logprobs, index))
                    elif chunk.role and not chunk.tool_calls:
                        add(BEGAN if index == 0 else Began(index))
                    if chunk.tool_calls:
                        for part in chunk.tool_calls:
                            part.choice = index  # the chunk's choice is the call's
                            parts.add_call(part)
                            add(part)
                    if chunk.finish_reason:
                        parts.finish_reason = chunk.finish_reason
                        add(Finish(chunk.finish_reason, index))
                if events:
                    yield events
                try:
                    step = await next_step()
                except StopAsyncIteration:
                    break
                except EngineError as exc:  # the answer has begun: the failure goes inside it
                    failure = Failure(f"The model stopped mid-answer: {exc}")
                    break
            if failure is not None:
                yield [failure]
            yield [Billed(await self._settle(keep_result=self._keep_result and failure is None))]
        finally:
            await self._close()

    async def aclose(self) -> None:
        await super().aclose()
        await self._close()  # an answer never iterated still settles

    async def _settle(self, *, keep_result: bool) -> Usage:
        """Charge for what was generated (once); with ``keep_result`` the completion is stored
        with the charge, so an idempotent retry is answered with it instead of billed again."""
        self._settled = True
        estimated = self._engine_usage is None
        if self._engine_usage is not None:
            usage = self._engine_usage
        else:  # the prompt once, and what each choice generated (text and calls)
            count = self._engine.count_tokens
            texts = (parts.generated_text() for parts in self._choices)
            prompt = await self._count_prompt()
            usage = Usage(prompt, sum(count(text) for text in texts if text))
        await settle_tokens(
            self._ledger,
            self._charge_id,
            self._price,
            usage,
            estimated=estimated,
            served_by=self._served_by,
            result=self._completion(usage) if keep_result else None,
        )
        return usage

    def _completion(self, usage: Usage) -> dict[str, Any]:
        return completion_of(
            self.id, self.created, self.model, self.fingerprint, self._choices.whole(), usage
        )

    async def _close(self) -> None:
        """Stop the engine and settle what is owed, even when cancelled; once."""
        if self._closed:
            return
        self._closed = True
        if self._settled:  # at the engine's end: its stream is spent, nothing to shield
            await self._end_stream()  # (an anyio shield costs ~3 us)
            return
        with anyio.CancelScope(shield=True):
            await self._end_stream()
            try:
                await self._settle(keep_result=False)
            except Exception:  # the sweeper will release the hold; log loudly
                log.exception("settling %s failed", self._charge_id)

    async def _end_stream(self) -> None:
        try:
            await self._stream.aclose()  # type: ignore[attr-defined]
        except Exception:  # a broken upstream must not block the settlement
            log.debug("closing the engine stream failed", exc_info=True)


class ReplayedAnswer(ChatAnswer):
    """An idempotent retry: the completion stored with the first request's charge, again."""

    def __init__(self, stored: dict[str, Any]) -> None:
        self._stored = stored
        super().__init__(
            stored["id"], stored["created"], stored["model"], stored.get("system_fingerprint") or ""
        )

    async def _run(self) -> AsyncGenerator[list[ChatEvent], None]:
        yield list(self._replayed())

    def _replayed(self) -> Iterator[ChatEvent]:
        for choice in self._stored["choices"]:
            index = choice.get("index", 0)
            message = choice["message"]
            if message["content"] or not message.get("tool_calls"):
                yield Delta(message["content"] or "", choice.get("logprobs"), index)
            for position, call in enumerate(message.get("tool_calls") or ()):
                kind = call.get("type", "function")
                body = call[kind]
                text = body["input"] if kind == "custom" else body["arguments"]
                yield ToolCallDelta(position, call["id"], body["name"], text, index, kind)
            yield Finish(choice["finish_reason"], index)
        usage = self._stored["usage"]
        yield Billed(
            Usage(
                usage["prompt_tokens"],
                usage["completion_tokens"],
                usage["prompt_tokens_details"]["cached_tokens"],
                usage["completion_tokens_details"]["reasoning_tokens"],
            )
        )
