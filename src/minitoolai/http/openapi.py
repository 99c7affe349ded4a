"""``GET /openapi.json``: the OpenAPI 3.1 document of every public path, both wire formats.

Request bodies are the pydantic models the handlers validate with (``model_json_schema``), so
the document cannot drift from validation; what a ``field_validator`` checks in code (the image
model and scheduler names, the ``size`` pattern, at most 4 ``stop`` sequences) is added from
the same constants. Responses are built as plain dicts on the hot path, so their schemas are
written here by hand; ``tests/api`` checks both against the running server (schemathesis).

The document is built once, on the first request, and served as cached bytes.
"""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from minitoolai.catalog import (
    IMAGE_MEDIA_TYPES,
    IMAGE_MODELS,
    IMAGE_SCHEDULERS,
    IMAGE_SIZE_RANGE,
    SPEECH_MEDIA_TYPES,
)
from minitoolai.chat.schemas import ChatRequest
from minitoolai.codes.schemas import RedeemRequest
from minitoolai.embeddings.schemas import EmbeddingRequest
from minitoolai.http.responses import MAX_BODY
from minitoolai.http.routes.admin import (
    AlertBody,
    BudgetBody,
    LimitsBody,
    NewAccount,
    NewCodes,
    NewKey,
    Usd,
)
from minitoolai.images.schemas import JobRef, JobRequest, OpenAIImageRequest
from minitoolai.responses.schemas import ResponsesRequest
from minitoolai.settings import DEFAULT_OPENAI_IMAGE_MODELS
from minitoolai.speech.schemas import OpenAISpeechRequest, SeedSpeechRequest

Schema = dict[str, Any]

JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream"

REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    ChatRequest,
    JobRequest,
    JobRef,
    OpenAIImageRequest,
    OpenAISpeechRequest,
    SeedSpeechRequest,
    EmbeddingRequest,
    ResponsesRequest,
    NewAccount,
    AlertBody,
    Usd,
    NewKey,
    NewCodes,
    RedeemRequest,
    LimitsBody,
    BudgetBody,
)

#: HTTP status -> what it means here (the descriptions of the error responses).
STATUS_TEXT = {
    400: "Invalid request: the body, a parameter or a header is wrong (`param` names it).",
    401: "Missing or invalid key.",
    402: "Insufficient credit: the account cannot cover the request's hold.",
    403: "Forbidden: this key may not use this model, or the signed link is wrong or expired.",
    404: "Not found: no such model, account, key, job or file.",
    409: "Conflict: a request with this Idempotency-Key is still in progress, or the name "
    "already exists, or the job had already ended.",
    413: f"The request body is over {MAX_BODY} bytes.",
    429: "Busy: a local engine's queue is full. Retry after `Retry-After` seconds.",
    502: "The upstream provider or engine failed (nothing is charged for what was not served).",
    503: "No deployment serves this model right now, or a dependency is down.",
}

#: the statuses each kind of path can answer, besides its success
METERED = (400, 401, 402, 403, 404, 409, 413, 429, 502, 503)
SIGNED_JOB = (400, 404, 413)
ADMIN_WRITE = (400, 401, 404, 409, 413)


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
#: a function a client offers the model (``chat.schemas.FunctionDefinition``), as a tool
FUNCTION: Schema = {
    **_obj(
        {
            "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
            "description": _nullable(STR),
            "parameters": _nullable({"type": "object"}),
            "strict": _nullable({"type": "boolean"}),
        },
        required=["name"],
    ),
    "additionalProperties": False,
}
FUNCTION_TOOL: Schema = {
    **_obj({"type": {"const": "function"}, "function": FUNCTION}),
    "additionalProperties": False,
}
#: a custom tool a client offers the model (``chat.schemas.CustomDefinition``): its input is
#: free text, or what a grammar allows
CUSTOM: Schema = {
    **_obj(
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 64},
            "description": _nullable(STR),
            "format": _nullable(
                {
                    "oneOf": [
                        {**_obj({"type": {"const": "text"}}), "additionalProperties": False},
                        {
                            **_obj(
                                {
                                    "type": {"const": "grammar"},
                                    "grammar": {
                                        **_obj(
                                            {
                                                "definition": STR,
                                                "syntax": {"enum": ["lark", "regex"]},
                                            }
                                        ),
                                        "additionalProperties": False,
                                    },
                                }
                            ),
                            "additionalProperties": False,
                        },
                    ]
                }
            ),
        },
        required=["name"],
    ),
    "additionalProperties": False,
}
CUSTOM_TOOL: Schema = {
    **_obj({"type": {"const": "custom"}, "custom": CUSTOM}),
    "additionalProperties": False,
}
#: a tool of a chat request (``chat.schemas.Tool``): a function or a custom tool
TOOL: Schema = {"oneOf": [FUNCTION_TOOL, CUSTOM_TOOL]}


def _named(kind: str) -> Schema:
    """A tool named by kind: ``{"type": "function", "function": {"name"}}`` (or custom)."""
    name: Schema = {**_obj({"name": STR}), "additionalProperties": False}
    return {**_obj({"type": {"const": kind}, kind: name}), "additionalProperties": False}


