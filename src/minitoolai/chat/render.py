"""A chat answer's events, rendered: as SSE (the seed's or OpenAI's) or as one JSON body.

Rendering decides nothing about money: the answer settles itself. Each renderer closes the
answer whatever happens, which is what bills a client that left half-way.

Tool calls stream as OpenAI streams them, in the same place for both flavours: per call a
first delta ``{"tool_calls": [{"index", "id", "type": "function", "function": {"name",
"arguments": ""}}]}``, then ``{"tool_calls": [{"index", "function": {"arguments": piece}}]}``.
A client of the older ``functions`` API gets ``function_call`` deltas instead.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import Any

from minitoolai.chat.answer import ChatAnswer
from minitoolai.chat.assembly import Logprobs, ToolCalls
from minitoolai.chat.events import Began, Billed, Delta, Failure, Finish, ToolCallDelta
from minitoolai.chat.wire import DONE, ChunkWriter, completion, legacy_finish
from minitoolai.engines.base import Usage
from minitoolai.errors import UpstreamError

_ROLE = {"role": "assistant"}


async def sse(
    answer: ChatAnswer,
    *,
    role_in_first_delta: bool,
    include_usage: bool,
    legacy_functions: bool = False,
) -> AsyncGenerator[bytes, None]:
    """``chat.completion.chunk`` events, then ``[DONE]``. OpenAI's flavour names the role in
    the first delta; the usage chunk comes only with ``include_usage``."""
    writer = ChunkWriter(answer.id, answer.created, answer.model, answer.fingerprint)
    owe_role = role_in_first_delta
    try:
        async for event in answer:
            if isinstance(event, Delta):  # nearly every event: tested first
                if event.logprobs is None:
                    yield writer.text(event.text, with_role=owe_role)
                else:
                    delta = (
                        {**_ROLE, "content": event.text} if owe_role else {"content": event.text}
                    )
                    yield writer.delta(delta, logprobs=event.logprobs)
                owe_role = False
            elif isinstance(event, ToolCallDelta):
                for delta in _call_deltas(event, legacy_functions):
                    if owe_role:
                        delta = {**_ROLE, **delta}
                        owe_role = False
                    yield writer.delta(delta)
            elif isinstance(event, Finish):
                if owe_role:
                    yield writer.delta(_ROLE)
                    owe_role = False
                reason = legacy_finish(event.reason) if legacy_functions else event.reason
                yield writer.delta({}, reason)
            elif isinstance(event, Began):
                if owe_role:
                    yield writer.delta(_ROLE)
                    owe_role = False
            elif isinstance(event, Billed):
                if include_usage:
                    yield writer.usage(event.usage)
            elif isinstance(event, Failure):  # the stream has started: the error goes inside
                yield ChunkWriter.error(UpstreamError(event.message))
        yield DONE
    finally:
        await answer.aclose()


def _call_deltas(part: ToolCallDelta, legacy: bool) -> Iterator[dict[str, Any]]:
    """The deltas of one piece of a call: its opening (when the piece has the id), then its
    arguments. The older API has one call, named ``function_call``, and no ids."""
    if legacy:
        if part.index != 0:
            return
        if part.name:
            yield {"function_call": {"name": part.name, "arguments": ""}}
        if part.arguments:
            yield {"function_call": {"arguments": part.arguments}}
        return
    if part.id:
        opening = {
            "index": part.index,
            "id": part.id,
            "type": "function",
            "function": {"name": part.name or "", "arguments": ""},
        }
        yield {"tool_calls": [opening]}
    if part.arguments:
        yield {"tool_calls": [{"index": part.index, "function": {"arguments": part.arguments}}]}


async def whole(answer: ChatAnswer, *, legacy_functions: bool = False) -> dict[str, Any]:
    """One ``chat.completion``; an engine that broke half-way is a 502."""
    text: list[str] = []
    calls: ToolCalls | None = None
    logprobs: Logprobs | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    try:
        async for event in answer:
            if isinstance(event, Delta):
                text.append(event.text)
                if event.logprobs is not None:
                    logprobs = logprobs or Logprobs()
                    logprobs.add(event.logprobs)
            elif isinstance(event, ToolCallDelta):
                calls = calls or ToolCalls()
                calls.add(event)
            elif isinstance(event, Finish):
                finish_reason = event.reason
            elif isinstance(event, Billed):
                usage = event.usage
            elif isinstance(event, Failure):
                raise UpstreamError(event.message)
    finally:
        await answer.aclose()
    assert usage is not None  # every answer ends with its bill
    return completion(
        answer.id,
        answer.created,
        answer.model,
        answer.fingerprint,
        "".join(text),
        finish_reason,
        usage,
        tool_calls=calls.whole() if calls else None,
        logprobs=logprobs.whole() if logprobs else None,
        legacy_functions=legacy_functions,
    )
