"""A chat answer's events, rendered: as SSE (the seed's or OpenAI's) or as one JSON body.

Rendering decides nothing about money: the answer settles itself. Each renderer closes the
answer whatever happens, which is what bills a client that left half-way.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from minitoolai.chat.answer import ChatAnswer
from minitoolai.chat.events import Began, Billed, Delta, Failure, Finish
from minitoolai.chat.wire import DONE, ChunkWriter, completion
from minitoolai.engines.base import Usage
from minitoolai.errors import UpstreamError

_ROLE = {"role": "assistant"}


async def sse(
    answer: ChatAnswer, *, role_in_first_delta: bool, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    """``chat.completion.chunk`` events, then ``[DONE]``. OpenAI's flavour names the role in
    the first delta; the usage chunk comes only with ``include_usage``."""
    writer = ChunkWriter(answer.id, answer.created, answer.model, answer.fingerprint)
    owe_role = role_in_first_delta
    try:
        async for event in answer:
            if isinstance(event, Delta):  # nearly every event: tested first
                yield writer.text(event.text, with_role=owe_role)
                owe_role = False
            elif isinstance(event, Finish):
                if owe_role:
                    yield writer.delta(_ROLE)
                    owe_role = False
                yield writer.delta({}, event.reason)
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


async def whole(answer: ChatAnswer) -> dict[str, Any]:
    """One ``chat.completion``; an engine that broke half-way is a 502."""
    text: list[str] = []
    finish_reason: str | None = None
    usage: Usage | None = None
    try:
        async for event in answer:
            if isinstance(event, Delta):
                text.append(event.text)
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
    )