#: chat's ``tool_choice`` (``chat.schemas.ToolChoice``): a mode, a named function, a named
#: custom tool, or every tool offered but only ``allowed_tools`` callable
TOOL_CHOICE: Schema = {
    "anyOf": [
        {"type": "string", "enum": ["none", "auto", "required"]},
        _named("function"),
        _named("custom"),
        {
            **_obj(
                {
                    "type": {"const": "allowed_tools"},
                    "allowed_tools": {
                        **_obj(
                            {
                                "mode": {"enum": ["auto", "required"]},
                                "tools": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": 128,
                                    "items": {"oneOf": [_named("function"), _named("custom")]},
                                },
                            }
                        ),
                        "additionalProperties": False,
                    },
                }
            ),
            "additionalProperties": False,
        },
    ]
}
#: a call of an assistant turn in a request's history (``chat.schemas.ToolCall``)
HISTORY_CALL: Schema = {
    "oneOf": [
        {
            **_obj(
                {
                    "id": STR,
                    "type": {"const": kind},
                    kind: {**_obj({"name": STR, text: STR}), "additionalProperties": False},
                }
            ),
            "additionalProperties": False,
        }
        for kind, text in (("function", "arguments"), ("custom", "input"))
    ]
}
#: a tool call in an answer, and a piece of one in a stream (the first has id, type and name):
#: a function's (``arguments``) or a custom tool's (``input``)
TOOL_CALL: Schema = {
    "oneOf": [
        _obj({"id": STR, "type": {"const": kind}, kind: _obj({"name": STR, text: STR})})
        for kind, text in (("function", "arguments"), ("custom", "input"))
    ]
}
TOOL_CALL_PIECE: Schema = _obj(
    {
        "index": INT,
        "id": STR,
        "type": {"enum": ["function", "custom"]},
        "function": _obj({"name": STR, "arguments": STR}, required=[]),
        "custom": _obj({"name": STR, "input": STR}, required=[]),
    },
    required=["index"],
)
USD: Schema = {
    "type": "string",
    "pattern": r"^-?\d+(\.\d{9})?$",
    "description": "US dollars as an exact decimal string, e.g. `4.999995950`.",
}
TIME: Schema = {"type": "string", "format": "date-time"}
#: how an amount is written in a request (the validators also take numbers and exponents)
USD_IN = r"^\d{1,10}(\.\d{1,9})?$"

USAGE: Schema = _obj(
    {
        "prompt_tokens": INT,
        "completion_tokens": INT,
        "total_tokens": INT,
        "prompt_tokens_details": {"type": "object"},
        "completion_tokens_details": {"type": "object"},
    },
    ["prompt_tokens", "completion_tokens", "total_tokens"],
)

