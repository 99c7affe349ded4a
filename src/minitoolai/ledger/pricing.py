"""The price table: pure data and pure functions, in nano-dollars.

The seed's prices are the defaults; the operator's ``[prices.<model>]`` entries override them
field by field. Token prices are per 1M tokens, speech per 1M characters, images per image. The
model names come from ``minitoolai.catalog``; the prices stay here, next to the money arithmetic
and the operator's overrides, so the catalog stays plain data about what the API accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from minitoolai.catalog import IMAGE_MODELS
from minitoolai.money import per_million, usd_to_nano
from minitoolai.settings import PriceConfig


@dataclass(frozen=True, slots=True)
class Price:
    input_per_m: int = 0
    output_per_m: int = 0
    per_image: int = 0
    per_m_chars: int = 0

    def tokens(self, prompt_tokens: int, completion_tokens: int) -> int:
        return per_million(prompt_tokens, self.input_per_m) + per_million(
            completion_tokens, self.output_per_m
        )

    def images(self, count: int) -> int:
        return count * self.per_image

    def characters(self, count: int) -> int:
        return per_million(count, self.per_m_chars)


def _tokens(input_usd: str, output_usd: str) -> Price:
    return Price(input_per_m=usd_to_nano(input_usd), output_per_m=usd_to_nano(output_usd))


DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o-mini": _tokens("0.15", "0.60"),
    "gpt-4o": _tokens("2.50", "10.00"),
    "gpt-4.1": _tokens("2.00", "8.00"),
    "gpt-4.1-mini": _tokens("0.40", "1.60"),
    "gpt-4.1-nano": _tokens("0.10", "0.40"),
    **{name: Price(per_image=usd_to_nano("0.0015")) for name in IMAGE_MODELS},
    "tts-1": Price(per_m_chars=usd_to_nano("15")),
    "tts-1-hd": Price(per_m_chars=usd_to_nano("30")),
    # OpenAI bills gpt-4o-mini-tts per token (US$0.60/1M text in, US$12/1M audio out) and
    # estimates US$0.015 a minute of audio: tts-1's US$15/1M characters at ~1,000 a minute.
    "gpt-4o-mini-tts": Price(per_m_chars=usd_to_nano("15")),
    # embeddings: per 1M input tokens; the packaged local model at text-embedding-3-small's
    "text-embedding-3-small": Price(input_per_m=usd_to_nano("0.02")),
    "text-embedding-3-large": Price(input_per_m=usd_to_nano("0.13")),
    "text-embedding-ada-002": Price(input_per_m=usd_to_nano("0.10")),
    "all-minilm-l6-v2": Price(input_per_m=usd_to_nano("0.02")),
}

#: what a model without its own row costs (local models' own names): gpt-4.1-nano's price
FALLBACK_PRICE = DEFAULT_PRICES["gpt-4.1-nano"]
#: the fields of a ``Price`` an override may set (``ledger.price_overrides``)
FIELDS = ("input_per_m", "output_per_m", "per_image", "per_m_chars")


class PriceTable:
    def __init__(self, overrides: Mapping[str, PriceConfig] | None = None) -> None:
        self._prices = dict(DEFAULT_PRICES)
        for model, cfg in (overrides or {}).items():
            base = self._prices.get(model, Price())
            changes = {
                field: usd_to_nano(value)
                for field, value in (
                    ("input_per_m", cfg.input),
                    ("output_per_m", cfg.output),
                    ("per_image", cfg.image),
                    ("per_m_chars", cfg.characters),
                )
                if value is not None
            }
            self._prices[model] = replace(base, **changes)
        self._configured = dict(self._prices)  # the seed's and the config file's

    def apply_overrides(self, overrides: Mapping[str, Mapping[str, int]]) -> None:
        """The database's overrides (model -> fields in nano-dollars) on top of the config
        file's, swapped in with one assignment: a request sees the old table or the new one."""
        prices = dict(self._configured)
        for model, fields in overrides.items():
            prices[model] = replace(prices.get(model, FALLBACK_PRICE), **fields)
        self._prices = prices

    def __getitem__(self, model: str) -> Price:
        return self._prices.get(model, FALLBACK_PRICE)

    def __contains__(self, model: object) -> bool:
        return model in self._prices

    def items(self) -> list[tuple[str, Price]]:
        return sorted(self._prices.items())
