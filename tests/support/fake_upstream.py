"""A small real HTTP server that speaks OpenAI's chat completions protocol.

It stands in for an upstream provider, which a user never runs from this project. Its
behaviour is set per instance (how many chunks, delays, failures) and it records what it saw,
so tests can assert "the upstream was never called" or "the upstream saw the client leave".

Fault modes (all off by default) play a misbehaving upstream: one that echoes the credentials
it was sent, resets the connection, sends malformed events, lies about usage or goes silent.
``fault_at`` says where a stream's fault happens, counted in events already sent: 0 before any
event (the headers are out), 1 after the role-only event, ``1 + k`` after ``k`` words.

With ``tool_calls`` set it plays a model that calls tools: a conversation whose last message is
not a ``tool`` result is answered with those calls (streamed as OpenAI streams them, the
arguments in pieces of ``argument_piece`` characters), one that ends with a tool result with
the words. ``logprobs`` in a request gets a logprob per word.

A request with ``n`` > 1 is answered as OpenAI answers it: ``n`` choices (choice ``c`` says the
words with ``c{c}`` appended, so choices differ), streamed interleaved, each chunk naming its
choice's ``index``, a finish chunk per choice, then one usage that sums every choice.

``/v1/responses`` speaks OpenAI's Responses API the same way (words, or the ``tool_calls`` as
``function_call`` items when offered tools and not answering a call's output; streamed with
every event type OpenAI sends, usage in ``response.completed``; ``status``,
``reset_before_response``, ``break_after`` and ``usage_json`` apply; ``bad_event`` comes
first, ``error_event`` after ``fault_at`` words), recording each body in
``responses_requests``.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from minitoolai.chat.tokens import count_messages, count_text, count_tools
from minitoolai.vision import image_tokens, probe_image


def _image_tokens(body: dict[str, Any]) -> int:
    """What OpenAI bills for the (inlined) images of a request, by its published rules."""
    total = 0
    for message in body["messages"]:
        for part in message.get("content") if isinstance(message.get("content"), list) else []:
            if part.get("type") == "image_url":
                data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                image = probe_image(data, max_pixels=10**9)
                total += image_tokens(
                    body["model"],
                    image.width,
                    image.height,
                    part["image_url"].get("detail", "auto"),
                )
    return total


@dataclass
class FakeUpstream:
    chunks: int = 5
    delay_s: float = 0.0
    status: int = 200
    send_usage: bool = True
    break_after: int | None = None  # drop the connection after this many chunks
    model_suffix: str = "-2024-07-18"
    # fault modes
    echo_auth: bool = False  # error messages quote the Authorization header they were sent
    reset_before_response: bool = False  # reset the connection before any response byte
    fault_at: int = 0  # where a stream's fault below happens (see the module docstring)
    bad_event: bytes | None = None  # at fault_at send ``data: <this>``, then carry on
    error_event: bool = False  # at fault_at send an error event and stop (or a 200 error body)
    reset_at_fault: bool = False  # at fault_at reset the connection (RST)
    stall_s: float = 0.0  # at fault_at (non-streamed: after the headers) say nothing this long
    bad_answer: bytes | None = None  # a non-streamed answer's body, verbatim (status 200)
    usage_json: bytes | None = None  # the ``usage`` value, verbatim JSON, instead of true counts
    # calls to make: {"id", "name", "arguments"}, or a custom tool's {"type": "custom", "id",
    # "name", "input"}
    tool_calls: list[dict[str, str]] | None = None
    argument_piece: int = 4  # a streamed call's arguments come this many characters at a time
    calls: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    request_ids: list[str | None] = field(default_factory=list)  # each chat call's X-Request-Id
    responses_requests: list[dict[str, Any]] = field(default_factory=list)  # /v1/responses
    completed: int = 0  # streams that ran to the end
    cancelled: int = 0  # streams whose client went away
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def words(self, choice: int = 0) -> list[str]:
        """What choice ``choice`` says, one token per word (as the usage counts them)."""
        if choice == 0:
            return [f"w{i} " for i in range(self.chunks)]
        return [f"w{i}c{choice} " for i in range(self.chunks)]

    def app(self) -> Any:
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/responses", self._responses, methods=["POST"]),
                Route("/v1/audio/speech", self._speech, methods=["POST"]),
            ]
        )

        async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                scope.setdefault("state", {})["raw_send"] = send  # to reach the socket (resets)
            await app(scope, receive, send)

        return asgi

    def _error_message(self, request: Request, default: str) -> str:
        if self.echo_auth:
            return f"bad key: {request.headers.get('authorization')}"
        return default

    async def _stall(self, request: Request) -> None:
        """Say nothing for ``stall_s`` seconds, or until the client goes away."""
        deadline = time.monotonic() + self.stall_s
        while time.monotonic() < deadline and not await request.is_disconnected():
            await asyncio.sleep(0.02)

    async def _speech(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        with self._lock:
            self.calls += 1
            self.requests.append(body)
        if self.reset_before_response:
            _reset(request)
            return Response(b"")
        if self.status != 200:
            message = self._error_message(request, "no")
            return Response(orjson.dumps({"error": {"message": message}}), status_code=self.status)

        async def audio():  # type: ignore[no-untyped-def]
            for i in range(3):
                yield f"audio-part-{i};".encode()

        return StreamingResponse(audio(), media_type="audio/mpeg")

    async def _responses(self, request: Request) -> Response:
        """``POST /v1/responses`` as OpenAI answers it: words (or, offered tools and not
        answering a call's output, the ``tool_calls``), usage in ``response.completed`` or the
        whole body; ``status``, ``reset_before_response`` and ``break_after`` as for chat."""
        raw = await request.body()
        body = orjson.loads(raw)
        with self._lock:
            self.calls += 1
            self.responses_requests.append(body)
        if self.reset_before_response:
            _reset(request)
            return Response(b"")
        if self.status != 200:
            message = self._error_message(request, "upstream exploded")
            return Response(
                orjson.dumps({"error": {"message": message, "type": "server_error"}}),
                status_code=self.status,
                media_type="application/json",
            )
        given = body["input"]
        answering_output = isinstance(given, list) and given[-1].get("type") in (
            "function_call_output",
            "custom_tool_call_output",
        )
        calls = self.tool_calls if body.get("tools") and not answering_output else []
        limit = body.get("max_output_tokens") or 10**9
        words = [] if calls else self.words()[:limit]
        status = "incomplete" if not calls and len(self.words()) > limit else "completed"
        prompt = count_text(orjson.dumps(given).decode()) + count_text(
            body.get("instructions") or ""
        )
        if body.get("tools"):
            prompt += count_text(orjson.dumps(body["tools"]).decode())
        generated = sum(count_text(c["name"] + _call_text(c)) for c in calls) or len(words)
        usage = {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": generated,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + generated,
        }
        if self.usage_json is not None:  # a lying upstream
            usage = orjson.loads(self.usage_json)
        message = {
            "id": "msg_up",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "".join(words), "annotations": [], "logprobs": []}
            ],
        }
        items = [_call_item(i, c) for i, c in enumerate(calls)] or [message]
        response = {
            "id": "resp_upstream",
            "object": "response",
            "created_at": 1,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"}
            if status != "completed"
            else None,
            "instructions": body.get("instructions"),
            "model": body["model"] + self.model_suffix,
            "output": items,
            "parallel_tool_calls": True,
            "store": body.get("store", True),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "usage": usage,
        }
        if not body.get("stream"):
            return Response(orjson.dumps(response), media_type="application/json")
        return StreamingResponse(
            self._response_stream(response, words), media_type="text/event-stream"
        )

    async def _response_stream(  # type: ignore[no-untyped-def]
        self, response: dict[str, Any], words: list[str]
    ):
        """The Responses stream of ``response``: created, in_progress, each item's events
        (a message's text word by word, a call's arguments in pieces), then the ending."""
        sequence = 0

        def event(kind: str, **data: Any) -> bytes:
            nonlocal sequence
            data = {"type": kind, "sequence_number": sequence, **data}
            sequence += 1
            return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

        began = {**response, "status": "in_progress", "output": [], "usage": None}
        try:
            if self.bad_event is not None:  # before anything else
                yield b"data: " + self.bad_event + b"\n\n"
            yield event("response.created", response=began)
            yield event("response.in_progress", response=began)
            for index, item in enumerate(response["output"]):
                opened = {**item, "status": "in_progress"}
                if item["type"] == "message":
                    opened["content"] = []
                    yield event("response.output_item.added", output_index=index, item=opened)
                    where = {"item_id": item["id"], "output_index": index, "content_index": 0}
                    empty = {"type": "output_text", "text": "", "annotations": []}
                    yield event("response.content_part.added", **where, part=empty)
                    for i, word in enumerate(words):
                        if self.break_after is not None and i >= self.break_after:
                            raise ConnectionResetError("fake upstream drops the connection")
                        if self.error_event and i == self.fault_at:
                            message = "the model overloaded mid-answer"
                            yield event("error", code="server_error", message=message, param=None)
                            return
                        if self.delay_s:
                            await asyncio.sleep(self.delay_s)
                        yield event("response.output_text.delta", **where, delta=word, logprobs=[])
                    part = item["content"][0]
                    yield event(
                        "response.output_text.done", **where, text=part["text"], logprobs=[]
                    )
                    yield event("response.content_part.done", **where, part=part)
                else:
                    custom = item["type"] == "custom_tool_call"
                    key, kind = (
                        ("input", "custom_tool_call_input")
                        if custom
                        else (
                            "arguments",
                            "function_call_arguments",
                        )
                    )
                    opened[key] = ""
                    yield event("response.output_item.added", output_index=index, item=opened)
                    where = {"item_id": item["id"], "output_index": index}
                    text, step = item[key], self.argument_piece
                    for start in range(0, len(text), step):
                        piece = text[start : start + step]
                        yield event(f"response.{kind}.delta", **where, delta=piece)
                    named = {} if custom else {"name": item["name"]}
                    yield event(f"response.{kind}.done", **where, **named, **{key: text})
                yield event("response.output_item.done", output_index=index, item=item)
            ending = (
                "response.completed" if response["status"] == "completed" else "response.incomplete"
            )
            yield event(ending, response=response)
            with self._lock:
                self.completed += 1
        except (asyncio.CancelledError, GeneratorExit):
            with self._lock:
                self.cancelled += 1
            raise

    async def _chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        with self._lock:
            self.calls += 1
            self.requests.append(body)
            self.request_ids.append(request.headers.get("x-request-id"))
        if self.reset_before_response:
            _reset(request)
            return Response(b"")
        if self.status != 200:
            message = self._error_message(request, "upstream exploded")
            return Response(
                orjson.dumps({"error": {"message": message, "type": "server_error"}}),
                status_code=self.status,
                media_type="application/json",
            )
        model = body["model"] + self.model_suffix
        prompt = count_messages(body["messages"], body["model"]) + _image_tokens(body)
        if body.get("tools"):
            prompt += count_tools(body["tools"], body["model"])
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 10**9
        n = body.get("n") or 1
        answers = [self.words(c)[:limit] for c in range(n)]
        finish = "length" if len(self.words()) > limit else "stop"
        calls = self._calls_due(body)
        generated = n * len(answers[0])
        if calls:
            answers, finish = [[] for _ in range(n)], "tool_calls"
            generated = n * sum(count_text(c["name"] + _call_text(c)) for c in calls)
        logprobs = bool(body.get("logprobs"))
        true_usage = orjson.dumps(
            {
                "prompt_tokens": prompt,
                "completion_tokens": generated,
                "total_tokens": prompt + generated,
            }
        )
        usage_json = self.usage_json if self.usage_json is not None else true_usage
        if not body.get("stream"):
            answer = orjson.dumps(
                {
                    "id": "chatcmpl-up",
                    "object": "chat.completion",
                    "created": 1,
                    "model": model,
                    "choices": [
                        {
                            "index": c,
                            "message": _message(words, calls),
                            "logprobs": _logprobs(words) if logprobs else None,
                            "finish_reason": finish,
                        }
                        for c, words in enumerate(answers)
                    ],
                }
            )
            answer = answer[:-1] + b',"usage":' + usage_json + b"}"
            if self.bad_answer is not None:
                answer = self.bad_answer
            if self.error_event:  # a 200 whose body is an error
                message = self._error_message(request, "the model overloaded")
                answer = orjson.dumps({"error": {"message": message}})
            if not self.stall_s:
                return Response(answer, media_type="application/json")

            async def late() -> Any:
                await self._stall(request)
                yield answer

            return StreamingResponse(late(), media_type="application/json")
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        return StreamingResponse(
            self._stream(
                request, model, answers, finish, usage_json, bool(include_usage), calls, logprobs
            ),
            media_type="text/event-stream",
        )

    def _calls_due(self, body: dict[str, Any]) -> list[dict[str, str]]:
        """The calls to answer with: none once the last message is a tool's result."""
        if not self.tool_calls or not body.get("tools"):
            return []
        return [] if body["messages"][-1].get("role") == "tool" else self.tool_calls

    def _call_events(self, calls: list[dict[str, str]]) -> list[dict[str, Any]]:
        """The deltas of the calls, as OpenAI streams them: an opening, then argument pieces
        (a custom tool's call: its ``input`` in pieces)."""
        deltas: list[dict[str, Any]] = []
        for index, call in enumerate(calls):
            kind = call.get("type", "function")
            text_key = "input" if kind == "custom" else "arguments"
            opening = {"name": call["name"], text_key: ""}
            deltas.append({"index": index, "id": call["id"], "type": kind, kind: opening})
            text, step = call[text_key], self.argument_piece
            for start in range(0, len(text), step):
                piece = text[start : start + step]
                deltas.append({"index": index, kind: {text_key: piece}})
        return deltas

    async def _fault(self, request: Request) -> bytes | None:
        """The fault due now, if any: bytes to send instead of carrying on, or a stop."""
        if self.stall_s:
            await self._stall(request)
        if self.reset_at_fault:
            await asyncio.sleep(0.05)  # let the client read what was sent before the reset
            _reset(request)
            raise ConnectionResetError("fake upstream resets the connection")
        if self.error_event:
            message = self._error_message(request, "the model overloaded mid-answer")
            return b"data: " + orjson.dumps({"error": {"message": message}}) + b"\n\n"
        if self.bad_event is not None:
            return b"data: " + self.bad_event + b"\n\n"
        return None

    async def _stream(  # type: ignore[no-untyped-def]
        self,
        request: Request,
        model: str,
        answers: list[list[str]],
        finish: str,
        usage_json: bytes,
        usage: bool,
        calls: list[dict[str, str]],
        logprobs: bool,
    ):
        def event(data: dict[str, Any]) -> bytes:
            base = {
                "id": "chatcmpl-up",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "system_fingerprint": "fp_up",
            }
            return b"data: " + orjson.dumps({**base, **data}) + b"\n\n"

        faulty = any(
            (self.stall_s, self.reset_at_fault, self.error_event, self.bad_event is not None)
        )
        sent = 0

        async def fault_due() -> bytes | None:
            return await self._fault(request) if faulty and sent == self.fault_at else None

        try:
            if (bad := await fault_due()) is not None:
                yield bad
                if self.error_event:
                    return
            choices = range(len(answers))
            for c in choices:
                role = {"index": c, "delta": {"role": "assistant", "content": ""}}
                yield event({"choices": [{**role, "finish_reason": None}]})
            sent += 1
            for i in range(len(answers[0])):
                if self.break_after is not None and i >= self.break_after:
                    raise ConnectionResetError("fake upstream drops the connection")
                if (bad := await fault_due()) is not None:
                    yield bad
                    if self.error_event:
                        return
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                for c in choices:
                    word = answers[c][i]
                    choice: dict[str, Any] = {"index": c, "delta": {"content": word}}
                    if logprobs:
                        choice["logprobs"] = _logprobs([word])
                    yield event({"choices": [{**choice, "finish_reason": None}]})
                sent += 1
            for c in choices:
                for call_delta in self._call_events(calls):
                    delta = {"tool_calls": [call_delta]}
                    yield event({"choices": [{"index": c, "delta": delta, "finish_reason": None}]})
            for c in choices:
                yield event({"choices": [{"index": c, "delta": {}, "finish_reason": finish}]})
            if usage and self.send_usage:
                yield (event({"choices": []})[:-3] + b',"usage":' + usage_json + b"}\n\n")
            yield b"data: [DONE]\n\n"
            with self._lock:
                self.completed += 1
        except (asyncio.CancelledError, GeneratorExit):
            with self._lock:
                self.cancelled += 1
            raise


def _call_item(index: int, call: dict[str, str]) -> dict[str, Any]:
    """A call as a Responses output item: a ``function_call`` or a ``custom_tool_call``."""
    custom = call.get("type") == "custom"
    item = {
        "id": f"{'ctc' if custom else 'fc'}_up{index}",
        "type": "custom_tool_call" if custom else "function_call",
        "status": "completed",
        "call_id": call["id"],
        "name": call["name"],
    }
    item["input" if custom else "arguments"] = _call_text(call)
    return item


def _call_text(call: dict[str, str]) -> str:
    return call["input"] if call.get("type") == "custom" else call["arguments"]


def _message(words: list[str], calls: list[dict[str, str]]) -> dict[str, Any]:
    if not calls:
        return {"role": "assistant", "content": "".join(words)}
    tool_calls = []
    for call in calls:
        kind = call.get("type", "function")
        body = {
            "name": call["name"],
            ("input" if kind == "custom" else "arguments"): _call_text(call),
        }
        tool_calls.append({"id": call["id"], "type": kind, kind: body})
    return {"role": "assistant", "content": None, "tool_calls": tool_calls}


def _logprobs(words: list[str]) -> dict[str, Any]:
    """A made-up logprob per word (the same whole or streamed), in OpenAI's shape."""
    content = [
        {"token": w, "logprob": -len(w) / 8, "bytes": list(w.encode()), "top_logprobs": []}
        for w in words
    ]
    return {"content": content, "refusal": None}


def _reset(request: Request) -> None:
    """Reset the request's connection (RST, no goodbye), as a crashing upstream would.

    Reaches uvicorn's transport through the ``send`` callable it gave the app: test-only.
    """
    cycle = getattr(request.scope["state"]["raw_send"], "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("cannot reach the connection to reset it")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
