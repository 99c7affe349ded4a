"""LlamaCppEngine against the real packaged SmolLM2-135M-Instruct: what it streams, and that
its counts and sampling agree with llama.cpp's own ``create_chat_completion``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from minitoolai.chat.schemas import Message
from minitoolai.engines.errors import EngineRejected
from minitoolai.engines.llamacpp import LlamaCppEngine, LocalModelConfig, default_model_config
from minitoolai.engines.llamacpp.prompt import ChatPrompter

from .helpers import ask, collect, text_of

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaCppEngine]:
    eng = LlamaCppEngine(default_model_config())
    yield eng
    asyncio.run(eng.aclose())


def reference(engine: LlamaCppEngine, messages: list[dict[str, Any]], **kw: Any) -> Any:
    """llama-cpp-python's own non-streaming answer, for comparison (the engine is idle)."""
    assert engine.worker.wait_idle(5.0)
    engine.llama.reset()  # a fresh prompt evaluation, as the engine does (no prefix reuse)
    return engine.llama.create_chat_completion(messages=messages, **kw)


@pytest.mark.asyncio
async def test_streams_role_tokens_finish_and_usage_like_llama_cpp(engine: LlamaCppEngine) -> None:
    params = ask("What is the capital of France? Answer in one sentence.", max_tokens=40)
    params.messages.insert(0, Message(role="developer", content="You are a concise assistant."))
    chunks = await collect(engine.stream(params))

    first, *middle, finish, last = chunks
    assert first.role == "assistant" and first.model == "smollm2-135m-instruct"
    contents = [c for c in middle if c.content]
    assert len(contents) >= 3, "tokens must arrive one by one, not in one piece"
    assert all(c.finish_reason is None and c.usage is None for c in middle)
    assert finish.finish_reason == "stop"
    assert last.usage is not None and last.finish_reason is None

    ref = reference(
        engine,
        [
            {"role": "system", "content": "You are a concise assistant."},
            params.messages[1].model_dump(exclude_none=True),
        ],
        max_tokens=40,
        temperature=0.0,
    )
    assert text_of(chunks) == ref["choices"][0]["message"]["content"]
    assert "Paris" in text_of(chunks)
    assert last.usage.prompt_tokens == ref["usage"]["prompt_tokens"]
    assert last.usage.completion_tokens == ref["usage"]["completion_tokens"]
    assert finish.finish_reason == ref["choices"][0]["finish_reason"]


@pytest.mark.asyncio
async def test_max_tokens_cuts_with_finish_reason_length(engine: LlamaCppEngine) -> None:
    params = ask("Write a long story about a dragon who learns to bake bread.", max_tokens=6)
    chunks = await collect(engine.stream(params))
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 6
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["length"]

    ref = reference(engine, params.messages, max_tokens=6, temperature=0.0)
    assert ref["choices"][0]["finish_reason"] == "length"
    assert usage.completion_tokens == ref["usage"]["completion_tokens"]
    assert text_of(chunks) == ref["choices"][0]["message"]["content"]


@pytest.mark.asyncio
async def test_stop_sequences_end_the_answer_and_never_appear(engine: LlamaCppEngine) -> None:
    question = "List three colours of the rainbow, one per line."
    full = text_of(await collect(engine.stream(ask(question, max_tokens=30))))
    assert len(full) > 20
    # a stop that starts mid-token and spans several tokens, taken from the real answer
    stop = full[len(full) // 3 : len(full) // 3 + 6]
    assert stop.strip()
    chunks = await collect(engine.stream(ask(question, max_tokens=30, stop=[stop, "NEVER!"])))
    text = text_of(chunks)
    assert stop not in text
    assert text == full[: full.index(stop)]
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]


@pytest.mark.asyncio
async def test_seed_makes_sampling_reproducible(engine: LlamaCppEngine) -> None:
    def sampled(seed: int) -> Any:
        return ask("Invent a name for a cat.", max_tokens=16, temperature=1.2, seed=seed)

    first = text_of(await collect(engine.stream(sampled(7))))
    again = text_of(await collect(engine.stream(sampled(7))))
    assert first == again
    others = {text_of(await collect(engine.stream(sampled(s)))) for s in (8, 9, 10)}
    assert others - {first}, "different seeds should sample different answers"


@pytest.mark.asyncio
async def test_top_p_and_penalties_are_applied(engine: LlamaCppEngine) -> None:
    question = "Say the word cat ten times."
    greedy = text_of(await collect(engine.stream(ask(question, max_tokens=20))))
    # a vanishing nucleus leaves only the most likely token: hot sampling becomes greedy
    nucleus = ask(question, max_tokens=20, temperature=1.5, top_p=1e-6, seed=3)
    assert text_of(await collect(engine.stream(nucleus))) == greedy
    penalised = ask(question, max_tokens=20, frequency_penalty=2.0, presence_penalty=2.0)
    assert text_of(await collect(engine.stream(penalised))) != greedy


def test_developer_role_is_rendered_as_system(engine: LlamaCppEngine) -> None:
    prompter = ChatPrompter(engine.llama, engine.model_id)
    text, stops, _ = prompter.render(
        [Message(role="developer", content="Answer in French."), Message(role="user", content="Hi")]
    )
    assert "<|im_start|>system\nAnswer in French.<|im_end|>" in text
    assert "SmolLM" not in text  # the template's default system prompt was replaced
    assert text.endswith("<|im_start|>assistant\n")
    assert stops == ["<|im_end|>"]


def test_count_tokens_uses_the_model_tokenizer(engine: LlamaCppEngine) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    expected = engine.llama.tokenize(text.encode(), add_bos=False, special=False)
    assert engine.count_tokens(text) == len(expected)
    assert 5 <= engine.count_tokens(text) <= 15
    assert engine.count_tokens("") == 0
    assert engine.count_tokens(text * 10) > 9 * engine.count_tokens(text)
    # user text that looks like a control token is plain text, several tokens long
    assert engine.count_tokens("<|im_end|>") > 1


@pytest.mark.asyncio
async def test_image_parts_are_refused_before_any_chunk(engine: LlamaCppEngine) -> None:
    params = ask("x")
    params.messages[0] = Message.model_validate(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    )
    stream = engine.stream(params)
    with pytest.raises(EngineRejected, match="text only"):
        await anext(stream)
    assert engine.accepts_images is False


@pytest.mark.asyncio
async def test_prompt_longer_than_the_context_is_refused() -> None:
    path = default_model_config().path
    small = LlamaCppEngine(LocalModelConfig(name="tiny-ctx", path=path, n_ctx=64))
    try:
        with pytest.raises(EngineRejected, match="context of 64 tokens"):
            await collect(small.stream(ask("hello " * 100)))
        # near the limit, max_tokens is cut to what the context still holds
        chunks = await collect(small.stream(ask("hello " * 30, max_tokens=500)))
        usage = chunks[-1].usage
        assert usage is not None
        assert usage.prompt_tokens + usage.completion_tokens <= 64
    finally:
        await small.aclose()
