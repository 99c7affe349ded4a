"""The landing page: what is sold, the live price table, and a quickstart for this server."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from minitoolai.http.deps import services
from minitoolai.ledger.pricing import Price
from minitoolai.web.templating import base_url, env, page, usd


@dataclass(frozen=True, slots=True)
class PriceRow:
    model: str
    input: str
    output: str
    image: str
    characters: str


def _cell(nano: int) -> str:
    return usd(nano) if nano else "—"


def price_rows(prices: list[tuple[str, Price]]) -> list[PriceRow]:
    return [
        PriceRow(
            model,
            _cell(p.input_per_m),
            _cell(p.output_per_m),
            _cell(p.per_image),
            _cell(p.per_m_chars),
        )
        for model, p in prices
    ]


@dataclass(frozen=True, slots=True)
class Snippet:
    label: str
    code: str


_SNIPPETS = (
    ("curl", "curl.txt"),
    ("Python", "python.txt"),
    ("PHP", "php.txt"),
    ("JavaScript", "js.txt"),
)


def snippets(base: str) -> list[Snippet]:
    """The quickstart in four languages, with this server's base URL filled in (the
    templates are plain text; the page escapes them when it shows them)."""
    return [
        Snippet(label, env().get_template(f"snippets/{name}").render(base_url=base))
        for label, name in _SNIPPETS
    ]


async def landing(request: Request) -> Response:
    rows = price_rows(services(request).chat.prices.items())
    return await page(request, "landing.html", prices=rows, snippets=snippets(base_url(request)))
