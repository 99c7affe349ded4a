"""A small real HTTP server that speaks OpenAI's chat completions protocol.

It stands in for an upstream provider, which a user never runs from this project. Its
behaviour is set per instance (how many chunks, delays, failures) and it records what it saw,
so tests can assert "the upstream was never called" or "the upstream saw the client leave".
"""

from __future__ import annotations

import asyncio
import base64
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from minitoolai.chat.tokens import count_messages
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
    calls: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    completed: int = 0  # streams that ran to the end
    cancelled: int = 0  # streams whose client went away
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def words(self) -> list[str]:
        return [f"w{i} " for i in range(self.chunks)]

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/audio/speech", self._speech, methods=["POST"]),
            ]
        )

    async def _speech(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        with self._lock:
            self.calls += 1
            self.requests.append(body)
        if self.status != 200:
            return Response(b'{"error": {"message": "no"}}', status_code=self.status)

        async def audio():  # type: ignore[no-untyped-def]
            for i in range(3):
                yield f"audio-part-{i};".encode()

        return StreamingResponse(audio(), media_type="audio/mpeg")

    async def _chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        with self._lock:
            self.calls += 1
            self.requests.append(body)
        if self.status != 200:
            return Response(
                orjson.dumps({"error": {"message": "upstream exploded", "type": "server_error"}}),
                status_code=self.status,
                media_type="application/json",
            )
        model = body["model"] + self.model_suffix
        prompt = count_messages(body["messages"], body["model"]) + _image_tokens(body)
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 10**9
        words = self.words()[:limit]
        finish = "length" if len(self.words()) > limit else "stop"
        if not body.get("stream"):
            return Response(
                orjson.dumps(
                    {
                        "id": "chatcmpl-up",
                        "object": "chat.completion",
                        "created": 1,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "".join(words)},
                                "finish_reason": finish,
                            }
                        ],
                        "usage": {
                            "prompt_tokens": prompt,
                            "completion_tokens": len(words),
                            "total_tokens": prompt + len(words),
                        },
                    }
                ),
                media_type="application/json",
            )
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        return StreamingResponse(
            self._stream(model, words, finish, prompt, bool(include_usage)),
            media_type="text/event-stream",
        )

    async def _stream(self, model: str, words: list[str], finish: str, prompt: int, usage: bool):  # type: ignore[no-untyped-def]
        def event(data: dict[str, Any]) -> bytes:
            base = {
                "id": "chatcmpl-up",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": model,
                "system_fingerprint": "fp_up",
            }
            return b"data: " + orjson.dumps({**base, **data}) + b"\n\n"

        try:
            yield event(
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None,
                        }
                    ]
                }
            )
            for i, word in enumerate(words):
                if self.break_after is not None and i >= self.break_after:
                    raise ConnectionResetError("fake upstream drops the connection")
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                yield event(
                    {"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                )
            yield event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if usage and self.send_usage:
                yield event(
                    {
                        "choices": [],
                        "usage": {
                            "prompt_tokens": prompt,
                            "completion_tokens": len(words),
                            "total_tokens": prompt + len(words),
                        },
                    }
                )
            yield b"data: [DONE]\n\n"
            with self._lock:
                self.completed += 1
        except (asyncio.CancelledError, GeneratorExit):
            with self._lock:
                self.cancelled += 1
            raise
