"""OpenAI's Responses API: ``/v1/responses`` and the stored responses by id."""

from __future__ import annotations

from minitoolai.http.openapi.common import (
    BOOL,
    IDEMPOTENCY,
    INT,
    JSON_TYPE,
    METERED,
    NUMBER,
    SSE_TYPE,
    STR,
    Schema,
    answers,
    error_responses,
    json_text,
    nullable,
    obj,
    operation,
    path_param,
    ref,
)

_ITEM_STATUS: Schema = {"enum": ["in_progress", "completed", "incomplete"]}


def _tool_call_item(kind: str, text: str) -> Schema:
    """An output item calling a tool: ``arguments`` of a function, ``input`` of a custom tool."""
    return obj(
        {
            "id": STR,
            "type": {"const": kind},
            "status": _ITEM_STATUS,
            "call_id": STR,
            "name": STR,
            text: STR,
        }
    )


#: the output items of a response (``responses.render``)
OUTPUT_ITEM: Schema = {
    "oneOf": [
        obj(
            {
                "id": STR,
                "type": {"const": "message"},
                "status": _ITEM_STATUS,
                "role": {"const": "assistant"},
                "content": {
                    "type": "array",
                    "items": obj(
                        {
                            "type": {"const": "output_text"},
                            "text": STR,
                            "annotations": {"type": "array"},
                            "logprobs": {"type": "array"},
                        }
                    ),
                },
            }
        ),
        _tool_call_item("function_call", "arguments"),
        _tool_call_item("custom_tool_call", "input"),
    ]
}
EVENT_TYPES = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.custom_tool_call_input.delta",
    "response.custom_tool_call_input.done",
    "response.output_item.done",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
]

SCHEMAS: dict[str, Schema] = {
    "Response": obj(
        {
            "id": STR,
            "object": {"const": "response"},
            "created_at": INT,
            "status": {"enum": ["completed", "incomplete", "failed", "in_progress"]},
            "error": nullable(obj({"code": STR, "message": STR})),
            "incomplete_details": nullable(obj({"reason": STR})),
            "instructions": nullable(STR),
            "max_output_tokens": nullable(INT),
            "metadata": {"type": "object"},
            "model": STR,
            "output": {"type": "array", "items": OUTPUT_ITEM},
            "parallel_tool_calls": BOOL,
            "previous_response_id": nullable(STR),
            "store": BOOL,
            "temperature": NUMBER,
            "text": {"type": "object"},
            "tool_choice": {"anyOf": [STR, {"type": "object"}]},
            "tools": {"type": "array", "items": {"type": "object"}},
            "top_p": NUMBER,
            "usage": nullable(
                obj(
                    {
                        "input_tokens": INT,
                        "input_tokens_details": obj({"cached_tokens": INT}),
                        "output_tokens": INT,
                        "output_tokens_details": obj({"reasoning_tokens": INT}),
                        "total_tokens": INT,
                    }
                )
            ),
            "user": nullable(STR),
        },
        ["id", "object", "created_at", "status", "model", "output", "usage"],
    ),
    "ResponseStreamEvent": {
        **obj(
            {
                "event": {"enum": EVENT_TYPES},
                "id": STR,
                "data": json_text(
                    obj(
                        {
                            "type": {"enum": EVENT_TYPES},
                            "sequence_number": INT,
                            "response": ref("Response"),
                        },
                        ["type", "sequence_number"],
                    )
                ),
            },
            ["event", "data"],
        ),
        "description": "One Server-Sent Event of a Responses stream, OpenAI's: `event` is "
        "the `type` of its `data`, every event numbered by `sequence_number`. A stream is "
        "`response.created`, `response.in_progress`, the output items' events, then "
        "`response.completed` (`response.incomplete` at `max_output_tokens`), or `error` and "
        "`response.failed` when the engine broke mid-way.",
    },
    "ResponseDeleted": obj(
        {"id": STR, "object": {"const": "response"}, "deleted": {"const": True}}
    ),
}

_RESPONSE_ID = path_param("response_id", "the response's id (`resp_...`)")


def paths() -> dict[str, Schema]:
    return {
        "/v1/responses": {
            "post": operation(
                "createResponse",
                "The Responses API: one `response` object unless `stream` is true",
                "responses",
                {
                    "200": {
                        "description": "Server-Sent Events when `stream` is true, else the "
                        "`response` object.",
                        "content": {
                            SSE_TYPE: {"schema": ref("ResponseStreamEvent")},
                            JSON_TYPE: {"schema": ref("Response")},
                        },
                    },
                    **error_responses(METERED),
                },
                body="ResponsesRequest",
                parameters=[IDEMPOTENCY],
                description="Answered through the chat pipeline (held and settled as a chat). "
                "Kept for `GET` and `previous_response_id` unless `store` is false.",
            )
        },
        "/v1/responses/{response_id}": {
            "get": operation(
                "getResponse",
                "A stored response of this account",
                "responses",
                answers("Response", "the response", (401, 404)),
                parameters=[_RESPONSE_ID],
            ),
            "delete": operation(
                "deleteResponse",
                "Delete a stored response of this account",
                "responses",
                answers("ResponseDeleted", "deleted", (401, 404)),
                parameters=[_RESPONSE_ID],
            ),
        },
    }
