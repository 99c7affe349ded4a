"""Reading a submitted form (``application/x-www-form-urlencoded``), bounded in size.

Our forms are small; the standard library parses them, so no multipart dependency is needed.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from minitoolai.http.responses import body_length

MAX_FORM = 64 * 1024


class FormTooLarge(Exception):
    pass


class Form:
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def get(self, name: str, default: str = "") -> str:
        for key, value in self._pairs:
            if key == name:
                return value
        return default

    def all(self, name: str) -> list[str]:
        return [value for key, value in self._pairs if key == name]


async def read_form(request: Request) -> Form:
    """The form's fields; an empty form for another content type (its CSRF check then fails)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return Form([])
    length = body_length(request)
    if length is not None and length > MAX_FORM:
        raise FormTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise FormTooLarge
    try:
        return Form(
            parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=100)
        )
    except ValueError:  # more fields than any of our forms has
        raise FormTooLarge from None
