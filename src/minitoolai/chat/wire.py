"""Chat responses on the wire: the seed's SSE chunks and OpenAI's ``chat.completion``.

Chunks are built from a byte prefix computed once per completion, so a streamed token costs
one small ``orjson.dumps`` of its text and one byte join.
"""

from __future__ import annotations

from typing import Any

import orjson

from minitoolai.engines.base import Usage
from minitoolai.errors import APIError

DONE = b"data: [DONE]\n\n"
_TEXT_TAIL = b'},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'


def usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class ChunkWriter:
    """Renders one completion's SSE events, every one sharing ``id``, ``created``, ``model``."""

    def __init__(self, completion_id: str, created: int, model: str, fingerprint: str) -> None:
        head = orjson.dumps(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": fingerprint,
            }
        )
        self._head = b"data: " + head[:-1] + b',"choices":'
        # the event of nearly every token: everything but the text, joined once
        self._text_head = self._head + b'[{"index":0,"delta":{"content":'
        self._text_role_head = self._head + b'[{"index":0,"delta":{"role":"assistant","content":'

    def text(self, text: str, with_role: bool = False) -> bytes:
        """``delta({"content": text})`` (with the role first if asked), without the dict."""
        head = self._text_role_head if with_role else self._text_head
        return head + orjson.dumps(text) + _TEXT_TAIL

    def delta(
        self,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        logprobs: dict[str, Any] | None = None,
        choice: int = 0,
    ) -> bytes:
        """One choice's delta (``choice``: its index, for answers with ``n`` > 1)."""
        opening = b'[{"index":0,"delta":' if choice == 0 else b'[{"index":%d,"delta":' % choice
        body = (
            opening
            + orjson.dumps(delta)
            + b',"logprobs":'
            + orjson.dumps(logprobs)
            + b',"finish_reason":'
        )
        finish = orjson.dumps(finish_reason)
        return self._head + body + finish + b'}],"usage":null}\n\n'

    def usage(self, usage: Usage) -> bytes:
        return self._head + b'[],"usage":' + orjson.dumps(usage_dict(usage)) + b"}\n\n"

    @staticmethod
    def error(error: APIError) -> bytes:
        """An error once the stream has started: an event in OpenAI's error shape."""
        return b"data: " + orjson.dumps(error.to_dict()) + b"\n\n"


def completion(
    completion_id: str,
    created: int,
    model: str,
    fingerprint: str,
    text: str,
    finish_reason: str | None,
    usage: Usage,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    logprobs: dict[str, Any] | None = None,
    legacy_functions: bool = False,
) -> dict[str, Any]:
    """One ``chat.completion`` of one choice (see ``choice_of``)."""
    choice = choice_of(
        0,
        text,
        finish_reason,
        tool_calls=tool_calls,
        logprobs=logprobs,
        legacy_functions=legacy_functions,
    )
    return completion_of(completion_id, created, model, fingerprint, [choice], usage)


def completion_of(
    completion_id: str,
    created: int,
    model: str,
    fingerprint: str,
    choices: list[dict[str, Any]],
    usage: Usage,
) -> dict[str, Any]:
    """One ``chat.completion`` of the given choices (``choice_of``\\ s, by index); ``usage``
    covers them all."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_dict(usage),
        "service_tier": "default",
        "system_fingerprint": fingerprint,
    }


def choice_of(
    index: int,
    text: str,
    finish_reason: str | None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    logprobs: dict[str, Any] | None = None,
    legacy_functions: bool = False,
) -> dict[str, Any]:
    """One choice of a ``chat.completion``. With tool calls and no text, ``content`` is null,
    as OpenAI answers; ``legacy_functions``: the older API's one ``function_call`` instead."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    finish_reason = finish_reason or "stop"
    if tool_calls:
        if legacy_functions:
            message["function_call"] = tool_calls[0]["function"]
            finish_reason = legacy_finish(finish_reason)
        else:
            message["tool_calls"] = tool_calls
    return {
        "index": index,
        "message": message,
        "logprobs": logprobs,
        "finish_reason": finish_reason,
    }


def legacy_finish(reason: str) -> str:
    """The older ``functions`` API names a call's finish ``function_call``."""
    return "function_call" if reason == "tool_calls" else reason