NUMBER: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
#: the output items of a response (``responses.render``)
RESPONSE_MESSAGE: Schema = _obj(
    {
        "id": STR,
        "type": {"const": "message"},
        "status": {"enum": ["in_progress", "completed", "incomplete"]},
        "role": {"const": "assistant"},
        "content": {
            "type": "array",
            "items": _obj(
                {
                    "type": {"const": "output_text"},
                    "text": STR,
                    "annotations": {"type": "array"},
                    "logprobs": {"type": "array"},
                }
            ),
        },
    }
)
RESPONSE_FUNCTION_CALL: Schema = _obj(
    {
        "id": STR,
        "type": {"const": "function_call"},
        "status": {"enum": ["in_progress", "completed", "incomplete"]},
        "call_id": STR,
        "name": STR,
        "arguments": STR,
    }
)
RESPONSE_CUSTOM_TOOL_CALL: Schema = _obj(
    {
        "id": STR,
        "type": {"const": "custom_tool_call"},
        "status": {"enum": ["in_progress", "completed", "incomplete"]},
        "call_id": STR,
        "name": STR,
        "input": STR,
    }
)
RESPONSE_EVENT_TYPES = [
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

RESPONSE_SCHEMAS: dict[str, Schema] = {
    "Error": {
        **_obj(
            {
                "error": _obj(
                    {
                        "message": STR,
                        "type": STR,
                        "param": _nullable(STR),
                        "code": _nullable(STR),
                    }
                )
            }
        ),
        "description": "Every error outside the seed's image job API, as OpenAI words them.",
    },
    "SeedJobSubmitted": _obj(
        {"status": {"const": "success"}, "jobid": INT, "signature": STR},
    ),
    "SeedJobSubmitError": _obj(
        {
            "status": {"const": "error"},
            "jobid": {"type": "null"},
            "signature": {"type": "null"},
            "message": STR,
        }
    ),
    "SeedJobStatus": {
        **_obj(
            {
                "status": {"enum": ["pending", "processing", "success", "error", "cancelled"]},
                "image_url": _nullable({"type": "string", "format": "uri"}),
                "message": STR,
                "queue_position": INT,
                "progress": {"type": "number", "minimum": 0, "maximum": 1},
                "seed": _nullable(INT),
            },
            ["status", "image_url", "message"],
        ),
        "description": "A job's state: `image_url` is set once `status` is `success`. Errors of "
        "the poll and cancel calls have this shape too, with `status` `error`.",
    },
    "ChatCompletion": _obj(
        {
            "id": STR,
            "object": {"const": "chat.completion"},
            "created": INT,
            "model": STR,
            "choices": {
                "type": "array",
                "items": _obj(
                    {
                        "index": INT,
                        "message": _obj(
                            {
                                "role": {"const": "assistant"},
                                "content": _nullable(STR),
                                "tool_calls": {"type": "array", "items": TOOL_CALL},
                                "function_call": _obj({"name": STR, "arguments": STR}),
                            },
                            ["role", "content"],
                        ),
                        "logprobs": _nullable({"type": "object"}),
                        "finish_reason": STR,
                    }
                ),
            },
            "usage": _ref("Usage"),
            "system_fingerprint": _nullable(STR),
        },
        ["id", "object", "created", "model", "choices", "usage"],
    ),
    "ChatCompletionChunk": {
        **_obj(
            {
                "id": STR,
                "object": {"const": "chat.completion.chunk"},
                "created": INT,
                "model": STR,
                "choices": {
                    "type": "array",
                    "items": _obj(
                        {
                            "index": INT,
                            "delta": _obj(
                                {
                                    "role": {"const": "assistant"},
                                    "content": STR,
                                    "tool_calls": {"type": "array", "items": TOOL_CALL_PIECE},
                                    "function_call": _obj(
                                        {"name": STR, "arguments": STR}, required=[]
                                    ),
                                },
                                required=[],
                            ),
                            "logprobs": _nullable({"type": "object"}),
                            "finish_reason": _nullable(STR),
                        }
                    ),
                },
                "usage": _nullable(_ref("Usage")),
            },
            ["id", "object", "created", "model", "choices"],
        ),
        "description": "The `data:` of one Server-Sent Event. A stream is these chunks, then a "
        "usage chunk (`choices: []`), then `data: [DONE]`. A failure after the stream started "
        "arrives as a `data:` event with an `Error` object.",
    },
    "ChatEvent": {
        **_obj(
            {
                "event": STR,
                "id": STR,
                "data": {
                    "anyOf": [
                        {"const": "[DONE]"},
                        {
                            "type": "string",
                            "contentMediaType": JSON_TYPE,
                            "contentSchema": {
                                "anyOf": [_ref("ChatCompletionChunk"), _ref("Error")]
                            },
                        },
                    ]
                },
            },
            ["data"],
        ),
        "description": "One Server-Sent Event of a chat stream (OpenAPI 3.1 describes each "
        "event with the media type's schema): its `data` is a `ChatCompletionChunk`, an "
        "`Error` when the answer broke off after the stream had started, or the final `[DONE]`.",
    },
    "Usage": USAGE,
    "Response": _obj(
        {
            "id": STR,
            "object": {"const": "response"},
            "created_at": INT,
            "status": {"enum": ["completed", "incomplete", "failed", "in_progress"]},
            "error": _nullable(_obj({"code": STR, "message": STR})),
            "incomplete_details": _nullable(_obj({"reason": STR})),
            "instructions": _nullable(STR),
            "max_output_tokens": _nullable(INT),
            "metadata": {"type": "object"},
            "model": STR,
            "output": {
                "type": "array",
                "items": {
                    "oneOf": [RESPONSE_MESSAGE, RESPONSE_FUNCTION_CALL, RESPONSE_CUSTOM_TOOL_CALL]
                },
            },
            "parallel_tool_calls": BOOL,
            "previous_response_id": _nullable(STR),
            "store": BOOL,
            "temperature": NUMBER,
            "text": {"type": "object"},
            "tool_choice": {"anyOf": [STR, {"type": "object"}]},
            "tools": {"type": "array", "items": {"type": "object"}},
            "top_p": NUMBER,
            "usage": _nullable(
                _obj(
                    {
                        "input_tokens": INT,
                        "input_tokens_details": _obj({"cached_tokens": INT}),
                        "output_tokens": INT,
                        "output_tokens_details": _obj({"reasoning_tokens": INT}),
                        "total_tokens": INT,
                    }
                )
            ),
            "user": _nullable(STR),
        },
        ["id", "object", "created_at", "status", "model", "output", "usage"],
    ),
    "ResponseStreamEvent": {
        **_obj(
            {
                "event": {"enum": RESPONSE_EVENT_TYPES},
                "id": STR,
                "data": {
                    "type": "string",
                    "contentMediaType": JSON_TYPE,
                    "contentSchema": _obj(
                        {
                            "type": {"enum": RESPONSE_EVENT_TYPES},
                            "sequence_number": INT,
                            "response": _ref("Response"),
                        },
                        ["type", "sequence_number"],
                    ),
                },
            },
            ["event", "data"],
        ),
        "description": "One Server-Sent Event of a Responses stream, OpenAI's: `event` is "
        "the `type` of its `data`, every event numbered by `sequence_number`. A stream is "
        "`response.created`, `response.in_progress`, the output items' events, then "
        "`response.completed` (`response.incomplete` at `max_output_tokens`), or `error` and "
        "`response.failed` when the engine broke mid-way.",
    },
    "ResponseDeleted": _obj(
        {"id": STR, "object": {"const": "response"}, "deleted": {"const": True}}
    ),
    "EmbeddingList": _obj(
        {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": _obj(
                    {
                        "object": {"const": "embedding"},
                        "index": INT,
                        "embedding": {
                            "anyOf": [{"type": "array", "items": {"type": "number"}}, STR],
                            "description": "floats, or base64 of little-endian float32",
                        },
                    }
                ),
            },
            "model": STR,
            "usage": _obj({"prompt_tokens": INT, "total_tokens": INT}),
        }
    ),
    "Model": _obj(
        {
            "id": STR,
            "object": {"const": "model"},
            "created": INT,
            "owned_by": {"const": "minitoolai"},
        }
    ),
    "ModelList": _obj(
        {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("Model")}}
    ),
    "ImagesResponse": _obj(
        {
            "created": INT,
            "data": {
                "type": "array",
                "items": _obj(
                    {
                        "url": {"type": "string", "format": "uri"},
                        "b64_json": STR,
                    },
                    [],
                ),
            },
        }
    ),
    "SpeechAudioEvent": {
        "oneOf": [
            _obj({"type": {"const": "speech.audio.delta"}, "audio": STR}),
            _obj(
                {
                    "type": {"const": "speech.audio.done"},
                    "usage": _obj({"input_tokens": INT, "output_tokens": INT, "total_tokens": INT}),
                }
            ),
        ],
    },
    "SpeechEvent": {
        **_obj(
            {
                "event": STR,
                "id": STR,
                "data": {
                    "type": "string",
                    "contentMediaType": JSON_TYPE,
                    "contentSchema": _ref("SpeechAudioEvent"),
                },
            },
            ["data"],
        ),
        "description": "One Server-Sent Event of `stream_format: sse` speech: its `data` is a "
        "`speech.audio.delta` (a piece of the audio, base64) or, last, `speech.audio.done`.",
    },
    "Balance": _obj(
        {
            "object": {"const": "balance"},
            "currency": {"const": "USD"},
            "balance": USD,
            "held": USD,
            "available": USD,
        }
    ),
    "UsageList": _obj(
        {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": _obj(
                    {
                        "id": STR,
                        "object": {"const": "usage"},
                        "kind": {"enum": ["chat", "image", "speech"]},
                        "model": STR,
                        "served_by": _nullable(STR),
                        "status": STR,
                        "prompt_tokens": _nullable(INT),
                        "completion_tokens": _nullable(INT),
                        "units": _nullable(INT),
                        "estimated": {"type": "boolean"},
                        "cost": USD,
                        "created_at": TIME,
                        "request_id": _nullable(STR),
                    }
                ),
            },
        }
    ),
    "Health": _obj({"status": {"enum": ["ok", "error"]}, "database": STR}),
    "Account": _obj(
        {
            "object": {"const": "account"},
            "name": STR,
            "balance": USD,
            "held": USD,
            "available": USD,
            "created_at": TIME,
        }
    ),
    "AccountDetail": {
        "allOf": [
            _ref("Account"),
            _obj(
                {
                    "open_holds": INT,
                    "recent_entries": {
                        "type": "array",
                        "items": _obj(
                            {
                                "kind": STR,
                                "amount": USD,
                                "held": USD,
                                "request": _nullable(STR),
                                "note": _nullable(STR),
                                "created_at": TIME,
                            }
                        ),
                    },
                }
            ),
        ]
    },
    "AccountList": _obj(
        {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("Account")}}
    ),
    "AccountCreated": _obj(
        {"account": _ref("Account"), "api_key": {**STR, "description": "shown once"}}
    ),
    "ApiKey": _obj(
        {
            "object": {"const": "api_key"},
            "account": STR,
            "prefix": STR,
            "name": _nullable(STR),
            "allowed_models": _nullable({"type": "array", "items": STR}),
            "created_at": TIME,
            "expires_at": _nullable(TIME),
            "revoked": {"type": "boolean"},
            "budgets": _ref("Budgets"),
        }
    ),
    # spend budgets in USD, null: none (docs/billing.md, "Budgets")
    "Budgets": _obj({p: _nullable(STR) for p in ("daily", "monthly", "total")}),
    "AccountBudget": {
        "allOf": [
            _obj({"object": {"const": "account_budget"}, "account": STR}),
            _ref("Budgets"),
        ]
    },
    "ApiKeyCreated": {
        "allOf": [_ref("ApiKey"), _obj({"api_key": {**STR, "description": "shown once"}})]
    },
    "RateLimits": _obj(
        {
            "object": {"const": "rate_limits"},
            "account": STR,
            "key": {**_nullable(STR), "description": "the key's prefix; null: the account's"},
            **{
                name: {**_nullable({"type": "integer", "minimum": 1}), "description": what}
                for name, what in (
                    ("rpm", "requests per minute"),
                    ("tpm", "tokens per minute"),
                    ("ipm", "images per minute"),
                    ("max_concurrent", "requests in flight"),
                )
            },
        }
    ),
    "ApiKeyList": _obj(
        {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("ApiKey")}}
    ),
    "BalanceAlert": {
        "oneOf": [
            _obj(
                {
                    "object": {"const": "balance_alert"},
                    "account": STR,
                    "below": USD,
                    "email": BOOL,
                    "webhook_url": _nullable(STR),
                    "armed": BOOL,
                    "alerted_at": _nullable(TIME),
                }
            ),
            _obj({"object": {"const": "balance_alert"}, "account": STR, "deleted": BOOL}),
        ]
    },
    "ApiKeyRevoked": _obj(
        {"object": {"const": "api_key"}, "prefix": STR, "revoked": {"const": True}}
    ),
    "Redemption": _obj(
        {
            "object": {"const": "redemption"},
            "amount": USD,
            "batch": {**STR, "description": "the code's batch (the ledger entry names it)"},
            "balance": {**USD, "description": "the account's balance after the credit"},
        }
    ),
    "CodeBatch": _obj(
        {
            "object": {"const": "code_batch"},
            "id": STR,
            "amount": USD,
            "count": INT,
            "redeemed": INT,
            "expires_at": _nullable(TIME),
            "note": _nullable(STR),
            "created_by": STR,
            "created_at": TIME,
        }
    ),
    "CodeBatchCreated": _obj(
        {
            "object": {"const": "code_batch"},
            "id": STR,
            "amount": USD,
            "count": INT,
            "expires_at": _nullable(TIME),
            "note": _nullable(STR),
            "created_by": STR,
            "created_at": TIME,
            "codes": {"type": "array", "items": STR, "description": "shown once"},
        }
    ),
    "AuditEntry": _obj(
        {
            "object": {"const": "audit_entry"},
            "id": INT,
            "created_at": TIME,
            "actor": {**STR, "description": "`cli`, `admin-api`, or the admin's email"},
            "action": STR,
            "target": _nullable(STR),
            "details": {"type": "object"},
        }
    ),
    "AuditList": _obj(
        {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("AuditEntry")}}
    ),
    "CodeBatchList": _obj(
        {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("CodeBatch")}}
    ),
    "CodeBatchDetail": {
        "allOf": [
            _ref("CodeBatch"),
            _obj(
                {
                    "redemptions": {
                        "type": "array",
                        "items": _obj(
                            {
                                "code": {**STR, "description": "`MTAI-...-` and its last 4"},
                                "last4": STR,
                                "account": STR,
                                "redeemed_at": TIME,
                            }
                        ),
                    }
                }
            ),
        ]
    },
}

