"""A chat answer's events (``chat.events``) as a Responses API answer: OpenAI's SSE events, or
the whole ``response`` object.

One ``Output`` follows the events and decides the output items, so a stream and a whole
answer have the same items, ids and order: text opens a ``message`` item (one ``output_text``
part), each tool call a ``function_call`` item (``fc_...``, its ``call_id`` the engine's call
id) or, a custom tool's, a ``custom_tool_call`` item (``ctc_...``, its ``input``); an item
closes when the next kind begins, and all close at the finish. The usage shown is
the billed one (``Billed``). Rendering decides nothing about money: the answer settles itself,
and each renderer closes it whatever happens.

A pass-through (``responses.passthrough``) is rendered as the upstream's events, renumbered,
or its body; the response is kept before its last event is sent, as here.

A stream is ``response.created``, ``response.in_progress``, the items' events, then
``response.completed`` (``response.incomplete`` when the answer hit ``max_output_tokens``);
an engine that breaks mid-way ends it with ``error`` and ``response.failed``, still billed for
what was delivered.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel

from minitoolai.chat.answer import ChatAnswer
from minitoolai.chat.events import Billed, Delta, Failure, Finish, ToolCallDelta
from minitoolai.engines.base import Usage
from minitoolai.errors import UpstreamError
from minitoolai.responses.passthrough import (
    ENDINGS,
    KEPT,
    RelayedAnswer,
    said_and_calls,
    usage_of,
)
from minitoolai.responses.schemas import ResponsesRequest
from minitoolai.responses.service import Keep

Event = dict[str, Any]


def response_id(answer: ChatAnswer) -> str:
    """The response's id, from the answer's: an idempotent replay has the same one."""
    return "resp_" + answer.id.removeprefix("chatcmpl-")


@dataclass(slots=True)
class _Item:
    """One output item as it stands: what it has said so far, and whether it is done."""

    index: int  # output_index
    id: str
    kind: str  # "message" | "function_call" | "custom_tool_call"
    text: list[str] = field(default_factory=list)  # a message's text, a call's arguments
    call_id: str = ""
    name: str = ""
    status: str = "in_progress"  # then completed, or incomplete (cut at max_output_tokens)

    @property
    def done(self) -> bool:
        return self.status != "in_progress"

    def body(self) -> dict[str, Any]:
        if self.kind == "message":
            said = "".join(self.text)
            return {
                "id": self.id,
                "type": "message",
                "status": self.status,
                "role": "assistant",
                "content": [_text_part(said)] if said or self.done else [],
            }
        said = "input" if self.kind == "custom_tool_call" else "arguments"
        return {
            "id": self.id,
            "type": self.kind,
            "status": self.status,
            "call_id": self.call_id,
            "name": self.name,
            said: "".join(self.text),
        }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class Output:
    """The output items of one answer, built from its events; each step returns the stream
    events it makes (without ``sequence_number``)."""

    def __init__(self, base_id: str) -> None:
        self._base = base_id
        self.items: list[_Item] = []
        self._message: _Item | None = None  # the message item open now
        self._calls: dict[int, _Item] = {}  # the engine's call index -> its item
        self.finish_reason: str | None = None

    def text(self, piece: str) -> list[Event]:
        events: list[Event] = []
        if self._message is None:
            events += self._close_all()
            item = self._message = self._open("message", "msg_")
            events.append(_added(item))
            events.append(
                _part_event("response.content_part.added", item, _text_part("")),
            )
        item = self._message
        item.text.append(piece)
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": item.id,
                "output_index": item.index,
                "content_index": 0,
                "delta": piece,
                "logprobs": [],
            }
        )
        return events

    def call(self, part: ToolCallDelta) -> list[Event]:
        events: list[Event] = []
        item = self._calls.get(part.index)
        if item is None or item.done:
            if self._message is not None:
                events += self._close(self._message)
            custom = part.kind == "custom"
            kind, prefix = ("custom_tool_call", "ctc_") if custom else ("function_call", "fc_")
            item = self._calls[part.index] = self._open(kind, prefix)
            # a function_call_output answers the call by this id: never leave it empty
            item.call_id = part.id or f"call_{self._base}_{item.index}"
            item.name = part.name or ""
            events.append(_added(item))
        else:
            item.call_id = part.id or item.call_id
            item.name = part.name or item.name
        if part.arguments:
            item.text.append(part.arguments)
            events.append(
                {
                    "type": _DELTA[item.kind],
                    "item_id": item.id,
                    "output_index": item.index,
                    "delta": part.arguments,
                }
            )
        return events

    def finish(self, reason: str) -> list[Event]:
        self.finish_reason = reason
        return self._close_all()

    def _open(self, kind: str, prefix: str) -> _Item:
        item = _Item(len(self.items), f"{prefix}{self._base}_{len(self.items)}", kind)
        self.items.append(item)
        return item

    def _close_all(self) -> list[Event]:
        return [event for item in self.items if not item.done for event in self._close(item)]

    def _close(self, item: _Item) -> list[Event]:
        item.status = "incomplete" if self.finish_reason == "length" else "completed"
        whole = item.body()
        events: list[Event] = []
        if item.kind == "message":
            self._message = None
            part = whole["content"][0]
            events.append(
                {
                    "type": "response.output_text.done",
                    "item_id": item.id,
                    "output_index": item.index,
                    "content_index": 0,
                    "text": part["text"],
                    "logprobs": [],
                }
            )
            events.append(_part_event("response.content_part.done", item, part))
        elif item.kind == "custom_tool_call":
            events.append(
                {
                    "type": "response.custom_tool_call_input.done",
                    "item_id": item.id,
                    "output_index": item.index,
                    "input": whole["input"],
                }
            )
        else:
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item.id,
                    "output_index": item.index,
                    "name": item.name,
                    "arguments": whole["arguments"],
                }
            )
        events.append(
            {"type": "response.output_item.done", "output_index": item.index, "item": whole}
        )
        return events

    @property
    def status(self) -> str:
        return "incomplete" if self.finish_reason == "length" else "completed"

    def whole(self) -> list[dict[str, Any]]:
        return [item.body() for item in self.items]

    def said(self) -> str:
        return "".join(piece for i in self.items if i.kind == "message" for piece in i.text)

    def chat_calls(self) -> list[dict[str, Any]]:
        """The calls in chat's ``tool_calls`` shape, for the stored conversation."""
        calls = []
        for item in self.items:
            said = "".join(item.text)
            if item.kind == "function_call":
                function = {"name": item.name, "arguments": said}
                calls.append({"id": item.call_id, "type": "function", "function": function})
            elif item.kind == "custom_tool_call":
                custom = {"name": item.name, "input": said}
                calls.append({"id": item.call_id, "type": "custom", "custom": custom})
        return calls


