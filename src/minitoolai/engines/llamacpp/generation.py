"""The token loop, run on a model's own thread.

It drives ``Llama.generate`` (one sampled token per step) rather than the streaming
``create_chat_completion`` so that it owns what a gateway must get right: exact prompt and
completion token counts for billing, a cancellation check after every token, and stop
sequences that never leak into the output.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minitoolai.engines.base import ChatChunk, ChatParams, Usage
from minitoolai.engines.errors import EngineRejected
from minitoolai.engines.llamacpp.prompt import Prompt
from minitoolai.engines.llamacpp.textstream import StopScanner


@dataclass(frozen=True, slots=True)
class Sampling:
    """llama.cpp sampler settings for one request, in OpenAI's vocabulary where it has one.

    ``top_k``/``min_p``/``repeat_penalty``/``ignore_eos`` have no OpenAI equivalent; they may
    come in ``ChatParams.extra`` (llama-server accepts the same names). The defaults for
    ``top_k`` and ``min_p`` are llama.cpp's own, which keep small models coherent.
    """

    temperature: float
    top_p: float
    top_k: int
    min_p: float
    presence_penalty: float
    frequency_penalty: float
    repeat_penalty: float
    seed: int
    ignore_eos: bool

    @classmethod
    def from_params(cls, params: ChatParams) -> Sampling:
        try:
            return cls._from_params(params)
        except (TypeError, ValueError) as exc:
            raise EngineRejected(f"invalid sampling parameter: {exc}") from exc

    @classmethod
    def _from_params(cls, params: ChatParams) -> Sampling:
        extra = params.extra
        return cls(
            temperature=max(0.0, params.temperature),
            top_p=1.0 if params.top_p is None else params.top_p,
            top_k=int(extra.get("top_k", 40)),
            min_p=float(extra.get("min_p", 0.05)),
            presence_penalty=params.presence_penalty or 0.0,
            frequency_penalty=params.frequency_penalty or 0.0,
            repeat_penalty=float(extra.get("repeat_penalty", 1.0)),
            seed=params.seed if params.seed is not None else random.getrandbits(32),
            ignore_eos=bool(extra.get("ignore_eos", False)),
        )


def token_budget(prompt_tokens: int, max_tokens: int, n_ctx: int, model_id: str) -> int:
    """How many tokens may be generated: ``max_tokens``, cut to what the context still holds."""
    if max_tokens < 1:
        raise EngineRejected("max_tokens must be at least 1")
    room = n_ctx - prompt_tokens
    if room < 1:
        raise EngineRejected(
            f"the prompt is {prompt_tokens} tokens but model {model_id!r} has a context of "
            f"{n_ctx} tokens; shorten the conversation",
            status=400,
        )
    return min(max_tokens, room)


def _ban_tokens(banned: list[int]) -> Callable[[Any, Any], Any]:
    """A logits processor that makes the given tokens impossible (for ``ignore_eos``)."""

    def process(_input_ids: Any, scores: Any) -> Any:
        scores[banned] = -float("inf")
        return scores

    return process


def run_generation(
    llama: Any,
    llama_cpp: Any,
    n_ctx: int,
    reuse_prefix: bool,
    prompt: Prompt,
    params: ChatParams,
    model_id: str,
    eog_tokens: Callable[[], list[int]],
    emit: Callable[[ChatChunk], None],
    cancelled: Callable[[], bool],
) -> None:
    """Generate one answer, reporting through ``emit``; returns early when ``cancelled()``."""
    budget = token_budget(len(prompt.tokens), params.max_tokens, n_ctx, model_id)
    sampling = Sampling.from_params(params)
    scanner = StopScanner(list(params.stop or []) + prompt.stops)
    vocab = llama_cpp.llama_model_get_vocab(llama.model)
    processors = None
    if sampling.ignore_eos:
        processors = llama_cpp.LogitsProcessorList([_ban_tokens(eog_tokens())])

    llama.set_seed(sampling.seed)
    if not reuse_prefix:
        llama.reset()  # evaluate the whole prompt afresh: reproducible (see LocalModelConfig)
    emit(ChatChunk(role="assistant", model=model_id))
    generated = 0
    finish = "length"
    for token in llama.generate(
        prompt.tokens,
        temp=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k,
        min_p=sampling.min_p,
        presence_penalty=sampling.presence_penalty,
        frequency_penalty=sampling.frequency_penalty,
        repeat_penalty=sampling.repeat_penalty,
        logits_processor=processors,
    ):
        if cancelled():
            return
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            finish = "stop"
            break
        generated += 1
        text = scanner.feed(bytes(llama.detokenize([token])))
        if text:
            emit(ChatChunk(content=text))
        if scanner.stopped:
            finish = "stop"
            break
        if generated >= budget:
            break
    rest = scanner.flush()
    if rest:
        emit(ChatChunk(content=rest))
    emit(ChatChunk(finish_reason=finish))
    emit(ChatChunk(usage=Usage(prompt_tokens=len(prompt.tokens), completion_tokens=generated)))
