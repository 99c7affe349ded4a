"""Pass-through: a Responses request answered by an upstream that speaks the Responses API
itself (a deployment with ``responses = true``), its events relayed as it sent them.

What this server owns is taken out of the client's body and put back into the answer:

- ``previous_response_id`` is ours (the upstream never saw our ids): the stored conversation
  goes upstream as input items before the client's own ``input``;
- ``store``: the upstream is sent ``store: false``; we keep the response (unless the client
  said ``store: false``) and the answer echoes the client's value;
- the response's ``id`` is ours (``resp_...``: ``GET /v1/responses/{id}`` and
  ``previous_response_id`` find it here); output items keep the upstream's ids and
  ``call_id``\\ s. ``sequence_number`` is renumbered from 0 (a broken stream gets our own
  ``error`` and ``response.failed``).

The money is chat's: the hold is the translated chat request's (``ChatService.prepare``), the
settlement ``chat.billing.settle_tokens`` on the upstream's usage (``response.completed``,
``.incomplete``, ``.failed``, or the whole body), or, when the answer is cut short (client
gone, upstream broken), on the output delivered, counted by the engine's tokenizer and marked
estimated. The settle runs in this answer's ``finally``, shielded, once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import anyio

from minitoolai.chat.billing import settle_tokens
from minitoolai.engines.base import ChatEngine, ResponsesEvent, Usage, responses_engine
from minitoolai.engines.errors import EngineError
from minitoolai.ids import urlsafe_id
from minitoolai.ledger.pricing import Price
from minitoolai.ledger.service import Ledger
from minitoolai.responses.schemas import ResponsesRequest
from minitoolai.responses.translate import Message
from minitoolai.routing.failover import Answering

log = logging.getLogger("minitoolai.responses")

Event = dict[str, Any]

#: the client's fields this server answers for itself (never sent upstream as they came)
OURS = ("previous_response_id", "store")
#: the events that end a Responses stream, each with the final ``response`` and its usage
ENDINGS = frozenset({"response.completed", "response.incomplete", "response.failed"})
KEPT = frozenset({"completed", "incomplete"})


def upstream_body(raw: dict[str, Any], history: list[Message], *, stream: bool) -> dict[str, Any]:
    """The client's body as the upstream is sent it: without our fields, ``store: false``, the
    stored conversation (``history``) as input items before the client's ``input``."""
    body = {key: value for key, value in raw.items() if key not in OURS}
    if history:
        given = raw["input"]
        turn = [{"role": "user", "content": given}] if isinstance(given, str) else given
        body["input"] = [*items_of(history), *turn]
    body["store"] = False
    body["stream"] = stream
    return body


def items_of(messages: list[Message]) -> list[dict[str, Any]]:
    """A stored conversation (chat messages) as Responses input items."""
    items: list[dict[str, Any]] = []
    custom: set[str] = set()  # the ids of custom tools' calls: their outputs say so
    for message in messages:
        role = message["role"]
        if role == "tool":
            call_id = message["tool_call_id"]
            kind = "custom_tool_call_output" if call_id in custom else "function_call_output"
            items.append({"type": kind, "call_id": call_id, "output": message["content"]})
        elif role == "assistant":
            if message.get("content"):
                items.append(
                    {"type": "message", "role": "assistant", "content": message["content"]}
                )
            for call in message.get("tool_calls") or ():
                items.append(_call_item(call))
                if call.get("type") == "custom":
                    custom.add(call["id"])
        else:
            content = message["content"]
            if isinstance(content, list):
                content = [_input_part(part) for part in content]
            items.append({"type": "message", "role": role, "content": content})
    return items


def _call_item(call: dict[str, Any]) -> dict[str, Any]:
    """A chat ``tool_calls`` entry as a ``function_call`` or ``custom_tool_call`` item."""
    if call.get("type") == "custom":
        body = call["custom"]
        return {
            "type": "custom_tool_call",
            "call_id": call["id"],
            "name": body["name"],
            "input": body["input"],
        }
    function = call["function"]
    return {
        "type": "function_call",
        "call_id": call["id"],
        "name": function["name"],
        "arguments": function["arguments"],
    }


def _input_part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "image_url":
        image = part["image_url"]
        return {
            "type": "input_image",
            "image_url": image["url"],
            "detail": image.get("detail", "auto"),
        }
    return {"type": "input_text", "text": part.get("text", "")}


