"""Prompt tokens billed for one image, by OpenAI's published rules.

Source: OpenAI's "Images and vision" guide, section "Calculating costs". Two rule families:

**Tiles** (gpt-4o, gpt-4.1, gpt-4.5, gpt-4o-mini, gpt-5, o1/o3, computer-use-preview):
``low`` costs a fixed ``base``. ``high``: scale to fit in 2048x2048, then scale so the shortest
side is 768 px, count the 512 px tiles covering it; ``base + tiles * per_tile``.

**Patches** (gpt-4.1-mini, gpt-4.1-nano, o4-mini, gpt-5-mini, gpt-5-nano): count the 32x32
patches covering the image; above 1536 patches, shrink the image (keeping its aspect ratio, so
one side fills a whole number of patches) until it fits; cap at 1536; multiply by the model's
multiplier. The guide gives no ``detail`` term for these models, so ``detail`` is ignored.

Choices where the guide is silent (documented here so billing is predictable):

* Scaling only ever shrinks (a 300x300 image is not blown up to 768x768), and scaled sides are
  rounded *down* to whole pixels, as observed from the API; all arithmetic is integer, so the
  documented examples come out exact (no float drift across a tile boundary).
* The patch multiplier result is rounded *up* (``ceil(1024 * 1.62) = 1659``).
* For extreme strips the guide's recipe would trim one side to zero patches (0 tokens); that
  side is then left alone and the other side sets the scale, so a 1x100000 strip costs the
  1536-patch cap rather than nothing.
* ``detail="auto"``: ``low`` if the image fits in 512x512 (the low-detail view already *is* the
  whole image, so tiles would add nothing), else ``high``.
* Model names: provider prefixes (``openai/``), fine-tune wrappers (``ft:gpt-4o:...``) and
  date/version suffixes are ignored by longest-prefix match (``gpt-4o-mini-2024-07-18`` ->
  ``gpt-4o-mini``). An unknown model is billed like gpt-4o (85 + 170/tile): the most common
  rule, and for a self-hosted model it is only a proxy for "images cost prompt tokens" anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from minitoolai.vision import _errors

DETAILS = ("auto", "low", "high")


@dataclass(frozen=True, slots=True)
class TileRule:
    """512 px tile billing: ``base`` (the low-detail view) + ``per_tile`` per high-detail tile."""

    base: int
    per_tile: int
    short_side: int = 768
    fit: int = 2048
    tile: int = 512


@dataclass(frozen=True, slots=True)
class PatchRule:
    """32 px patch billing, capped at ``max_patches``, times a per-model multiplier."""

    #: multiplier in hundredths (1.62 -> 162) so rounding is exact
    multiplier_pct: int
    patch: int = 32
    max_patches: int = 1536


TokenRule = TileRule | PatchRule

DEFAULT_RULE = TileRule(base=85, per_tile=170)

_RULES: dict[str, TokenRule] = {
    "gpt-4o": DEFAULT_RULE,
    "chatgpt-4o": DEFAULT_RULE,
    "gpt-4-turbo": DEFAULT_RULE,
    "gpt-4.1": DEFAULT_RULE,
    "gpt-4.5": DEFAULT_RULE,
    "gpt-4o-mini": TileRule(base=2833, per_tile=5667),
    "gpt-5": TileRule(base=70, per_tile=140),
    "o1": TileRule(base=75, per_tile=150),
    "o3": TileRule(base=75, per_tile=150),
    "computer-use-preview": TileRule(base=65, per_tile=129),
    "gpt-4.1-mini": PatchRule(multiplier_pct=162),
    "gpt-4.1-nano": PatchRule(multiplier_pct=246),
    "gpt-5-mini": PatchRule(multiplier_pct=162),
    "gpt-5-nano": PatchRule(multiplier_pct=246),
    "o4-mini": PatchRule(multiplier_pct=172),
}


def rule_for_model(model: str) -> TokenRule:
    """The billing rule for ``model`` (longest known prefix at a ``-`` boundary, else default)."""
    name = model.strip().lower()
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    name = name.rsplit("/", 1)[-1]
    best = ""
    for key in _RULES:
        if (name == key or name.startswith(key + "-")) and len(key) > len(best):
            best = key
    return _RULES[best] if best else DEFAULT_RULE


def check_detail(detail: object) -> str:
    """``detail`` itself if it is ``auto``, ``low`` or ``high``; a 400 otherwise."""
    if not isinstance(detail, str) or detail not in DETAILS:
        raise _errors.invalid(
            f"Image detail must be one of {', '.join(DETAILS)}, not {detail!r}.",
            _errors.INVALID_DETAIL,
        )
    return detail


def resolve_detail(detail: str, width: int, height: int) -> str:
    """``low`` or ``high`` for a request's ``detail`` (see the module doc for ``auto``)."""
    if check_detail(detail) == "auto":
        return "low" if max(width, height) <= 512 else "high"
    return detail


