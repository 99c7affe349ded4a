"""Embeddings: OpenAI's ``/v1/embeddings``."""

from __future__ import annotations

from minitoolai.http.openapi.common import (
    IDEMPOTENCY,
    INT,
    METERED,
    STR,
    Schema,
    answers,
    obj,
    operation,
)

SCHEMAS: dict[str, Schema] = {
    "EmbeddingList": obj(
        {
            "object": {"const": "list"},
            "data": {
                "type": "array",
                "items": obj(
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
            "usage": obj({"prompt_tokens": INT, "total_tokens": INT}),
        }
    ),
}

#: what ``EmbeddingRequest``'s validator checks in code
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
}


def paths() -> dict[str, Schema]:
    return {
        "/v1/embeddings": {
            "post": operation(
                "createEmbeddings",
                "Embeddings (OpenAI's API); offline from all-MiniLM-L6-v2",
                "embeddings",
                answers("EmbeddingList", "the vectors", METERED),
                body="EmbeddingRequest",
                parameters=[IDEMPOTENCY],
            )
        },
    }
