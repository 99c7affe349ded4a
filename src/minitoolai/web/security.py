"""What every page response carries, and the checks on what a browser sends.

- A strict Content-Security-Policy: scripts, styles and images only from this origin (no inline
  script or style anywhere), no framing, forms only to this origin.
- Redirect targets after log-in: only same-site relative paths ("/keys"), never "//evil" or
  "https://evil" (an open redirect).
"""

from __future__ import annotations

from starlette.responses import Response

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def secure_page(response: Response, *, private: bool = True) -> Response:
    """Add the page headers; ``private`` pages (anything about a person) are never cached."""
    for name, value in PAGE_HEADERS.items():
        response.headers[name] = value
    if private:
        response.headers["Cache-Control"] = "no-store"
    return response


def safe_next(target: str | None, default: str = "/dashboard") -> str:
    """``target`` if it is a path on this site, else ``default``."""
    if not target or len(target) > 500 or not target.isprintable():
        return default
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 0x21 for c in target):  # no whitespace tricks ("/\t/evil")
        return default
    return target
