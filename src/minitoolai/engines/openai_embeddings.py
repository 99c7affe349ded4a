"""An upstream that speaks OpenAI's ``/embeddings``: one call, one whole answer.

The request goes as the client sent it (texts or token ids, ``dimensions``,
``encoding_format``, ``user``), so the provider shortens and encodes; its vectors are read in
either encoding and checked (one per input, each index once, one length for all, numbers only)
before anyone is billed for them. Errors are translated by ``ProviderEndpoint``; an answer of
the wrong shape, or one cut off, is ``EngineUnavailable`` (the next deployment is tried,
nothing is charged). Usage is the provider's ``prompt_tokens`` when it is a believable count
(a plain integer, 0..2**53), else absent: the service then bills our own count.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

import orjson

from minitoolai.engines.base import EmbeddingEngine, EmbeddingParams, EmbeddingResult
from minitoolai.engines.errors import EngineUnavailable
from minitoolai.engines.openai_compat import MAX_TOKENS, ProviderEndpoint
from minitoolai.infra.http import HTTPError

if TYPE_CHECKING:  # numpy is imported by the first answer: a chat-only gateway never loads it
    import numpy as np


class _Malformed(Exception):
    """The answer is not the shape OpenAI's embeddings have."""


def _vector(value: object) -> np.ndarray[Any, np.dtype[np.float32]]:
    import numpy as np

    if isinstance(value, str):  # base64 of little-endian float32, as OpenAI encodes it
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise _Malformed("an embedding is not base64") from None
        if len(raw) % 4:
            raise _Malformed("a base64 embedding is not float32s")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not isinstance(value, list) or not all(type(x) is float or type(x) is int for x in value):
        raise _Malformed("an embedding is not a list of numbers")
    return np.asarray(value, dtype=np.float32)


def _prompt_tokens(usage: object) -> int | None:
    count = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return count if type(count) is int and 0 <= count <= MAX_TOKENS else None


class OpenAICompatEmbeddings(ProviderEndpoint, EmbeddingEngine):
    path = "/embeddings"

    def count_tokens(self, params: EmbeddingParams) -> None:
        return None  # the provider reports usage; the API's cl100k count is the hold

    async def embed(self, params: EmbeddingParams) -> EmbeddingResult:
        body: dict[str, Any] = {
            "model": self.model_id,
            "input": params.inputs,
            "encoding_format": params.encoding_format,
        }
        if params.dimensions is not None:
            body["dimensions"] = params.dimensions
        if params.user is not None:
            body["user"] = params.user
        response = await self._open(orjson.dumps(body), whole=True)
        try:
            raw = await self._read_whole(response)
        except HTTPError as exc:
            what = f"{self.provider_name}: the answer broke: {self._why(exc)}"
            raise EngineUnavailable(what) from None
        finally:
            response.close()
        try:
            return self._result(orjson.loads(raw), len(params.inputs))
        except (orjson.JSONDecodeError, _Malformed) as exc:
            raise EngineUnavailable(f"{self.provider_name}: a malformed answer ({exc})") from None

    def _result(self, data: object, count: int) -> EmbeddingResult:
        import numpy as np

        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != count:
            raise _Malformed(f"expected {count} embeddings")
        rows: list[np.ndarray[Any, np.dtype[np.float32]] | None] = [None] * count
        for item in items:
            index = item.get("index") if isinstance(item, dict) else None
            if type(index) is not int or not 0 <= index < count or rows[index] is not None:
                raise _Malformed("an embedding's index is missing, out of range or repeated")
            rows[index] = _vector(item.get("embedding"))
        lengths = {len(row) for row in rows if row is not None}
        if len(lengths) != 1 or 0 in lengths:
            raise _Malformed("the embeddings are not all of one length")
        assert isinstance(data, dict)  # items came from it
        model = data.get("model")
        return EmbeddingResult(
            vectors=np.stack([row for row in rows if row is not None]),
            prompt_tokens=_prompt_tokens(data.get("usage")),
            model=model if isinstance(model, str) and model else self.model_id,
        )