#: what field validators check in code, stated from the same constants
VALIDATOR_FACTS: dict[tuple[str, str], Schema] = {
    ("EmbeddingRequest", "input"): {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
            {"type": "array", "minItems": 1, "items": INT},
            {
                "type": "array",
                "minItems": 1,
                "items": {"type": "array", "minItems": 1, "items": INT},
            },
        ],
        "description": "A string, an array of strings, an array of token ids, or an array of "
        "token-id arrays (at most 2,048 inputs); every item of one kind.",
    },
    ("JobRequest", "model"): {"type": "string", "enum": list(IMAGE_MODELS)},
    ("JobRequest", "scheduler"): _nullable({"type": "string", "enum": list(IMAGE_SCHEDULERS)}),
    ("OpenAIImageRequest", "model"): {
        "type": "string",
        "maxLength": 200,
        "default": "realvision",
        "examples": [*IMAGE_MODELS, *DEFAULT_OPENAI_IMAGE_MODELS],
        "description": "One of the image models, or an OpenAI name that the operator's "
        "`[openai_image_models]` maps to one (by default "
        f"{', '.join(DEFAULT_OPENAI_IMAGE_MODELS)}); any other name is a 404 `model_not_found`.",
    },
    ("OpenAIImageRequest", "size"): {
        "type": "string",
        "pattern": r"^(\d{3,4}x\d{3,4}|auto)$",
        "default": "1024x1024",
        "description": f"WIDTHxHEIGHT, each {IMAGE_SIZE_RANGE[0]} to {IMAGE_SIZE_RANGE[1]}, "
        "or `auto` (1024x1024).",
    },
    ("JobRef", "jobid"): {
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
            {"type": "string", "pattern": r"^\s*\d{1,20}\s*$"},
        ],
        "description": "The job id from the submit answer, as a number or a string of digits.",
    },
    ("Usd", "amount"): {
        "type": "string",
        "pattern": USD_IN,
        "description": "A positive amount of US dollars as a decimal string (at most 9 "
        "decimals), e.g. `10` or `0.5`.",
    },
    ("NewCodes", "amount"): {
        "type": "string",
        "pattern": USD_IN,
        "description": "What each code credits, in US dollars as a positive decimal string (at "
        "most 9 decimals).",
    },
    ("AlertBody", "below"): _nullable(
        {
            "type": "string",
            "pattern": USD_IN,
            "description": "Alert when the available balance goes below this many US dollars "
            "(a positive decimal string, at most 9 decimals); `null` removes the alert.",
        }
    ),
    ("NewAccount", "credit"): {
        "type": "string",
        "pattern": USD_IN,
        "default": "0",
        "description": "The first top-up in US dollars as a decimal string (at most 9 "
        "decimals); `0` for none.",
    },
    ("ChatRequest", "tools"): _nullable(
        {"type": "array", "items": TOOL, "minItems": 1, "maxItems": 128}
    ),
    ("ChatRequest", "tool_choice"): {
        **_nullable(TOOL_CHOICE),
        "description": "Only with `tools`; a named tool must be one of them.",
    },
    ("Message", "tool_calls"): {
        **_nullable({"type": "array", "items": HISTORY_CALL}),
        "description": "An assistant turn's calls; each `tool` message after it answers one.",
    },
    ("ChatRequest", "functions"): _nullable(
        {"type": "array", "items": FUNCTION, "minItems": 1, "maxItems": 128}
    ),
    ("ChatRequest", "stop"): _nullable(
        {"anyOf": [STR, {"type": "array", "items": STR, "maxItems": 4}]}
    ),
}