#: the stream event that carries a piece of a call, by the call's item type
_DELTA = {
    "function_call": "response.function_call_arguments.delta",
    "custom_tool_call": "response.custom_tool_call_input.delta",
}


def _added(item: _Item) -> Event:
    return {
        "type": "response.output_item.added",
        "output_index": item.index,
        "item": item.body(),
    }


def _part_event(kind: str, item: _Item, part: dict[str, Any]) -> Event:
    return {
        "type": kind,
        "item_id": item.id,
        "output_index": item.index,
        "content_index": 0,
        "part": part,
    }


def response_object(
    request: ResponsesRequest,
    answer: ChatAnswer,
    *,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``response`` object, echoing the request's parameters as OpenAI does."""
    choice = request.tool_choice
    text = request.text
    return {
        "id": response_id(answer),
        "object": "response",
        "created_at": answer.created,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "metadata": request.metadata or {},
        "model": answer.model,
        "output": output,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": {
            "effort": request.reasoning.effort if request.reasoning else None,
            "summary": request.reasoning.summary if request.reasoning else None,
        },
        "service_tier": request.service_tier or "default",
        "store": request.stores,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": {
            "format": (
                text.format.model_dump(by_alias=True, exclude_none=True)
                if text and text.format
                else {"type": "text"}
            ),
            "verbosity": (text.verbosity if text else None) or "medium",
        },
        "tool_choice": (choice.model_dump() if isinstance(choice, BaseModel) else choice or "auto"),
        "tools": [tool.model_dump() for tool in request.tools or ()],
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "truncation": request.truncation or "disabled",
        "usage": usage_of(usage) if usage is not None else None,
        "user": request.user,
    }


