"""Chat completions: the seed's ``/api/chat-completions/`` and OpenAI's ``/v1/chat/completions``,
one request model and the same answers."""

from __future__ import annotations

from minitoolai.http.openapi.chat_tools import (
    FUNCTION,
    HISTORY_CALL,
    TOOL,
    TOOL_CALL,
    TOOL_CALL_PIECE,
    TOOL_CHOICE,
)
from minitoolai.http.openapi.common import (
    IDEMPOTENCY,
    INT,
    JSON_TYPE,
    METERED,
    SLASH_NOTE,
    SSE_TYPE,
    STR,
    Schema,
    error_responses,
    json_text,
    nullable,
    obj,
    operation,
    ref,
)

SCHEMAS: dict[str, Schema] = {
    "ChatCompletion": obj(
        {
            "id": STR,
            "object": {"const": "chat.completion"},
            "created": INT,
            "model": STR,
            "choices": {
                "type": "array",
                "items": obj(
                    {
                        "index": INT,
                        "message": obj(
                            {
                                "role": {"const": "assistant"},
                                "content": nullable(STR),
                                "tool_calls": {"type": "array", "items": TOOL_CALL},
                                "function_call": obj({"name": STR, "arguments": STR}),
                            },
                            ["role", "content"],
                        ),
                        "logprobs": nullable({"type": "object"}),
                        "finish_reason": STR,
                    }
                ),
            },
            "usage": ref("Usage"),
            "system_fingerprint": nullable(STR),
        },
        ["id", "object", "created", "model", "choices", "usage"],
    ),
    "ChatCompletionChunk": {
        **obj(
            {
                "id": STR,
                "object": {"const": "chat.completion.chunk"},
                "created": INT,
                "model": STR,
                "choices": {
                    "type": "array",
                    "items": obj(
                        {
                            "index": INT,
                            "delta": obj(
                                {
                                    "role": {"const": "assistant"},
                                    "content": STR,
                                    "tool_calls": {"type": "array", "items": TOOL_CALL_PIECE},
                                    "function_call": obj(
                                        {"name": STR, "arguments": STR}, required=[]
                                    ),
                                },
                                required=[],
                            ),
                            "logprobs": nullable({"type": "object"}),
                            "finish_reason": nullable(STR),
                        }
                    ),
                },
                "usage": nullable(ref("Usage")),
            },
            ["id", "object", "created", "model", "choices"],
        ),
        "description": "The `data:` of one Server-Sent Event. A stream is these chunks, then a "
        "usage chunk (`choices: []`), then `data: [DONE]`. A failure after the stream started "
        "arrives as a `data:` event with an `Error` object.",
    },
    "ChatEvent": {
        **obj(
            {
                "event": STR,
                "id": STR,
                "data": {
                    "anyOf": [
                        {"const": "[DONE]"},
                        json_text({"anyOf": [ref("ChatCompletionChunk"), ref("Error")]}),
                    ]
                },
            },
            ["data"],
        ),
        "description": "One Server-Sent Event of a chat stream (OpenAPI 3.1 describes each "
        "event with the media type's schema): its `data` is a `ChatCompletionChunk`, an "
        "`Error` when the answer broke off after the stream had started, or the final `[DONE]`.",
    },
    "Usage": obj(
        {
            "prompt_tokens": INT,
            "completion_tokens": INT,
            "total_tokens": INT,
            "prompt_tokens_details": {"type": "object"},
            "completion_tokens_details": {"type": "object"},
        },
        ["prompt_tokens", "completion_tokens", "total_tokens"],
    ),
}

#: what ``ChatRequest``'s validators check in code
VALIDATOR_FACTS: dict[tuple[str, str], Schema] = {
    ("ChatRequest", "tools"): nullable(
        {"type": "array", "items": TOOL, "minItems": 1, "maxItems": 128}
    ),
    ("ChatRequest", "tool_choice"): {
        **nullable(TOOL_CHOICE),
        "description": "Only with `tools`; a named tool must be one of them.",
    },
    ("Message", "tool_calls"): {
        **nullable({"type": "array", "items": HISTORY_CALL}),
        "description": "An assistant turn's calls; each `tool` message after it answers one.",
    },
    ("ChatRequest", "functions"): nullable(
        {"type": "array", "items": FUNCTION, "minItems": 1, "maxItems": 128}
    ),
    ("ChatRequest", "stop"): nullable(
        {"anyOf": [STR, {"type": "array", "items": STR, "maxItems": 4}]}
    ),
}


def _chat_ok(default_stream: bool) -> Schema:
    how = "unless `stream` is false" if default_stream else "when `stream` is true"
    return {
        "description": f"Server-Sent Events {how}, else one `chat.completion` object.",
        "content": {
            SSE_TYPE: {"schema": ref("ChatEvent")},
            JSON_TYPE: {"schema": ref("ChatCompletion")},
        },
    }


def paths() -> dict[str, Schema]:
    return {
        "/api/chat-completions/": {
            "post": operation(
                "seedChatCompletions",
                "Chat (the seed's endpoint): streams by default",
                "chat",
                {"200": _chat_ok(default_stream=True), **error_responses(METERED)},
                body="ChatRequest",
                parameters=[IDEMPOTENCY],
                description="Every stream ends with a usage chunk and `data: [DONE]`. "
                + SLASH_NOTE,
            )
        },
        "/v1/chat/completions": {
            "post": operation(
                "createChatCompletion",
                "Chat (OpenAI's endpoint): one JSON answer unless `stream` is true",
                "chat",
                {"200": _chat_ok(default_stream=False), **error_responses(METERED)},
                body="ChatRequest",
                parameters=[IDEMPOTENCY],
                description="The usage chunk is streamed only with `stream_options.include_usage`.",
            )
        },
    }