def request_schemas() -> dict[str, Schema]:
    """The request models' JSON Schemas (draft 2020-12, as OpenAPI 3.1 uses), by class name."""
    _, top = models_json_schema(
        [(model, "validation") for model in REQUEST_MODELS],
        ref_template="#/components/schemas/{model}",
    )
    defs: dict[str, Schema] = top["$defs"]
    for (model, field), schema in VALIDATOR_FACTS.items():
        prop = defs[model]["properties"][field]
        title = prop.get("title")
        prop.clear()
        prop.update(schema)
        if title:
            prop["title"] = title
    return defs


# -- operations ---------------------------------------------------------------------------------


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON_TYPE: {"schema": schema}}}


#: a rate limit's headers (docs/limits.md): on its 429, and on every answer of a limited key
RATE_LIMIT_HEADERS: dict[str, Schema] = {
    f"x-ratelimit-{what}-{kind}": {"description": f"{what} ({kind}; docs/limits.md)", "schema": STR}
    for kind in ("requests", "tokens")
    for what in ("limit", "remaining", "reset")
}


def _errors(codes: tuple[int, ...], schema: Schema | None = None) -> dict[str, Schema]:
    body = schema or _ref("Error")
    out: dict[str, Schema] = {}
    for code in codes:
        response = _json(body, STATUS_TEXT[code])
        if code == 429:
            response["headers"] = {
                "Retry-After": {"description": "seconds to wait", "schema": INT},
                **RATE_LIMIT_HEADERS,
            }
        out[str(code)] = response
    return out


def _body(name: str) -> Schema:
    return {"required": True, "content": {JSON_TYPE: {"schema": _ref(name)}}}


IDEMPOTENCY: Schema = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retrying with the same key and body answers as before and bills once.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}
BEARER: list[Schema] = [{"apiKey": []}]
ADMIN: list[Schema] = [{"adminKey": []}]
NO_AUTH: list[Schema] = []


def _op(
    op_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Schema],
    *,
    security: list[Schema] = BEARER,
    body: str | None = None,
    parameters: list[Schema] | None = None,
    description: str | None = None,
) -> Schema:
    op: Schema = {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "security": security,
        "responses": responses,
    }
    if description:
        op["description"] = description
    if body:
        op["requestBody"] = _body(body)
    if parameters:
        op["parameters"] = parameters
    return op


