"""Image token billing against OpenAI's documented examples, plus properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minitoolai.errors import InvalidRequest
from minitoolai.vision import image_tokens, rule_for_model
from minitoolai.vision.tokens import DEFAULT_RULE, PatchRule, TileRule, patch_count, tile_count


@pytest.mark.parametrize(
    ("model", "w", "h", "detail", "tokens"),
    [
        # OpenAI's gpt-4o examples
        ("gpt-4o", 1024, 1024, "high", 765),
        ("gpt-4o", 2048, 4096, "high", 1105),
        ("gpt-4o", 4096, 8192, "low", 85),
        # same shapes, gpt-4o-mini's base 2833 / tile 5667
        ("gpt-4o-mini", 1024, 1024, "high", 2833 + 4 * 5667),
        ("gpt-4o-mini", 2048, 4096, "high", 2833 + 6 * 5667),
        ("gpt-4o-mini", 4096, 8192, "low", 2833),
        # gpt-4.1 is in the tile family with gpt-4o's numbers
        ("gpt-4.1", 1024, 1024, "high", 765),
        ("gpt-4.1-2025-04-14", 2048, 4096, "high", 1105),
        # other documented tile tables
        ("gpt-5", 1024, 1024, "high", 70 + 4 * 140),
        ("o3", 1024, 1024, "high", 75 + 4 * 150),
        ("computer-use-preview", 1024, 1024, "low", 65),
        # patch family: 1024x1024 -> 1024 patches, 1800x2400 -> 1452 patches (OpenAI examples)
        ("gpt-4.1-mini", 1024, 1024, "high", math.ceil(1024 * 1.62)),
        ("gpt-4.1-mini", 1800, 2400, "auto", 2353),  # ceil(1452 * 1.62 = 2352.24)
        ("gpt-4.1-nano", 1024, 1024, "low", 2520),  # ceil(1024 * 2.46 = 2519.04); no detail term
        ("o4-mini", 1800, 2400, "high", 2498),  # ceil(1452 * 1.72 = 2497.44)
        # small image at high: one tile
        ("gpt-4o", 512, 512, "high", 85 + 170),
    ],
)
def test_documented_examples(model: str, w: int, h: int, detail: str, tokens: int) -> None:
    assert image_tokens(model, w, h, detail) == tokens


def test_documented_patch_counts() -> None:
    assert patch_count(1024, 1024) == 1024
    assert patch_count(1800, 2400) == 1452  # 33 x 44 after the two-step shrink


def test_auto_rule() -> None:
    assert image_tokens("gpt-4o", 512, 300, "auto") == 85  # fits the 512 px low view
    assert image_tokens("gpt-4o", 513, 300, "auto") == 85 + 2 * 170  # bigger: high
    assert image_tokens("gpt-4o", 1024, 1024) == 765  # auto is the default


@pytest.mark.parametrize(
    ("model", "rule"),
    [
        ("gpt-4o-mini-2024-07-18", TileRule(2833, 5667)),
        ("openai/gpt-4o", DEFAULT_RULE),
        ("ft:gpt-4o-mini-2024-07-18:org::abc", TileRule(2833, 5667)),
        ("GPT-4.1-MINI", PatchRule(162)),
        ("gpt-4.1-nano-2025-04-14", PatchRule(246)),
        ("gpt-5-mini", PatchRule(162)),
        ("gpt-5-chat-latest", TileRule(70, 140)),
        ("o1-pro", TileRule(75, 150)),
        ("gpt-4o2", DEFAULT_RULE),  # no match across a non-"-" boundary
        ("llama-3.2-vision", DEFAULT_RULE),  # unknown: billed like gpt-4o
    ],
)
def test_model_rules(model: str, rule: TileRule | PatchRule) -> None:
    assert rule_for_model(model) == rule


def test_bad_detail_and_size() -> None:
    with pytest.raises(InvalidRequest):
        image_tokens("gpt-4o", 10, 10, "ultra")
    with pytest.raises(ValueError):
        image_tokens("gpt-4o", 0, 10, "high")


def test_scaling_never_enlarges() -> None:
    assert tile_count(100, 100) == 1
    assert tile_count(768, 768) == 4
    assert tile_count(769, 769) == 4  # shrunk to 768x768


MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "gpt-4.1-nano", "o4-mini", "gpt-5", "unknown"]
sizes = st.integers(min_value=1, max_value=40_000)


@given(st.sampled_from(MODELS), sizes, sizes, st.sampled_from(["auto", "low", "high"]))
def test_tokens_positive_bounded_and_symmetric(model: str, w: int, h: int, detail: str) -> None:
    tokens = image_tokens(model, w, h, detail)
    assert tokens == image_tokens(model, h, w, detail)
    rule = rule_for_model(model)
    if isinstance(rule, TileRule):
        # at most 768 x 2048 after scaling: 2 x 4 tiles
        assert rule.base <= tokens <= rule.base + 8 * rule.per_tile
        assert image_tokens(model, w, h, "low") <= image_tokens(model, w, h, "high")
        assert tokens in (image_tokens(model, w, h, "low"), image_tokens(model, w, h, "high"))
    else:
        assert 1 <= tokens <= math.ceil(1536 * rule.multiplier_pct / 100)


@given(sizes, sizes)
def test_patches_capped_and_monotone_below_the_cap(w: int, h: int) -> None:
    n = patch_count(w, h)
    assert 1 <= n <= 1536
    raw = math.ceil(w / 32) * math.ceil(h / 32)
    if raw <= 1536:
        assert n == raw
    if math.ceil((w + 32) / 32) * math.ceil(h / 32) <= 1536:
        # growing the image never costs less while both stay under the cap (past it, the
        # documented shrink can cost less: 1217x1217 = 1521 patches, 1249x1217 -> 1482)
        assert patch_count(w + 32, h) > n


@given(st.integers(min_value=1, max_value=2047), st.integers(min_value=1, max_value=2048))
def test_high_detail_monotone_while_nothing_is_scaled(w: int, h: int) -> None:
    assume(max(w + 1, h) <= 2048 and min(w + 1, h) <= 768)  # neither size gets rescaled
    assert tile_count(w + 1, h) >= tile_count(w, h)