def image_tokens(model: str, width: int, height: int, detail: str = "auto") -> int:
    """Prompt tokens for one ``width`` x ``height`` image sent to ``model`` at ``detail``."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    level = resolve_detail(detail, width, height)
    rule = rule_for_model(model)
    if isinstance(rule, PatchRule):
        patches = patch_count(width, height, rule.patch, rule.max_patches)
        return -(-patches * rule.multiplier_pct // 100)
    if level == "low":
        return rule.base
    return rule.base + rule.per_tile * tile_count(width, height, rule)


def image_tokens_floor(model: str) -> int:
    """The fewest tokens any image costs on ``model`` (for a credit check before fetching)."""
    return image_tokens(model, 1, 1, "low")


def tile_count(width: int, height: int, rule: TileRule = DEFAULT_RULE) -> int:
    """512 px tiles after fitting in 2048x2048 and shrinking the short side to 768."""
    # Work on (long, short): the rule is symmetric, and this keeps each step one line.
    long, short = max(width, height), min(width, height)
    if long > rule.fit:  # fit the long side in the square
        long, short = rule.fit, max(1, short * rule.fit // long)
    if short > rule.short_side:  # shrink so the short side is exactly short_side
        long, short = long * rule.short_side // short, rule.short_side
    return _ceil_div(long, rule.tile) * _ceil_div(short, rule.tile)


def patch_count(width: int, height: int, patch: int = 32, max_patches: int = 1536) -> int:
    """32 px patches covering the image, shrunk to fit ``max_patches`` as OpenAI documents.

    The guide's float recipe, in exact integers: the shrink factor r = sqrt(P*p^2/(w*h)) puts
    w*r/p = sqrt(P*w/h) patches across; the second factor trims the tighter side down to a
    whole number of patches k (k^2 <= P*w/h), and the other side then spans
    ceil(other * k / side) patches. Of the two candidate sides the guide keeps the smaller
    scale, i.e. the smaller patch count (a candidate that would leave zero patches is skipped).
    """
    raw = _ceil_div(width, patch) * _ceil_div(height, patch)
    if raw <= max_patches:
        return raw
    across = _isqrt_floor(max_patches * width, height)  # whole patches along the width
    down = _isqrt_floor(max_patches * height, width)  # whole patches along the height
    candidates = []
    if across >= 1:  # trim so the width spans exactly `across` patches
        candidates.append(across * _ceil_div(height * across, width))
    if down >= 1:  # trim so the height spans exactly `down` patches
        candidates.append(_ceil_div(width * down, height) * down)
    # across * down ~ max_patches, so at least one candidate exists.
    return min(*candidates, max_patches)


def _isqrt_floor(num: int, den: int) -> int:
    """floor(sqrt(num / den)) exactly (k*k <= num/den  <=>  k*k <= num // den for integer k)."""
    return math.isqrt(num // den)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)
