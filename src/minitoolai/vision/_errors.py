"""Error constructors for the vision layer.

Every refusal names ``param="messages"`` (image parts live inside messages) and carries a stable
``code`` so clients, logs and tests can tell *why* an image was refused without parsing prose.
"""

from __future__ import annotations

from minitoolai.errors import InvalidRequest, PayloadTooLarge

#: malformed URL or image part, unsupported scheme, bad data: URL
INVALID_URL = "invalid_image_url"
#: ``detail`` is not one of auto/low/high
INVALID_DETAIL = "invalid_image_detail"
#: the URL (or a redirect hop) points at an address the fetch policy forbids
FORBIDDEN = "image_url_forbidden"
#: DNS failure, connection failure, non-2xx answer, too many redirects
FETCH_FAILED = "image_fetch_failed"
#: the whole fetch (all hops) took longer than the policy allows
FETCH_TIMEOUT = "image_fetch_timeout"
#: the bytes are not a JPEG, PNG, WebP or GIF image (or its header is broken)
INVALID_FORMAT = "invalid_image_format"
#: width x height above the policy's pixel cap (decompression-bomb guard)
TOO_MANY_PIXELS = "image_too_many_pixels"
#: more bytes than the policy's byte cap
TOO_LARGE = "image_too_large"


def invalid(message: str, code: str) -> InvalidRequest:
    """A 400 about an image part."""
    return InvalidRequest(message, param="messages", code=code)


def too_large(max_bytes: int) -> PayloadTooLarge:
    """A 413: the image is bigger than the byte cap."""
    return PayloadTooLarge(
        f"Image is larger than the limit of {max_bytes} bytes.", param="messages", code=TOO_LARGE
    )
