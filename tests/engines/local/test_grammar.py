"""Schemas -> bounded grammars: bounds added only where the schema has none, the worst case
sized to the budget, a 400 when it can never fit, and grammars llama.cpp accepts."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from minitoolai.engines.errors import EngineRejected
from minitoolai.engines.llamacpp import packaged_model_path
from minitoolai.engines.llamacpp.grammar import (
    ANY_OBJECT,
    TEXT,
    bounded,
    build_grammar,
    fit,
    inline_refs,
    worst_bytes,
)

from .test_llamacpp_structured import TOOLS, Person

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")

TAGS = {"type": "array", "items": {"type": "string"}}


def test_bounds_are_added_only_where_the_schema_has_none() -> None:
    assert bounded(TAGS, 3, 10) == {
        "type": "array",
        "items": {"type": "string", "maxLength": 10},
        "maxItems": 3,
    }
    explicit = {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 9}
    assert bounded(explicit, 3, 10) == explicit  # an enum string needs no bound
    assert bounded({"type": "array", "items": TAGS, "minItems": 5}, 3, 10)["maxItems"] == 5
    assert bounded({"type": "string", "minLength": 20}, 3, 10)["maxLength"] == 20


def test_the_bounds_tighten_until_the_worst_case_fits_the_budget() -> None:
    schema = Person.model_json_schema()
    (generous,), roomy = fit([schema], 1000)
    (tight,), small = fit([schema], 300)
    assert small <= 300 < roomy <= 1000
    assert (
        tight["properties"]["hobbies"]["maxItems"] < generous["properties"]["hobbies"]["maxItems"]
    )
    assert worst_bytes(inline_refs(schema)) == math.inf  # unbounded as pydantic writes it


def test_a_budget_no_bounds_can_fit_is_refused_and_an_unboundable_schema_is_not() -> None:
    with pytest.raises(EngineRejected) as refused:
        build_grammar(40, Person.model_json_schema())
    assert refused.value.param == "max_tokens"
    free = build_grammar(40, {"type": "object"})
    assert free is not None and free.worst_bytes == math.inf  # best effort, documented


def test_plain_text_without_tools_needs_no_grammar() -> None:
    assert build_grammar(100, TEXT) is None


@pytest.fixture(scope="module")
def vocab() -> Iterator[Any]:
    llama = llama_cpp.Llama(str(packaged_model_path()), n_ctx=256, verbose=False)
    yield llama._model.vocab
    llama.close()


def compiles(vocab: Any, gbnf: str) -> bool:
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


@pytest.mark.parametrize("answer", [TEXT, ANY_OBJECT, Person.model_json_schema(), None])
@pytest.mark.parametrize("with_tools", [False, True])
def test_every_grammar_compiles_in_llama_cpp(vocab: Any, answer: Any, with_tools: bool) -> None:
    calls = [
        {"type": "object", "properties": {"name": {"const": t["function"]["name"]}}} for t in TOOLS
    ]
    grammar = build_grammar(1000, answer, calls if with_tools else None, "<tool_call>")
    if grammar is None:
        assert answer in (TEXT, None) and not with_tools
        return
    assert compiles(vocab, grammar.gbnf), grammar.gbnf
