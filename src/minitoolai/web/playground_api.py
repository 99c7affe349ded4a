"""The playground's JSON endpoints, for the signed-in person's own browser only.

The page holds no API key: these endpoints take the session cookie, and each request must
carry the session's CSRF token in ``X-CSRF-Token`` (a page on another site cannot read it) and,
when the browser says where it came from (``Origin``, ``Sec-Fetch-Site``), come from this site.
They call the same domain services as the API routes, with a ``Principal`` built for the
person's account without a key (``key_id`` None), so every run is held and settled exactly like
an API call and its charge shows in ``/usage``; the charge's missing key marks it as the
playground's. Errors are the API's JSON (``{"error": {"message", ...}}``) with its 4xx/5xx.

- ``POST /playground/api/chat``: the chat streamed as the seed's SSE (``chat.render``), then one
  ``playground.cost`` event with what the run was charged, then ``[DONE]``.
- ``POST /playground/api/images``: a text-to-image job (the seed's fields); ``POST
  /playground/api/images/status`` polls it, adding the cost once it has succeeded.
- ``POST /playground/api/speech``: the whole audio as a ``data:`` URL, with its cost.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from minitoolai.accounts.auth import Principal
from minitoolai.catalog import SPEECH_MEDIA_TYPES
from minitoolai.chat import render
from minitoolai.chat.schemas import ChatRequest
from minitoolai.chat.wire import DONE
from minitoolai.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from minitoolai.http.deps import services, unless_disconnected
from minitoolai.http.responses import JSON, MAX_CHAT_BODY, parse, read_json
from minitoolai.http.sse import EventStream
from minitoolai.images.schemas import JobRef, JobRequest
from minitoolai.ledger.service import Ledger
from minitoolai.money import nano_to_usd
from minitoolai.observability import REQUEST_ID
from minitoolai.people.service import Person, WebSession
from minitoolai.people.tokens import tokens_match
from minitoolai.speech.schemas import OpenAISpeechRequest
from minitoolai.web.security import secure_page
from minitoolai.web.session import current
from minitoolai.web.templating import usd

CSRF_HEADER = "x-csrf-token"
#: the prefix a playground principal shows where a key's would be (logs, errors)
PLAYGROUND_PREFIX = "playground"
#: how much audio one run may hand back in a page (a 4,096-character WAV is about 12 MB)
MAX_AUDIO = 48 * 1024 * 1024
#: the usage rows searched for the run's charge (newest first: it is among the first)
RECENT_ROWS = 100


def principal_of(person: Person) -> Principal:
    """The person's account as a caller, without a key: no model limits, no expiry (those
    belong to keys), and no key id on its charges."""
    return Principal(
        key_id=None,
        account_id=person.account_id,
        account_name=person.account_name,
        key_prefix=PLAYGROUND_PREFIX,
        allowed_models=None,
        expires_at=None,
    )


def _same_origin(request: Request) -> bool:
    """False only when the browser says the request came from another site."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's fetch: the CSRF token alone decides
    parts = urlsplit(origin)
    return parts.scheme == request.url.scheme and parts.netloc == request.url.netloc


Endpoint = Callable[[Request, WebSession], Awaitable[Response | EventStream]]


def playground_endpoint(handler: Endpoint) -> Callable[[Request], Awaitable[Any]]:
    """A session's JSON endpoint: 401 without a session, 403 without its CSRF header, from
    another origin, or for a suspended account; checked before the body is read."""

    async def endpoint(request: Request) -> Any:
        session = await current(request)
        if session is None:
            raise AuthenticationFailed(
                "Sign in first: the playground runs on your session.", code="not_signed_in"
            )
        submitted = request.headers.get(CSRF_HEADER, "")
        if not submitted or not tokens_match(session.csrf_token, submitted):
            raise PermissionDenied(
                "The CSRF token is missing or wrong; reload the page.", code="csrf_failed"
            )
        if not _same_origin(request):
            raise PermissionDenied("Cross-origin requests are refused.", code="cross_origin")
        if await services(request).account_admin.is_suspended(session.person.account_id):
            raise PermissionDenied(
                "This account is suspended; ask your operator.", code="account_suspended"
            )
        answer = await handler(request, session)
        if isinstance(answer, Response):
            return secure_page(answer)
        return answer

    return endpoint


async def _charged(
    ledger: Ledger, account_id: int, *, request_id: str | None = None, charge_id: str | None = None
) -> dict[str, Any]:
    """What the run was charged, read back from the ledger (the same row ``/usage`` shows)."""
    for row in await ledger.usage(account_id, RECENT_ROWS):
        if (charge_id is not None and row.id == charge_id) or (
            request_id is not None and row.request_id == request_id
        ):
            return {
                "cost": nano_to_usd(row.cost),
                "cost_display": usd(row.cost),
                "prompt_tokens": row.prompt_tokens,
                "completion_tokens": row.completion_tokens,
                "units": row.units,
                "estimated": row.estimated,
                "charge_status": row.status,
            }
    return {"cost": None, "cost_display": None}


