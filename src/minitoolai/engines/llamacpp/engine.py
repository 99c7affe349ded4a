"""``LlamaCppEngine``: a GGUF model answering in-process, as a ``ChatEngine``.

Construction loads the model (blocking; use ``await LlamaCppEngine.open(config)`` from async
code). ``stream`` submits a job to the model's own thread and relays what it emits; the
``finally`` around the relay is what stops generation when the consumer goes away (``aclose``,
task cancellation on client disconnect, or an abandoned iterator being finalised).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncGenerator, Callable
from functools import partial
from typing import Any

from minitoolai.chat.schemas import Message
from minitoolai.engines.base import ChatChunk, ChatEngine, ChatParams, Usage
from minitoolai.engines.errors import EngineRejected, EngineUnavailable
from minitoolai.engines.llamacpp.generation import run_generation
from minitoolai.engines.llamacpp.loader import import_llama_cpp, load_llama
from minitoolai.engines.llamacpp.prompt import ChatPrompter
from minitoolai.engines.llamacpp.toolcalls import function_of, offered_tools
from minitoolai.engines.llamacpp.worker import END, Generation, ModelWorker
from minitoolai.settings import LocalModelConfig


class LlamaCppEngine(ChatEngine):
    """One loaded GGUF model. Safe to share between requests; they queue on its thread."""

    accepts_images = False

    def __init__(self, config: LocalModelConfig) -> None:
        self.config = config
        self.model_id = config.name
        self._llama_cpp = import_llama_cpp()
        self._llama: Any = load_llama(config)
        try:
            self._prompter = ChatPrompter(self._llama, config.name, config.chat_template)
        except BaseException:
            self._llama.close()
            raise
        # llama.cpp pads the context to a multiple of 256 but llama-cpp-python sizes its token
        # buffers to the requested n_ctx: the smaller of the two is what really fits.
        self.n_ctx = min(int(self._llama.n_ctx()), config.n_ctx)
        self._eog: list[int] | None = None
        self._eog_lock = threading.Lock()
        self.worker = ModelWorker(config.name, config.queue_size)

    @classmethod
    async def open(cls, config: LocalModelConfig) -> LlamaCppEngine:
        """Load off the event loop (a big model takes seconds, a Hub download minutes)."""
        return await asyncio.to_thread(cls, config)

    @property
    def llama(self) -> Any:
        """The underlying ``llama_cpp.Llama`` (for metrics and tests; do not generate with it
        while the engine serves: the model thread owns it).
        """
        return self._loaded()

    def _loaded(self) -> Any:
        if self._llama is None:
            raise EngineUnavailable(f"model {self.model_id!r} is shut down")
        return self._llama

    def eog_tokens(self) -> list[int]:
        """Every end-of-generation token id (computed once, on first ``ignore_eos`` use)."""
        with self._eog_lock:
            if self._eog is None:
                llama = self._loaded()
                vocab = self._llama_cpp.llama_model_get_vocab(llama.model)
                is_eog = self._llama_cpp.llama_vocab_is_eog
                self._eog = [t for t in range(llama.n_vocab()) if is_eog(vocab, t)]
            return self._eog

    def estimate_prompt_tokens(
        self, messages: list[Message], tools: list[dict[str, Any]] | None = None
    ) -> int | None:
        """The prompt's exact length: rendered as ``stream`` renders it (tool calls and results
        as the model sees them and, given ``tools``, the tools section of the system turn).
        """
        try:
            functions = [function_of(tool) for tool in tools] if tools else None
            return len(self._prompter.prepare(messages, functions).tokens)
        except EngineRejected:  # images, custom tools, a template's refusal: it fails anyway
            return super().estimate_prompt_tokens(messages, tools)

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the model's tokenizer, without BOS or special-token parsing
        (so user text that looks like ``<|im_end|>`` counts as the plain text it is).
        """
        tokens = self._loaded().tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return len(tokens)

    def _work(self, params: ChatParams, job: Generation) -> None:
        """The request's ``n`` answers, one after another, then one usage for them all: the
        prompt once, every choice's tokens. A cancelled job reports no usage (the answer is
        billed on what it delivered)."""
        llama = self._loaded()
        prompt = self._prompter.prepare(params.messages, offered_tools(params))
        generated = 0
        for choice in range(params.n):
            if job.cancelled:  # the client left between two choices
                return
            made = run_generation(
                llama,
                self._llama_cpp,
                self.n_ctx,
                self.config.reuse_prefix,
                prompt,
                _for_choice(params, choice),
                self.model_id,
                self.eog_tokens,
                job.emit if choice == 0 else partial(_emit_as, job.emit, choice),
                lambda: job.cancelled,
            )
            if made is None:
                return
            generated += made
        job.emit(
            ChatChunk(usage=Usage(prompt_tokens=len(prompt.tokens), completion_tokens=generated))
        )

    async def stream(self, params: ChatParams) -> AsyncGenerator[ChatChunk, None]:
        """Chunks as llama.cpp produces them: role, content..., finish_reason, usage.

        Raises ``EngineBusy`` when the queue is full and ``EngineRejected`` for a request the
        model cannot take (too long, image parts) before the first chunk.
        """
        self._loaded()
        job = Generation(partial(self._work, params), asyncio.get_running_loop())
        self.worker.enqueue(job)
        try:
            while (item := await job.output.get()) is not END:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, ChatChunk)
                yield item
        finally:
            self.worker.cancel(job)

    async def aclose(self) -> None:
        """Stop the model thread (cancelling queued and running work) and free the model."""
        if self._llama is None:
            return
        stopped = await asyncio.to_thread(self.worker.close)
        llama, self._llama = self._llama, None
        if stopped:
            llama.close()
        # else: the thread is stuck in a long prompt evaluation; leaving the model to the
        # garbage collector is safer than freeing memory a native call still uses.


def _for_choice(params: ChatParams, choice: int) -> ChatParams:
    """The parameters of one choice: a given seed moves on by one per choice, so that choices
    differ (as OpenAI's do) and the whole answer stays reproducible."""
    if choice == 0 or params.seed is None:
        return params
    return dataclasses.replace(params, seed=(params.seed + choice) % 2**32)


def _emit_as(emit: Callable[[ChatChunk], None], choice: int, chunk: ChatChunk) -> None:
    chunk.choice = choice
    emit(chunk)
