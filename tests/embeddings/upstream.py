"""A small real upstream that speaks OpenAI's ``/v1/embeddings``, for pass-through tests.

Its vectors are a pure function of (input, dimensions), so a test can compute what the client
must get; it answers the items in reverse order (the gateway must order them by ``index``),
in the encoding asked for, and reports usage as OpenAI does (``cl100k_base`` tokens), or what
``usage_tokens`` says. It records every request it saw.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from minitoolai.chat.tokens import encoding


def vector_for(item: str | list[int], dimensions: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The unit vector this upstream gives ``item``."""
    seed = hashlib.sha256(orjson.dumps(item)).digest()
    rng = np.random.default_rng(int.from_bytes(seed[:8], "little"))
    v = rng.standard_normal(dimensions).astype(np.float32)
    return (v / np.linalg.norm(v)).astype(np.float32)


def openai_tokens(items: list[str] | list[list[int]]) -> int:
    enc = encoding("cl100k_base")
    return sum(len(enc.encode(x)) if isinstance(x, str) else len(x) for x in items)


@dataclass
class EmbeddingsUpstream:
    dimensions: int = 1536
    status: int = 200
    #: the usage it reports; None: the true count; "omit": no usage at all
    usage_tokens: int | str | None = None
    #: a misbehaviour: "short" (one embedding missing), "repeated" (an index twice), "ragged"
    #: (vectors of two lengths), "strings" (numbers as strings), "not_json"
    fault: str | None = None
    delay_s: float = 0.0
    seen: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/embeddings", self._embeddings, methods=["POST"])])

    async def _embeddings(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.seen.append({"body": body, "authorization": request.headers.get("authorization")})
        if self.status != 200:
            error = {"error": {"message": "upstream says no", "type": "server_error"}}
            return Response(orjson.dumps(error), self.status, media_type="application/json")
        items = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if items and isinstance(items[0], int):
            items = [items]
        dims = body.get("dimensions") or self.dimensions
        data = []
        for index, item in enumerate(items):
            v = vector_for(item, dims)
            shown: Any = (
                base64.b64encode(v.astype("<f4").tobytes()).decode()
                if body.get("encoding_format") == "base64"
                else v.tolist()
            )
            data.append({"object": "embedding", "index": index, "embedding": shown})
        await asyncio.sleep(self.delay_s)
        if self.fault == "not_json":
            return Response(b'{"object": "list", "data": [', media_type="application/json")
        if self.fault == "short":
            data = data[:-1]
        elif self.fault == "repeated":
            data[-1]["index"] = 0
        elif self.fault == "ragged":
            data[0]["embedding"] = [0.5]
        elif self.fault == "strings":
            data[0]["embedding"] = ["0.5"] * dims
        tokens = openai_tokens(items) if self.usage_tokens is None else self.usage_tokens
        answer: dict[str, Any] = {"object": "list", "data": data[::-1], "model": body["model"]}
        if tokens != "omit":
            answer["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return Response(orjson.dumps(answer), media_type="application/json")
