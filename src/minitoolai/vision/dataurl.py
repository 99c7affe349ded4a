"""``data:image/...;base64,...`` URLs: decode them strictly, within the byte cap.

The declared media type must be ``image/*`` (the chat API's contract), but it is *not* trusted
for the format: ``probe_image`` decides that from the bytes, so ``data:image/jpeg`` carrying PNG
bytes is a PNG.
"""

from __future__ import annotations

import base64
import binascii
import re

from minitoolai.errors import InvalidRequest
from minitoolai.vision import _errors

# data:[<type>/<subtype>][;param=value]*;base64,<payload>  (case-insensitive prefix)
_DATA_URL = re.compile(
    r"^data:(?P<type>[a-z0-9.+-]+/[a-z0-9.+-]+)(?P<params>(?:;[^;,]*)*?);base64,",
    re.IGNORECASE,
)
_WHITESPACE = re.compile(rb"[ \t\r\n]+")


def is_data_url(url: str) -> bool:
    """Whether ``url`` uses the ``data:`` scheme (then it is never fetched)."""
    return url[:5].lower() == "data:"


def decode_data_url(url: str, *, max_bytes: int) -> bytes:
    """The bytes of a base64 image data URL; ``InvalidRequest``/``PayloadTooLarge`` otherwise.

    The size is checked from the encoded length *before* decoding, so an oversized payload
    costs no allocation beyond the request body that already holds it.
    """
    match = _DATA_URL.match(url)
    if match is None:
        raise _bad("Image data URL must look like data:image/<type>;base64,<data>.")
    if not match["type"].lower().startswith("image/"):
        raise _bad(f"Image data URL has media type {match['type']!r}; expected image/*.")
    payload = url[match.end() :].encode("ascii", errors="replace")
    payload = _WHITESPACE.sub(b"", payload)  # some clients wrap base64 at 76 columns
    if len(payload) // 4 * 3 > max_bytes + 2:
        raise _errors.too_large(max_bytes)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("Image data URL does not contain valid base64.") from None
    if not data:
        raise _bad("Image data URL is empty.")
    if len(data) > max_bytes:
        raise _errors.too_large(max_bytes)
    return data


def _bad(message: str) -> InvalidRequest:
    return _errors.invalid(message, _errors.INVALID_URL)
