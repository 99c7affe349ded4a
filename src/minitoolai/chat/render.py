"""A chat answer's events, rendered: as SSE (the seed's or OpenAI's) or as one JSON body.

Rendering decides nothing about money: the answer settles itself. Each renderer closes the
answer whatever happens, which is what bills a client that left half-way.

Tool calls stream as OpenAI streams them, in the same place for both flavours: per call a
first delta ``{"tool_calls": [{"index", "id", "type": "function", "function": {"name",
"arguments": ""}}]}``, then ``{"tool_calls": [{"index", "function": {"arguments": piece}}]}``.
A custom tool's call opens with ``{"type": "custom", "custom": {"name", "input": ""}}`` and
its ``input`` follows in pieces. A client of the older ``functions`` API gets ``function_call``
deltas instead.

An answer of ``n`` > 1 choices streams each choice's deltas under its own ``index`` (the role in
each choice's first delta, in OpenAI's flavour), a finish chunk per choice, then one usage
chunk; one JSON body has every choice. The single choice's path is unchanged: its text events
are still one prebuilt byte prefix and one small ``dumps``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import Any

from minitoolai.chat.answer import ChatAnswer
from minitoolai.chat.assembly import Choices
from minitoolai.chat.events import Began, Billed, Delta, Failure, Finish, ToolCallDelta
from minitoolai.chat.wire import DONE, ChunkWriter, completion_of, legacy_finish
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
    owe_role = role_in_first_delta  # the first choice's
    greeted: set[int] = set()  # the other choices that have had their role

    def role_due(choice: int) -> bool:
        """Whether this choice's next delta must name the role (its first, in OpenAI's
        flavour); asking is taking: the next delta of that choice will not."""
        nonlocal owe_role
        if choice == 0:
            due, owe_role = owe_role, False
            return due
        if not role_in_first_delta or choice in greeted:
            return False
        greeted.add(choice)
        return True

    try:
        async for step in answer.steps():  # one body part per step: its events joined
            out: list[bytes] = []
            add = out.append
            for event in step:
                if isinstance(event, Delta):  # nearly every event: tested first
                    choice = event.choice
                    if choice == 0 and event.logprobs is None:
                        add(writer.text(event.text, owe_role))
                        owe_role = False
                        continue
                    with_role = role_due(choice)
                    text = event.text
                    delta = {**_ROLE, "content": text} if with_role else {"content": text}
                    add(writer.delta(delta, logprobs=event.logprobs, choice=choice))
                elif isinstance(event, ToolCallDelta):
                    choice = event.choice
                    for delta in _call_deltas(event, legacy_functions):
                        if role_due(choice):
                            delta = {**_ROLE, **delta}
                        add(writer.delta(delta, choice=choice))
                elif isinstance(event, Finish):
                    choice = event.choice
                    if role_due(choice):
                        add(writer.delta(_ROLE, choice=choice))
                    reason = legacy_finish(event.reason) if legacy_functions else event.reason
                    add(writer.delta({}, reason, choice=choice))
                elif isinstance(event, Began):
                    choice = event.choice
                    if role_due(choice):
                        add(writer.delta(_ROLE, choice=choice))
                elif isinstance(event, Billed):
                    if include_usage:
                        add(writer.usage(event.usage))
                elif isinstance(event, Failure):  # the stream has started: the error goes inside
                    add(ChunkWriter.error(UpstreamError(event.message)))
            if out:
                yield out[0] if len(out) == 1 else b"".join(out)
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
    if part.kind == "custom":
        if part.id:
            opening = {
                "index": part.index,
                "id": part.id,
                "type": "custom",
                "custom": {"name": part.name or "", "input": ""},
            }
            yield {"tool_calls": [opening]}
        if part.arguments:
            yield {"tool_calls": [{"index": part.index, "custom": {"input": part.arguments}}]}
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
    """One ``chat.completion`` (every choice); an engine that broke half-way is a 502."""
    choices = Choices()
    usage: Usage | None = None
    try:
        async for step in answer.steps():
            for event in step:
                if isinstance(event, Delta):
                    parts = choices.of(event.choice)
                    parts.text.append(event.text)
                    if event.logprobs is not None:
                        parts.add_logprobs(event.logprobs)
                elif isinstance(event, ToolCallDelta):
                    choices.of(event.choice).add_call(event)
                elif isinstance(event, Finish):
                    choices.of(event.choice).finish_reason = event.reason
                elif isinstance(event, Billed):
                    usage = event.usage
                elif isinstance(event, Failure):
                    raise UpstreamError(event.message)
    finally:
        await answer.aclose()
    assert usage is not None  # every answer ends with its bill
    return completion_of(
        answer.id,
        answer.created,
        answer.model,
        answer.fingerprint,
        choices.whole(legacy_functions=legacy_functions),
        usage,
    )
