"""Jinja2 with autoescape, the templates shipped in the package, and one way to answer a page.

``page()`` renders a template with what every page needs (the person, the CSRF token, this
server's base URL) and adds the security headers (``web.security``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from minitoolai.http.deps import services
from minitoolai.money import nano_to_usd
from minitoolai.web.security import secure_page
from minitoolai.web.session import csrf_token, current, remember_anonymous_csrf

if TYPE_CHECKING:
    from jinja2 import Environment

HERE = Path(__file__).resolve().parent


@functools.cache
def env() -> Environment:
    """Made at the first page (a gateway that serves only the API never loads jinja2); each
    template is compiled at its first render, as before."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    made = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(
            ["html"], default_for_string=True, default=False
        ),  # .txt: snippets
        undefined=StrictUndefined,  # a misspelt name fails the test that renders it
        trim_blocks=True,
        lstrip_blocks=True,
    )
    made.filters["usd"] = usd
    return made


def usd(nano: int | None) -> str:
    """Nano-dollars as US dollars, exact (no float), at least two decimals: ``$0.000123``."""
    text = nano_to_usd(nano or 0)
    if "." not in text:
        return f"${text}.00"
    whole, frac = text.split(".")
    return f"${whole}.{frac.rstrip('0').ljust(2, '0')}"


def base_url(request: Request) -> str:
    configured = services(request).settings.public_base_url
    return (configured or str(request.base_url)).rstrip("/")


async def page(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    session = await current(request)
    html = (
        env()
        .get_template(template)
        .render(
            person=session.person if session else None,
            csrf_token=csrf_token(request, session),
            base_url=base_url(request),
            path=request.url.path,
            **context,
        )
    )
    response = HTMLResponse(html, status_code=status_code)
    remember_anonymous_csrf(request, response)
    return secure_page(response)


def redirect(target: str) -> Response:
    """303: after a POST the browser GETs the target (a reload does not resubmit)."""
    return secure_page(RedirectResponse(target, status_code=303))
