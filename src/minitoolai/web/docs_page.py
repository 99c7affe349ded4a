"""The ``/docs`` page: the API reference for people, its examples filled in with this server's
base URL. Anyone may read it; signed in, it says where to get a key (never shows one)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from minitoolai.web.docs_reference import SECTIONS, Endpoint
from minitoolai.web.templating import base_url, page


@dataclass(frozen=True, slots=True)
class Shown:
    """One endpoint as the page shows it: its examples with the base URL in place."""

    endpoint: Endpoint
    curl: str
    python: str


def filled(endpoint: Endpoint, base: str) -> Shown:
    # replace, not format: the examples are full of JSON braces
    return Shown(
        endpoint, endpoint.curl.replace("{base}", base), endpoint.python.replace("{base}", base)
    )


async def docs(request: Request) -> Response:
    base = base_url(request)
    sections = [(s, [filled(e, base) for e in s.endpoints]) for s in SECTIONS]
    return await page(request, "docs.html", sections=sections)