async def whole(
    request: ResponsesRequest, answer: ChatAnswer | RelayedAnswer, keep: Keep | None
) -> dict[str, Any]:
    """The whole ``response`` object; an engine that broke half-way is a 502 (and billed)."""
    if isinstance(answer, RelayedAnswer):
        return await _relay_whole(answer, keep)
    output = Output(answer.id.removeprefix("chatcmpl-"))
    usage: Usage | None = None
    try:
        async for event in answer:
            if isinstance(event, Delta):
                output.text(event.text)
            elif isinstance(event, ToolCallDelta):
                output.call(event)
            elif isinstance(event, Finish):
                output.finish(event.reason)
            elif isinstance(event, Billed):
                usage = event.usage
            elif isinstance(event, Failure):
                raise UpstreamError(event.message)
    finally:
        await answer.aclose()
    assert usage is not None  # every answer ends with its bill
    output.finish(output.finish_reason or "stop")
    body = response_object(
        request, answer, status=output.status, output=output.whole(), usage=usage
    )
    if keep is not None:
        await keep(body, output.said(), output.chat_calls())
    return body


async def sse(
    request: ResponsesRequest, answer: ChatAnswer | RelayedAnswer, keep: Keep | None
) -> AsyncGenerator[bytes, None]:
    """OpenAI's Responses stream: every event numbered by ``sequence_number``."""
    if isinstance(answer, RelayedAnswer):
        async for chunk in _relay_sse(answer, keep):
            yield chunk
        return
    output = Output(answer.id.removeprefix("chatcmpl-"))
    sequence = 0

    def write(event: Event) -> bytes:
        nonlocal sequence
        event["sequence_number"] = sequence
        sequence += 1
        kind: bytes = event["type"].encode()
        return b"event: " + kind + b"\ndata: " + orjson.dumps(event) + b"\n\n"

    def state(status: str, usage: Usage | None = None, **kw: Any) -> dict[str, Any]:
        return response_object(
            request, answer, status=status, output=output.whole(), usage=usage, **kw
        )

    failure: Failure | None = None
    try:
        yield write({"type": "response.created", "response": state("in_progress")})
        yield write({"type": "response.in_progress", "response": state("in_progress")})
        async for event in answer:
            if isinstance(event, Delta):  # nearly every event: tested first
                for step in output.text(event.text):
                    yield write(step)
            elif isinstance(event, ToolCallDelta):
                for step in output.call(event):
                    yield write(step)
            elif isinstance(event, Finish):
                for step in output.finish(event.reason):
                    yield write(step)
            elif isinstance(event, Failure):
                failure = event
            elif isinstance(event, Billed):
                if failure is not None:
                    error = {"code": "server_error", "message": failure.message}
                    yield write({"type": "error", "param": None, **error})
                    body = state("failed", event.usage, error=error)
                    yield write({"type": "response.failed", "response": body})
                    continue
                for step in output.finish(output.finish_reason or "stop"):
                    yield write(step)
                body = state(output.status, event.usage)
                if keep is not None:
                    await keep(body, output.said(), output.chat_calls())
                kind = (
                    "response.completed" if output.status == "completed" else "response.incomplete"
                )
                yield write({"type": kind, "response": body})
    finally:
        await answer.aclose()


async def _relay_whole(answer: RelayedAnswer, keep: Keep | None) -> dict[str, Any]:
    """A pass-through's ``response`` object, as the upstream answered it (ours put back)."""
    body: dict[str, Any] | None = None
    try:
        async for event in answer:
            body = event
    finally:
        await answer.aclose()
    assert body is not None  # a whole answer is one body
    if keep is not None and body.get("status") in KEPT:
        await keep(body, *said_and_calls(body))
    return body


async def _relay_sse(answer: RelayedAnswer, keep: Keep | None) -> AsyncGenerator[bytes, None]:
    """A pass-through's events, renumbered from 0; the response is kept before the event
    that ends it is sent."""
    sequence = 0
    try:
        async for event in answer:
            kind = event.get("type")
            if keep is not None and kind in ENDINGS and event["response"].get("status") in KEPT:
                await keep(event["response"], *said_and_calls(event["response"]))
            event["sequence_number"] = sequence
            sequence += 1
            name = kind.encode() if isinstance(kind, str) else b"message"
            yield b"event: " + name + b"\ndata: " + orjson.dumps(event) + b"\n\n"
    finally:
        await answer.aclose()