# -- chat ------------------------------------------------------------------------------------


class ChatRun(BaseModel):
    """What the chat panel sends: one turn, an optional system prompt and image."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    system: str = Field(default="", max_length=100_000)
    message: str = Field(min_length=1, max_length=1_000_000)
    #: a ``data:image/...;base64,...`` URL read from the file the person picked
    image: str | None = Field(default=None, max_length=MAX_CHAT_BODY)

    def chat_request(self) -> dict[str, Any]:
        content: str | list[dict[str, Any]] = self.message
        if self.image:
            content = [
                {"type": "text", "text": self.message},
                {"type": "image_url", "image_url": {"url": self.image}},
            ]
        messages: list[dict[str, Any]] = []
        if self.system.strip():
            messages.append({"role": "system", "content": self.system})
        messages.append({"role": "user", "content": content})
        return {"model": self.model, "messages": messages, "stream": True}


def _cost_event(charged: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps({"object": "playground.cost", **charged}) + b"\n\n"


async def _with_cost(
    events: AsyncGenerator[bytes, None], ledger: Ledger, account_id: int, request_id: str | None
) -> AsyncGenerator[bytes, None]:
    """The chat's events, and before ``[DONE]`` the charge (settled once the answer closed)."""
    try:
        async for event in events:
            if event != DONE:
                yield event
    finally:
        await events.aclose()  # settles the answer before the charge is read
    yield _cost_event(await _charged(ledger, account_id, request_id=request_id))
    yield DONE


async def _chat(request: Request, session: WebSession) -> EventStream:
    svc = services(request)
    who = principal_of(session.person)
    run = parse(ChatRun, await read_json(request, MAX_CHAT_BODY))
    chat_request = parse(ChatRequest, run.chat_request())
    prepared = await svc.chat.prepare(who, chat_request)
    answer = await unless_disconnected(request, svc.chat.answer(who, prepared))
    events = render.sse(answer, role_in_first_delta=False, include_usage=True)
    return EventStream(_with_cost(events, svc.ledger, who.account_id, REQUEST_ID.get()))


chat = playground_endpoint(_chat)


# -- text-to-image ---------------------------------------------------------------------------


async def _image_job(request: Request, session: WebSession) -> Response:
    job_request = parse(JobRequest, await read_json(request))
    ticket = await services(request).images.create_job(principal_of(session.person), job_request)
    return JSON({"jobid": ticket.jobid, "signature": ticket.signature})


image_job = playground_endpoint(_image_job)


async def _image_status(request: Request, session: WebSession) -> Response:
    svc = services(request)
    ref = parse(JobRef, await read_json(request))
    job = await svc.images.find(int(ref.jobid), ref.signature)
    if job is None or job.account_id != session.person.account_id:
        raise NotFound("no job of yours with this id and signature")
    # a relative base: the image link stays on the page's own origin (img-src 'self')
    answer = await svc.images.poll(job.id, ref.signature, "")
    if answer is None:
        raise NotFound("no job of yours with this id and signature")
    if answer["status"] == "success":
        answer.update(await _charged(svc.ledger, job.account_id, charge_id=job.charge_id))
    return JSON(answer)


image_status = playground_endpoint(_image_status)


# -- speech ----------------------------------------------------------------------------------


async def _speech(request: Request, session: WebSession) -> Response:
    svc = services(request)
    body = parse(OpenAISpeechRequest, await read_json(request))
    if body.stream_format != "audio":
        raise InvalidRequest(
            "the playground takes the audio itself (stream_format 'audio')",
            param="stream_format",
        )
    params = body.params()
    audio = await unless_disconnected(
        request, svc.speech.start(principal_of(session.person), body.model, params, None)
    )
    data = bytearray()
    try:
        async for chunk in audio:
            data += chunk
            if len(data) > MAX_AUDIO:
                raise PayloadTooLarge(
                    "the audio is too long to show here; use the API for long texts"
                )
    finally:
        await audio.aclose()  # type: ignore[attr-defined]  # settles the charge
    media_type = SPEECH_MEDIA_TYPES[params.response_format]
    charged = await _charged(svc.ledger, session.person.account_id, request_id=REQUEST_ID.get())
    return JSON(
        {
            "audio": f"data:{media_type};base64,{base64.b64encode(data).decode()}",
            "media_type": media_type,
            "bytes": len(data),
            **charged,
        }
    )


speech = playground_endpoint(_speech)


routes = [
    Route("/playground/api/chat", chat, methods=["POST"]),
    Route("/playground/api/images", image_job, methods=["POST"]),
    Route("/playground/api/images/status", image_status, methods=["POST"]),
    Route("/playground/api/speech", speech, methods=["POST"]),
]