SLASH_NOTE = "The same path without the trailing slash answers the same."


def _chat_ok(default_stream: bool) -> Schema:
    how = "unless `stream` is false" if default_stream else "when `stream` is true"
    return {
        "description": f"Server-Sent Events {how}, else one `chat.completion` object.",
        "content": {
            SSE_TYPE: {"schema": _ref("ChatEvent")},
            JSON_TYPE: {"schema": _ref("ChatCompletion")},
        },
    }


def _path_param(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }


def paths() -> dict[str, Schema]:
    seed_error = _ref("SeedJobSubmitError")
    job_status = _ref("SeedJobStatus")
    audio_types: dict[str, Schema] = {
        media: {"schema": {"type": "string", "format": "binary"}}
        for media in dict.fromkeys(SPEECH_MEDIA_TYPES.values())
    }
    audio = {
        "description": "The audio, streamed as it is made; `response_format` picks the type.",
        "content": audio_types,
    }
    speech_audio = {
        "description": "The audio, streamed as it is made; `response_format` picks the type, "
        "or with `stream_format: sse` Server-Sent Events carrying it.",
        "content": {**audio_types, SSE_TYPE: {"schema": _ref("SpeechEvent")}},
    }
    name = _path_param("name", "the account's name")
    return {
        "/api/chat-completions/": {
            "post": _op(
                "seedChatCompletions",
                "Chat (the seed's endpoint): streams by default",
                "chat",
                {"200": _chat_ok(default_stream=True), **_errors(METERED)},
                body="ChatRequest",
                parameters=[IDEMPOTENCY],
                description="Every stream ends with a usage chunk and `data: [DONE]`. "
                + SLASH_NOTE,
            )
        },
        "/v1/chat/completions": {
            "post": _op(
                "createChatCompletion",
                "Chat (OpenAI's endpoint): one JSON answer unless `stream` is true",
                "chat",
                {"200": _chat_ok(default_stream=False), **_errors(METERED)},
                body="ChatRequest",
                parameters=[IDEMPOTENCY],
                description="The usage chunk is streamed only with `stream_options.include_usage`.",
            )
        },
        "/v1/responses": {
            "post": _op(
                "createResponse",
                "The Responses API: one `response` object unless `stream` is true",
                "responses",
                {
                    "200": {
                        "description": "Server-Sent Events when `stream` is true, else the "
                        "`response` object.",
                        "content": {
                            SSE_TYPE: {"schema": _ref("ResponseStreamEvent")},
                            JSON_TYPE: {"schema": _ref("Response")},
                        },
                    },
                    **_errors(METERED),
                },
                body="ResponsesRequest",
                parameters=[IDEMPOTENCY],
                description="Answered through the chat pipeline (held and settled as a chat). "
                "Kept for `GET` and `previous_response_id` unless `store` is false.",
            )
        },
        "/v1/responses/{response_id}": {
            "get": _op(
                "getResponse",
                "A stored response of this account",
                "responses",
                {"200": _json(_ref("Response"), "the response"), **_errors((401, 404))},
                parameters=[_path_param("response_id", "the response's id (`resp_...`)")],
            ),
            "delete": _op(
                "deleteResponse",
                "Delete a stored response of this account",
                "responses",
                {"200": _json(_ref("ResponseDeleted"), "deleted"), **_errors((401, 404))},
                parameters=[_path_param("response_id", "the response's id (`resp_...`)")],
            ),
        },
        "/v1/models": {
            "get": _op(
                "listModels",
                "Every model this server sells: chat, images, speech, embeddings",
                "chat",
                {"200": _json(_ref("ModelList"), "the models"), **_errors((401,))},
            )
        },
        "/v1/models/{model}": {
            "get": _op(
                "retrieveModel",
                "One model, or 404 `model_not_found`",
                "chat",
                {"200": _json(_ref("Model"), "the model"), **_errors((401, 404))},
                parameters=[_path_param("model", "the model's name")],
            )
        },
        "/api/texttoimage/": {
            "post": _op(
                "seedSubmitImageJob",
                "Submit a text-to-image job (the seed's job API)",
                "images",
                {
                    "200": _json(_ref("SeedJobSubmitted"), "the job id and its signature"),
                    **_errors(METERED, seed_error),
                },
                body="JobRequest",
                parameters=[IDEMPOTENCY],
                description="Errors answer `{status: error, jobid: null, signature: null, "
                "message}` with the status code. " + SLASH_NOTE,
            )
        },
        "/api/texttoimage/jobs/": {
            "post": _op(
                "seedPollImageJob",
                "A job's state and, once done, its image URL (no key: the signature is "
                "the credential)",
                "images",
                {"200": _json(job_status, "the job's state"), **_errors(SIGNED_JOB, job_status)},
                security=NO_AUTH,
                body="JobRef",
                description=SLASH_NOTE,
            )
        },
        "/api/texttoimage/jobs/cancel/": {
            "post": _op(
                "seedCancelImageJob",
                "Cancel a queued or running job; nothing is charged",
                "images",
                {
                    "200": _json(job_status, "cancelled"),
                    **_errors((*SIGNED_JOB, 409), job_status),
                },
                security=NO_AUTH,
                body="JobRef",
                description="409 with the job's state when it had already ended. " + SLASH_NOTE,
            )
        },
        "/v1/images/generations": {
            "post": _op(
                "createImage",
                "Generate images (OpenAI's API, on the same jobs); waits for them",
                "images",
                {"200": _json(_ref("ImagesResponse"), "the images"), **_errors(METERED)},
                body="OpenAIImageRequest",
                parameters=[IDEMPOTENCY],
            )
        },
        "/files/images/{name}": {
            "get": _op(
                "getImageFile",
                "A generated image, by the signed URL a job answered",
                "images",
                {
                    "200": {
                        "description": "the image",
                        "content": {
                            media: {"schema": {"type": "string", "format": "binary"}}
                            for media in IMAGE_MEDIA_TYPES.values()
                        },
                    },
                    **_errors((403, 404)),
                },
                security=NO_AUTH,
                parameters=[
                    _path_param("name", "the file name in the URL"),
                    {"name": "exp", "in": "query", "required": True, "schema": STR},
                    {"name": "sig", "in": "query", "required": True, "schema": STR},
                ],
            )
        },
        "/v1/embeddings": {
            "post": _op(
                "createEmbeddings",
                "Embeddings (OpenAI's API); offline from all-MiniLM-L6-v2",
                "embeddings",
                {"200": _json(_ref("EmbeddingList"), "the vectors"), **_errors(METERED)},
                body="EmbeddingRequest",
                parameters=[IDEMPOTENCY],
            )
        },
        "/v1/audio/speech": {
            "post": _op(
                "createSpeech",
                "Text to speech (OpenAI's API)",
                "speech",
                {"200": speech_audio, **_errors(METERED)},
                body="OpenAISpeechRequest",
                parameters=[IDEMPOTENCY],
            )
        },
        "/api/texttospeech/": {
            "post": _op(
                "seedSpeech",
                "Text to speech in the seed's naming style (camelCase)",
                "speech",
                {"200": audio, **_errors(METERED)},
                body="SeedSpeechRequest",
                parameters=[IDEMPOTENCY],
                description=SLASH_NOTE,
            )
        },
        "/api/balance/": {
            "get": _op(
                "getBalance",
                "The account's balance, what is held by requests in flight, and what is left",
                "account",
                {"200": _json(_ref("Balance"), "the balance"), **_errors((401,))},
                description=SLASH_NOTE,
            )
        },
        "/api/usage/": {
            "get": _op(
                "listUsage",
                "Recent charged requests, newest first",
                "account",
                {"200": _json(_ref("UsageList"), "the requests"), **_errors((401,))},
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "how many (clamped to 1-500; a non-number means 50)",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    }
                ],
                description=SLASH_NOTE,
            )
        },
        "/healthz": {
            "get": _op(
                "health",
                "Whether the database answers",
                "operations",
                {
                    "200": _json(_ref("Health"), "healthy"),
                    "503": _json(_ref("Health"), "the database is unreachable"),
                },
                security=NO_AUTH,
            )
        },
        "/metrics": {
            "get": _op(
                "metrics",
                "Prometheus metrics (the admin key, or MINITOOLAI_METRICS_TOKEN)",
                "operations",
                {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": STR}},
                    },
                    **_errors((401,)),
                },
                security=ADMIN,
            )
        },
        "/openapi.json": {
            "get": _op(
                "openapi",
                "This document",
                "operations",
                {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                security=NO_AUTH,
            )
        },
        "/admin/accounts": {
            "get": _op(
                "adminListAccounts",
                "List accounts",
                "admin",
                {"200": _json(_ref("AccountList"), "the accounts"), **_errors((401,))},
                security=ADMIN,
            ),
            "post": _op(
                "adminCreateAccount",
                "Create an account and its first key",
                "admin",
                {
                    "201": _json(_ref("AccountCreated"), "created; the key is shown once"),
                    **_errors(ADMIN_WRITE),
                },
                security=ADMIN,
                body="NewAccount",
            ),
        },
        "/admin/accounts/{name}": {
            "get": _op(
                "adminShowAccount",
                "An account: balance, held, open holds, recent ledger entries",
                "admin",
                {"200": _json(_ref("AccountDetail"), "the account"), **_errors((401, 404))},
                security=ADMIN,
                parameters=[name],
            )
        },
        "/admin/accounts/{name}/credit": {
            "post": _op(
                "adminAddCredit",
                "Top up an account",
                "admin",
                {"200": _json(_ref("Account"), "the account after"), **_errors(ADMIN_WRITE)},
                security=ADMIN,
                body="Usd",
                parameters=[name],
            )
        },
        "/admin/accounts/{name}/alert": {
            "put": _op(
                "adminSetAlert",
                "Set (or remove) the account's low-balance alert",
                "admin",
                {"200": _json(_ref("BalanceAlert"), "the alert now"), **_errors(ADMIN_WRITE)},
                security=ADMIN,
                body="AlertBody",
                parameters=[name],
                description="One email to the owner and/or one webhook POST when the available "
                "balance goes below `below`; re-armed when it is back above (docs/billing.md).",
            )
        },
        "/admin/accounts/{name}/keys": {
            "get": _op(
                "adminListKeys",
                "The account's keys (prefixes only)",
                "admin",
                {"200": _json(_ref("ApiKeyList"), "the keys"), **_errors((401, 404))},
                security=ADMIN,
                parameters=[name],
            ),
            "post": _op(
                "adminCreateKey",
                "A new key for the account, shown once",
                "admin",
                {"201": _json(_ref("ApiKeyCreated"), "created"), **_errors(ADMIN_WRITE)},
                security=ADMIN,
                body="NewKey",
                parameters=[name],
            ),
        },
        "/admin/keys/{prefix}": {
            "delete": _op(
                "adminRevokeKey",
                "Revoke the one live key starting with `prefix` (at least 8 characters)",
                "admin",
                {"200": _json(_ref("ApiKeyRevoked"), "revoked"), **_errors((400, 401, 404, 409))},
                security=ADMIN,
                parameters=[_path_param("prefix", "a key's prefix, or the whole key")],
            )
        },
        "/admin/keys/{prefix}/limits": {
            "put": _op(
                "adminSetKeyLimits",
                "Set the rate limits of the one live key starting with `prefix`",
                "admin",
                {
                    "200": _json(_ref("RateLimits"), "the key's own limits now"),
                    **_errors(ADMIN_WRITE),
                },
                security=ADMIN,
                body="LimitsBody",
                parameters=[_path_param("prefix", "a key's prefix, or the whole key")],
                description="Only the fields given change; 0 or null clears one (the configured "
                "default applies again). docs/limits.md.",
            )
        },
        "/admin/keys/{prefix}/budget": {
            "put": _op(
                "adminSetKeyBudget",
                "Set the spend budgets of the one live key starting with `prefix`",
                "admin",
                {
                    "200": _json(_ref("ApiKey"), "the key, with its budgets now"),
                    **_errors(ADMIN_WRITE),
                },
                security=ADMIN,
                body="BudgetBody",
                parameters=[_path_param("prefix", "a key's prefix, or the whole key")],
                description="USD per UTC day, per UTC month, in total. Only the fields given "
                "change; null clears one. A request that would pass one is a 402 "
                "`budget_exceeded` (docs/billing.md, Budgets).",
            )
        },
        "/admin/accounts/{name}/budget": {
            "put": _op(
                "adminSetAccountBudget",
                "Set the account's spend budgets, shared by all its keys",
                "admin",
                {
                    "200": _json(_ref("AccountBudget"), "the account's budgets now"),
                    **_errors(ADMIN_WRITE),
                },
                security=ADMIN,
                body="BudgetBody",
                parameters=[name],
                description="USD per UTC day, per UTC month, in total. Only the fields given "
                "change; null clears one (docs/billing.md, Budgets).",
            )
        },
        "/admin/accounts/{name}/limits": {
            "put": _op(
                "adminSetAccountLimits",
                "Set the account's rate limits, shared by all its keys",
                "admin",
                {
                    "200": _json(_ref("RateLimits"), "the account's own limits now"),
                    **_errors(ADMIN_WRITE),
                },
                security=ADMIN,
                body="LimitsBody",
                parameters=[name],
                description="Only the fields given change; 0 or null clears one (the configured "
                "default applies again). docs/limits.md.",
            )
        },
        "/api/redeem/": {"post": _redeem_op()},
        "/admin/codes": {
            "get": _op(
                "adminListCodeBatches",
                "Redeem-code batches, newest first, with how many were redeemed",
                "admin",
                {"200": _json(_ref("CodeBatchList"), "the batches"), **_errors((401,))},
                security=ADMIN,
            ),
            "post": _op(
                "adminCreateCodes",
                "Make a batch of single-use redeem codes (shown once)",
                "admin",
                {
                    "201": _json(_ref("CodeBatchCreated"), "made; the codes are shown once"),
                    **_errors(ADMIN_WRITE),
                },
                security=ADMIN,
                body="NewCodes",
            ),
        },
        "/admin/audit": {
            "get": _op(
                "adminListAudit",
                "The audit log of admin actions (console, CLI, admin API), newest first",
                "admin",
                {"200": _json(_ref("AuditList"), "the entries"), **_errors((400, 401))},
                security=ADMIN,
                parameters=[
                    {"name": "action", "in": "query", "required": False, "schema": STR},
                    {"name": "actor", "in": "query", "required": False, "schema": STR},
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                    },
                ],
            )
        },
        "/admin/codes/{batch_id}": {
            "get": _op(
                "adminShowCodeBatch",
                "A batch and its redemptions (which code by its last 4, who, when)",
                "admin",
                {"200": _json(_ref("CodeBatchDetail"), "the batch"), **_errors((401, 404))},
                security=ADMIN,
                parameters=[_path_param("batch_id", "the batch's id (`batch_...`)")],
            )
        },
    }


