"""The Responses API on chat's pipeline: a request is translated into a ``ChatRequest``
(``responses.translate``), prepared, held, answered and settled by ``ChatService`` exactly as a
chat is, and kept afterwards (``store``, the default) with the conversation it ends, so that
``previous_response_id`` can continue it. No money is handled here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from minitoolai.accounts.auth import Principal
from minitoolai.chat.answer import ChatAnswer
from minitoolai.chat.pipeline import ChatService, Prepared
from minitoolai.errors import NotFound
from minitoolai.ledger.idempotency import IdempotencyKey
from minitoolai.responses.schemas import ResponsesRequest
from minitoolai.responses.store import ResponseStore
from minitoolai.responses.translate import Message, assistant_message, chat_request, messages_of

log = logging.getLogger("minitoolai.responses")

#: keeps a finished response: its body, the answer's text and its calls in chat's shape
Keep = Callable[[dict[str, Any], str, list[dict[str, Any]]], Awaitable[None]]


@dataclass(slots=True)
class Staged:
    """A Responses request ready to be answered: chat's ``Prepared``, and the conversation
    the answer will end (the stored history it continues, then this turn's input)."""

    request: ResponsesRequest
    prepared: Prepared
    conversation: list[Message]


class ResponsesService:
    def __init__(self, chat: ChatService, store: ResponseStore) -> None:
        self.chat = chat
        self.store = store

    async def prepare(
        self, principal: Principal, request: ResponsesRequest, *, stream: bool
    ) -> Staged:
        """Everything that can be a 4xx, before money moves: the conversation continued (404
        if it is not this account's), then chat's own checks."""
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
            principal, chat_request(request, history, turn, stream=stream)
        )
        return Staged(request, prepared, [*history, *turn])

    async def answer(
        self,
        principal: Principal,
        staged: Staged,
        idempotency: IdempotencyKey | None,
        *,
        whole: bool,
    ) -> ChatAnswer:
        return await self.chat.answer(principal, staged.prepared, idempotency, whole=whole)

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
