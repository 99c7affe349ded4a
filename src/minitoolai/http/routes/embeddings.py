"""OpenAI's ``/v1/embeddings``: JSON in, one JSON body out."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from minitoolai.accounts.auth import Principal
from minitoolai.embeddings.schemas import EmbeddingRequest
from minitoolai.embeddings.wire import body
from minitoolai.http.deps import idempotency, principal, services, unless_disconnected
from minitoolai.http.limited import admit, answered
from minitoolai.http.responses import LARGE_BODY, body_length, parse, read_json

#: 2,048 inputs of 8,192 tokens' worth of ids (300k tokens in all) fit well within this
MAX_EMBEDDINGS_BODY = 8 * 1024 * 1024
#: answers with more numbers than this are written in a thread, off the event loop
RENDER_INLINE_FLOATS = 64 * 1024


async def create_embeddings(request: Request) -> Response:
    who = await principal(request)
    service = services(request).embeddings
    if (body_length(request) or 0) > LARGE_BODY:
        await service.refuse_if_nothing_available(who)  # before reading megabytes
    data = await read_json(request, MAX_EMBEDDINGS_BODY)
    embeddings_request = parse(EmbeddingRequest, data)
    admission = await admit(request, who)  # requests and concurrency (docs/limits.md)
    return await answered(admission, _embed(request, who, embeddings_request, data))


async def _embed(
    request: Request, who: Principal, embeddings_request: EmbeddingRequest, data: Any
) -> Response:
    service = services(request).embeddings
    embedded = await unless_disconnected(
        request, service.embed(who, embeddings_request, idempotency(request, data))
    )
    if embedded.result.vectors.size > RENDER_INLINE_FLOATS:
        content = await asyncio.to_thread(body, embedded)
    else:
        content = body(embedded)
    return Response(content, media_type="application/json")


routes = [Route("/v1/embeddings", create_embeddings, methods=["POST"])]
