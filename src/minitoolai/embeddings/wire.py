"""An answered embeddings request as OpenAI's JSON body.

``float`` vectors are written by orjson straight from the float32 rows (each number the
shortest text that reads back as the same float32); ``base64`` is each row's little-endian
float32 bytes, as OpenAI encodes them, so both decode to the same floats.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from minitoolai.embeddings.service import Embedded


def body(embedded: Embedded) -> bytes:
    vectors = embedded.result.vectors
    rows: list[Any]
    if embedded.encoding_format == "base64":
        little = vectors.astype("<f4", copy=False)
        rows = [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
    else:
        rows = list(vectors)
    tokens = embedded.prompt_tokens
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)
            ],
            "model": embedded.result.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