def said_and_calls(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """A response's text and its calls (function and custom tools', in chat's ``tool_calls``
    shape), for the conversation a next response continues."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    output = body.get("output")
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            content = item.get("content")
            for part in content if isinstance(content, list) else ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    text.append(str(part.get("text") or ""))
        elif item.get("type") in ("function_call", "custom_tool_call"):
            call_id, name = str(item.get("call_id") or ""), str(item.get("name") or "")
            if item["type"] == "function_call":
                function = {"name": name, "arguments": str(item.get("arguments") or "")}
                calls.append({"id": call_id, "type": "function", "function": function})
            else:
                custom = {"name": name, "input": str(item.get("input") or "")}
                calls.append({"id": call_id, "type": "custom", "custom": custom})
    return "".join(text), calls


def usage_of(usage: Usage) -> dict[str, Any]:
    """Usage in the Responses API's words."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


class RelayedAnswer:
    """A Responses answer as the Responses API's own events (``stream``) or one ``response``
    object. Iterate it once; always ``aclose`` it."""

    def __init__(self, response_id: str, *, stream: bool) -> None:
        self.id = response_id
        self.stream = stream
        self._events = self._run()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events

    async def aclose(self) -> None:
        await self._events.aclose()

    def _run(self) -> AsyncGenerator[Event, None]:
        raise NotImplementedError


class PassThroughAnswer(RelayedAnswer):
    """An upstream answering now, with the money for it held."""

    def __init__(
        self,
        ledger: Ledger,
        charge_id: str,
        price: Price,
        count_prompt: Callable[[], Awaitable[int]],
        answering: Answering[ChatEngine, list[ResponsesEvent]],
        request: ResponsesRequest,
        *,
        stream: bool,
        keep_result: bool,
    ) -> None:
        engine = responses_engine(answering.deployment.engine)
        assert engine is not None  # only such deployments are asked
        self._ledger = ledger
        self._charge_id = charge_id
        self._price = price
        self._count_prompt = count_prompt  # our count, billed if the upstream reports none
        self._served_by = answering.deployment.name
        self._engine = engine
        self._first = answering.first
        self._rest = answering.rest
        self._request = request
        self._keep_result = keep_result
        # the output delivered so far (billed if cut short); a whole body's is all of it
        self._said: list[str] = [event.text for event in self._first]
        self._settled = False
        self._closed = False
        super().__init__("resp_" + urlsafe_id(18), stream=stream)

    def _ours(self, body: dict[str, Any]) -> dict[str, Any]:
        """The upstream's ``response`` object with what is ours put back."""
        return {
            **body,
            "id": self.id,
            "store": self._request.stores,
            "previous_response_id": self._request.previous_response_id,
        }

    async def _run(self) -> AsyncGenerator[Event, None]:
        step = self._first
        snapshot: dict[str, Any] = {"id": self.id, "object": "response"}
        delivered: list[Any] = []  # output items done so far, for a failed response
        failure: str | None = None
        try:
            while True:
                for event in step:
                    data = event.data
                    if event.kind == "response":  # a whole body: the one event
                        body = self._ours(data)
                        await self._bill(body, event.usage)
                        yield body
                        return
                    if isinstance(data.get("response"), dict):
                        data["response"] = snapshot = self._ours(data["response"])
                    if event.kind == "response.output_item.done":
                        delivered.append(data.get("item"))
                    if event.kind in ENDINGS:
                        await self._bill(data["response"], event.usage)
                        yield data
                        return
                    yield data
                try:
                    step = await anext(self._rest)
                    self._said.extend(event.text for event in step)
                except StopAsyncIteration:
                    failure = "The model's stream ended before its response did."
                    break
                except EngineError as exc:  # the answer has begun: the failure goes inside it
                    failure = f"The model stopped mid-answer: {exc}"
                    break
            usage = await self._estimate()
            await self._settle(usage, estimated=True)
            error = {"code": "server_error", "message": failure}
            yield {"type": "error", "param": None, **error}
            failed = {
                **snapshot,
                "status": "failed",
                "error": error,
                "output": delivered,
                "usage": usage_of(usage),
            }
            yield {"type": "response.failed", "response": failed}
        finally:
            await self._close()

    async def _bill(self, body: dict[str, Any], usage: Usage | None) -> None:
        """Settle on the upstream's usage (ours, estimated, when it sent none to believe)
        and show what was charged."""
        estimated = usage is None
        if usage is None:
            usage = await self._estimate()
            body["usage"] = usage_of(usage)
        keep = self._keep_result and body.get("status") in KEPT
        await self._settle(usage, estimated=estimated, result=body if keep else None)

    async def _estimate(self) -> Usage:
        """Our prompt count, and the output delivered by the engine's tokenizer."""
        prompt = await self._count_prompt()
        return Usage(prompt, self._engine.count_tokens("".join(self._said)))

    async def _settle(
        self, usage: Usage, *, estimated: bool, result: dict[str, Any] | None = None
    ) -> None:
        self._settled = True
        await settle_tokens(
            self._ledger,
            self._charge_id,
            self._price,
            usage,
            estimated=estimated,
            served_by=self._served_by,
            result=result,
        )

    async def aclose(self) -> None:
        await super().aclose()
        await self._close()  # an answer never iterated still settles

    async def _close(self) -> None:
        """Stop the upstream and settle what is owed, even when cancelled; once."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            try:
                await self._rest.aclose()  # type: ignore[attr-defined]
            except Exception:  # a broken upstream must not block the settlement
                log.debug("closing the upstream's stream failed", exc_info=True)
            if not self._settled:
                # a whole body had arrived (the client left before it was sent): its usage
                first = self._first[0]
                whole = first.usage if first.kind == "response" else None
                try:
                    if whole is not None:
                        await self._settle(whole, estimated=False)
                    else:
                        await self._settle(await self._estimate(), estimated=True)
                except Exception:  # the sweeper will release the hold; log loudly
                    log.exception("settling %s failed", self._charge_id)


class ReplayedResponse(RelayedAnswer):
    """An idempotent retry of a pass-through: the response kept with the first request's
    charge, again (streamed as its ``response.created`` and ``response.completed``)."""

    def __init__(self, stored: dict[str, Any], *, stream: bool) -> None:
        self._stored = stored
        super().__init__(str(stored.get("id")), stream=stream)

    async def _run(self) -> AsyncGenerator[Event, None]:
        body = self._stored
        if not self.stream:
            yield body
            return
        began = {**body, "status": "in_progress", "output": [], "usage": None}
        yield {"type": "response.created", "response": began}
        kind = "response.completed" if body.get("status") == "completed" else "response.incomplete"
        yield {"type": kind, "response": body}
