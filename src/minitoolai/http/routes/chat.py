"""The two front doors of chat: the seed's ``/api/chat-completions/`` and OpenAI's
``/v1/chat/completions``. One pipeline behind both; they differ only in defaults:

=================  ==================  ==========================================
                   seed                OpenAI
=================  ==================  ==========================================
stream             on unless false     off unless true
usage chunk        always              only with ``stream_options.include_usage``
first delta        ``{"content"}``     ``{"role": "assistant", "content"}``
=================  ==================  ==========================================
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from minitoolai.accounts.auth import Principal
from minitoolai.chat.pipeline import ChatRun, ChatService, Prepared
from minitoolai.chat.schemas import ChatRequest
from minitoolai.chat.wire import DONE, ChunkWriter, replay_events
from minitoolai.engines.errors import EngineError
from minitoolai.errors import UpstreamError
from minitoolai.http.deps import idempotency, unless_disconnected
from minitoolai.http.responses import (
    JSON,
    LARGE_BODY,
    MAX_CHAT_BODY,
    body_length,
    parse,
    read_json,
)
from minitoolai.http.routes.account import services, slashed
from minitoolai.http.sse import EventStream
from minitoolai.ledger.idempotency import IdempotencyKey


@dataclass(frozen=True, slots=True)
class Flavour:
    stream_default: bool
    usage_always: bool
    role_in_first_delta: bool


SEED = Flavour(stream_default=True, usage_always=True, role_in_first_delta=False)
OPENAI = Flavour(stream_default=False, usage_always=False, role_in_first_delta=True)


async def _events(
    run: ChatRun, flavour: Flavour, include_usage: bool, keep: bool
) -> AsyncGenerator[bytes, None]:
    writer = ChunkWriter(run.id, run.created, run.model, run.fingerprint)
    first = True
    try:
        try:
            async for chunk in run.chunks():
                delta: dict[str, Any] = {}
                if first and flavour.role_in_first_delta:
                    delta["role"] = "assistant"
                if chunk.content:
                    delta["content"] = chunk.content
                if delta:
                    first = False
                    yield writer.delta(delta)
                if chunk.finish_reason:
                    yield writer.delta({}, chunk.finish_reason)
        except EngineError as exc:  # the stream has started: the error goes inside it
            yield ChunkWriter.error(f"The model stopped mid-answer: {exc}")
            keep = False
        usage = await run.settle(keep_result=keep)
        if include_usage:
            yield writer.usage(usage)
        yield DONE
    finally:
        await run.close()


async def _collect(run: ChatRun, keep: bool) -> dict[str, Any]:
    try:
        try:
            async for _ in run.chunks():
                pass
        except EngineError as exc:
            raise UpstreamError(f"The model stopped mid-answer: {exc}") from None
        usage = await run.settle(keep_result=keep)
    finally:
        await run.close()  # bills what was generated, however this ended
    return run.completion(usage)


async def _replay(events: list[bytes]) -> AsyncGenerator[bytes, None]:
    for event in events:
        yield event


async def _handle(request: Request, flavour: Flavour) -> Response | EventStream:
    svc = services(request)
    principal = await svc.auth.authenticate(request.headers.get("authorization"))
    chat: ChatService = svc.chat
    if (body_length(request) or 0) > LARGE_BODY:
        await chat.refuse_if_nothing_available(principal)  # before reading megabytes
    body = await read_json(request, MAX_CHAT_BODY)
    chat_request = parse(ChatRequest, body)
    key = idempotency(request, body)
    stream = chat_request.stream if chat_request.stream is not None else flavour.stream_default
    include_usage = flavour.usage_always or bool(
        chat_request.stream_options and chat_request.stream_options.include_usage
    )
    prepared = await chat.prepare(principal, chat_request)
    keep = key is not None
    if not stream:  # one watch for the client over the whole answer
        return JSON(await unless_disconnected(request, _answer(chat, principal, prepared, key)))
    started = await unless_disconnected(request, chat.start(principal, prepared, key))
    if not isinstance(started, ChatRun):  # an idempotent retry: answer as before, bill nothing
        events = replay_events(started.stored_answer(), include_usage, flavour.role_in_first_delta)
        return EventStream(_replay(events))
    return EventStream(_events(started, flavour, include_usage, keep=keep))


async def _answer(
    chat: ChatService, principal: Principal, prepared: Prepared, key: IdempotencyKey | None
) -> dict[str, Any]:
    """The whole completion for a client that wants one JSON body (or the stored one)."""
    started = await chat.start(principal, prepared, key, whole=True)
    if not isinstance(started, ChatRun):  # an idempotent retry: answer as before, bill nothing
        return started.stored_answer()
    return await _collect(started, keep=key is not None)


async def seed_chat(request: Request) -> Any:
    return await _handle(request, SEED)


async def openai_chat(request: Request) -> Any:
    return await _handle(request, OPENAI)


async def list_models(request: Request) -> JSON:
    svc = services(request)
    await svc.auth.authenticate(request.headers.get("authorization"))
    chat: ChatService = svc.chat
    names = chat.router.models()
    return JSON(
        {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "minitoolai"} for n in names
            ],
        }
    )


routes = [
    *slashed("/api/chat-completions/", seed_chat, ["POST"]),
    Route("/v1/chat/completions", openai_chat, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
]