def _redeem_op() -> Schema:
    responses = {
        "200": _json(_ref("Redemption"), "credited"),
        **_errors((400, 401, 413, 429)),
    }
    responses["400"]["description"] = (
        "`invalid_code` for a code that is unknown, already redeemed or expired (one message "
        "for all three), or a malformed body."
    )
    responses["429"]["description"] = "Too many failed redemptions by this account lately."
    return _op(
        "redeemCode",
        "Redeem a code: its amount is credited to the key's account, once per code",
        "account",
        responses,
        body="RedeemRequest",
        description=SLASH_NOTE,
    )


def _version() -> str:
    try:
        return version("minitoolai")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0"


def build_document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MiniToolAI",
            "version": _version(),
            "description": "Chat completions, text-to-image jobs and speech behind API keys and "
            'a prepaid credit ledger, in two wire formats: the original MiniToolAI ("seed") '
            "paths under `/api/` and OpenAI's under `/v1/`. Paths under `/api/` answer with "
            'and without the trailing slash. Errors are `{"error": {"message", "type", '
            '"param", "code"}}`, except the seed\'s image job API, which keeps its own '
            '`{"status": "error", ...}` shape.',
        },
        "tags": [
            {"name": name}
            for name in (
                "chat",
                "responses",
                "embeddings",
                "images",
                "speech",
                "account",
                "admin",
                "operations",
            )
        ],
        "paths": paths(),
        "components": {
            "schemas": {**request_schemas(), **RESPONSE_SCHEMAS},
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An account's API key (`mtai-...`).",
                },
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The operator's admin key (`MINITOOLAI_ADMIN_KEY`).",
                },
            },
        },
    }


@functools.cache
def document_bytes() -> bytes:
    return orjson.dumps(build_document())


async def openapi_json(_request: Request) -> Response:
    return Response(document_bytes(), media_type=JSON_TYPE)
