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

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from minitoolai.accounts.auth import Principal
from minitoolai.chat import render
from minitoolai.chat.pipeline import ChatService, Prepared
from minitoolai.chat.schemas import ChatRequest
from minitoolai.http.deps import idempotency, principal, services, slashed, unless_disconnected
from minitoolai.http.limited import admit, answered
from minitoolai.http.responses import (
    JSON,
    LARGE_BODY,
    MAX_CHAT_BODY,
    body_length,
    parse,
    read_json,
)
from minitoolai.http.sse import EventStream
from minitoolai.ledger.idempotency import IdempotencyKey


@dataclass(frozen=True, slots=True)
class Flavour:
    stream_default: bool
    usage_always: bool
    role_in_first_delta: bool


SEED = Flavour(stream_default=True, usage_always=True, role_in_first_delta=False)
OPENAI = Flavour(stream_default=False, usage_always=False, role_in_first_delta=True)


async def _handle(request: Request, flavour: Flavour) -> Response | EventStream:
    who = await principal(request)
    chat: ChatService = services(request).chat
    if (body_length(request) or 0) > LARGE_BODY:
        await chat.refuse_if_nothing_available(who)  # before reading megabytes
    body = await read_json(request, MAX_CHAT_BODY)
    chat_request = parse(ChatRequest, body)
    key = idempotency(request, body)
    stream = chat_request.stream if chat_request.stream is not None else flavour.stream_default
    include_usage = flavour.usage_always or bool(
        chat_request.stream_options and chat_request.stream_options.include_usage
    )
    exact = services(request).limits.counts_tokens(who)
    prepared = await chat.prepare(who, chat_request, exact=exact)
    admission = await admit(request, who, tokens=prepared.hold_tokens)  # before the hold
    return await answered(
        admission, _reply(request, chat, who, prepared, key, stream, include_usage, flavour)
    )


async def _reply(
    request: Request,
    chat: ChatService,
    who: Principal,
    prepared: Prepared,
    key: IdempotencyKey | None,
    stream: bool,
    include_usage: bool,
    flavour: Flavour,
) -> Response | EventStream:
    if not stream:  # one watch for the client over the whole answer
        return JSON(await unless_disconnected(request, _whole(chat, who, prepared, key)))
    answer = await unless_disconnected(request, chat.answer(who, prepared, key))
    return EventStream(
        render.sse(
            answer,
            role_in_first_delta=flavour.role_in_first_delta,
            include_usage=include_usage,
            legacy_functions=prepared.request.legacy_functions,
        )
    )


async def _whole(
    chat: ChatService, principal: Principal, prepared: Prepared, key: IdempotencyKey | None
) -> dict[str, Any]:
    """The whole completion, for a client that wants one JSON body."""
    answer = await chat.answer(principal, prepared, key, whole=True)
    return await render.whole(answer, legacy_functions=prepared.request.legacy_functions)


async def seed_chat(request: Request) -> Any:
    return await _handle(request, SEED)


async def openai_chat(request: Request) -> Any:
    return await _handle(request, OPENAI)


routes = [
    *slashed("/api/chat-completions/", seed_chat, ["POST"]),
    Route("/v1/chat/completions", openai_chat, methods=["POST"]),
]
