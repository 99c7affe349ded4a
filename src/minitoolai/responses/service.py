"""The Responses API on chat's pipeline: a request is translated into a ``ChatRequest``
(``responses.translate``) and prepared by ``ChatService`` (the checks, the hold's size, the
candidate deployments), then answered one of two ways:

- **translated**: held, answered and settled by ``ChatService`` exactly as a chat is;
- **passed through** (``responses.passthrough``), when every candidate deployment's upstream
  speaks the Responses API itself (``[[deployments]] responses = true``): held here for the
  amount chat's prepare computed, failed over across those deployments before the first
  event (released when none answers), settled by the answer on the upstream's usage.

Either way the finished response is kept afterwards (``store``, the default) with the
conversation it ends, so that ``previous_response_id`` can continue it. No money is computed
here, and nothing here speaks HTTP or SQL.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from minitoolai.accounts.auth import Principal
from minitoolai.chat.answer import ChatAnswer, ReplayedAnswer
from minitoolai.chat.pipeline import ChatService, Prepared
from minitoolai.engines.base import ChatEngine, ResponsesEvent, responses_engine
from minitoolai.errors import NotFound
from minitoolai.ledger.idempotency import IdempotencyKey
from minitoolai.responses.passthrough import (
    PassThroughAnswer,
    RelayedAnswer,
    ReplayedResponse,
    upstream_body,
)
from minitoolai.responses.schemas import ResponsesRequest
from minitoolai.responses.store import ResponseStore
from minitoolai.responses.translate import Message, assistant_message, chat_request, messages_of
from minitoolai.routing.failover import failover

log = logging.getLogger("minitoolai.responses")

#: keeps a finished response: its body, the answer's text and its calls in chat's shape
Keep = Callable[[dict[str, Any], str, list[dict[str, Any]]], Awaitable[None]]


@dataclass(slots=True)
class Staged:
    """A Responses request ready to be answered: chat's ``Prepared``, the conversation the
    answer will end (the stored history it continues, then this turn's input), and for a
    pass-through the client's body and that history."""

    request: ResponsesRequest
    prepared: Prepared
    conversation: list[Message]
    body: dict[str, Any] = field(default_factory=dict)
    history: list[Message] = field(default_factory=list)

    @property
    def passes_through(self) -> bool:
        """Whether every deployment that may answer speaks the Responses API itself."""
        candidates = self.prepared.candidates
        return bool(candidates) and all(responses_engine(d.engine) for d in candidates)


class ResponsesService:
    def __init__(self, chat: ChatService, store: ResponseStore) -> None:
        self.chat = chat
        self.store = store

    async def prepare(
        self,
        principal: Principal,
        request: ResponsesRequest,
        *,
        stream: bool,
        body: dict[str, Any] | None = None,
        exact: bool = False,
    ) -> Staged:
        """Everything that can be a 4xx, before money moves: the conversation continued (404
        if it is not this account's), then chat's own checks. ``body``: the client's JSON
        (what a pass-through forwards); ``exact``: as ``ChatService.prepare``'s."""
        history: list[Message] = []
        previous = request.previous_response_id
        if previous is not None:
            found = await self.store.conversation(principal.account_id, previous)
            if found is None:
                raise NotFound(
                    f"Previous response with id '{previous}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            history = found
        turn = messages_of(request)
        prepared = await self.chat.prepare(
            principal, chat_request(request, history, turn, stream=stream), exact=exact
        )
        if body is None:
            body = request.model_dump(by_alias=True, exclude_none=True)
        return Staged(request, prepared, [*history, *turn], body, history)

    async def answer(
        self,
        principal: Principal,
        staged: Staged,
        idempotency: IdempotencyKey | None,
        *,
        whole: bool,
    ) -> ChatAnswer | RelayedAnswer:
        if staged.passes_through:
            return await self._pass_through(principal, staged, idempotency, whole=whole)
        return await self.chat.answer(principal, staged.prepared, idempotency, whole=whole)

    async def _pass_through(
        self,
        principal: Principal,
        staged: Staged,
        idempotency: IdempotencyKey | None,
        *,
        whole: bool,
    ) -> ChatAnswer | RelayedAnswer:
        """Hold what chat would hold, then ask the deployments' ``/responses`` in the
        router's order until one begins; nobody answering releases the hold."""
        prepared = staged.prepared
        ledger = self.chat.ledger
        model = prepared.request.model
        hold = await self.chat.hold(principal, prepared, idempotency)
        if hold.is_replay:
            stored = hold.stored_answer()
            if stored.get("object") != "response":  # kept while it was translated
                return ReplayedAnswer(stored)
            return ReplayedResponse(stored, stream=not whole)
        body = upstream_body(staged.body, staged.history, stream=not whole)

        def ask(engine: ChatEngine) -> AsyncIterator[list[ResponsesEvent]]:
            speaker = responses_engine(engine)
            assert speaker is not None  # passes_through: every candidate speaks it
            return speaker.respond(body, stream=not whole)

        try:
            answering = await failover(self.chat.router, prepared.candidates, ask, model=model)
        except BaseException:  # nobody answered, or cancelled: the client pays nothing
            with anyio.CancelScope(shield=True):
                await ledger.release(hold.charge_id)
            raise
        return PassThroughAnswer(
            ledger,
            hold.charge_id,
            prepared.price,
            prepared.counted,
            answering,
            staged.request,
            stream=not whole,
            keep_result=idempotency is not None,
        )

    def keeper(self, principal: Principal, staged: Staged) -> Keep | None:
        """What keeps the finished response, or None with ``store: false``."""
        if not staged.request.stores:
            return None

        async def keep(body: dict[str, Any], text: str, calls: list[dict[str, Any]]) -> None:
            conversation = [*staged.conversation, assistant_message(text, calls)]
            try:
                await self.store.save(principal.account_id, body, conversation)
            except Exception:  # the answer is paid for: deliver it, even if it is not kept
                log.exception("keeping response %s failed", body["id"])

        return keep

    async def refuse_if_nothing_available(self, principal: Principal) -> None:
        await self.chat.refuse_if_nothing_available(principal)

    async def retrieve(self, principal: Principal, response_id: str) -> dict[str, Any]:
        body = await self.store.body(principal.account_id, response_id)
        if body is None:
            raise _missing(response_id)
        return body

    async def delete(self, principal: Principal, response_id: str) -> dict[str, Any]:
        if not await self.store.delete(principal.account_id, response_id):
            raise _missing(response_id)
        return {"id": response_id, "object": "response", "deleted": True}


def _missing(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param="response_id")
