"""OpenAI's Responses API: ``POST /v1/responses`` (one ``response`` object, or its SSE events
with ``stream: true``), ``GET`` and ``DELETE /v1/responses/{response_id}``. Answered by chat's
pipeline (``responses.service``), so it is held and settled exactly as a chat is.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from minitoolai.accounts.auth import Principal
from minitoolai.http.deps import idempotency, principal, services, unless_disconnected
from minitoolai.http.limited import admit, answered
from minitoolai.http.responses import (
    JSON,
    LARGE_BODY,
    MAX_CHAT_BODY,
    body_length,
    read_json,
)
from minitoolai.http.sse import EventStream
from minitoolai.ledger.idempotency import IdempotencyKey
from minitoolai.responses import render
from minitoolai.responses.schemas import parse_request
from minitoolai.responses.service import Staged


async def create_response(request: Request) -> Response | EventStream:
    who = await principal(request)
    service = services(request).responses
    if (body_length(request) or 0) > LARGE_BODY:
        await service.refuse_if_nothing_available(who)  # before reading megabytes
    body = await read_json(request, MAX_CHAT_BODY)
    responses_request = parse_request(body)
    key = idempotency(request, body)
    stream = bool(responses_request.stream)
    exact = services(request).limits.counts_tokens(who)
    staged = await service.prepare(who, responses_request, stream=stream, body=body, exact=exact)
    admission = await admit(request, who, tokens=staged.prepared.hold_tokens)  # before the hold
    return await answered(admission, _reply(request, who, staged, key, stream))


async def _reply(
    request: Request, who: Principal, staged: Staged, key: IdempotencyKey | None, stream: bool
) -> Response | EventStream:
    service = services(request).responses
    responses_request = staged.request
    keep = service.keeper(who, staged)

    async def whole() -> dict[str, Any]:
        answer = await service.answer(who, staged, key, whole=True)
        return await render.whole(responses_request, answer, keep)

    if not stream:  # one watch for the client over the whole answer
        return JSON(await unless_disconnected(request, whole()))
    answer = await unless_disconnected(request, service.answer(who, staged, key, whole=False))
    return EventStream(render.sse(responses_request, answer, keep))


async def retrieve_response(request: Request) -> Response:
    who = await principal(request)
    found = await services(request).responses.retrieve(who, request.path_params["response_id"])
    return JSON(found)


async def delete_response(request: Request) -> Response:
    who = await principal(request)
    deleted = await services(request).responses.delete(who, request.path_params["response_id"])
    return JSON(deleted)


routes = [
    Route("/v1/responses", create_response, methods=["POST"]),
    Route("/v1/responses/{response_id}", retrieve_response, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
]
