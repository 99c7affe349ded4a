"""The entry points the chat pipeline calls: read an image part, turn its URL into an image."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from minitoolai.vision import _errors
from minitoolai.vision.dataurl import decode_data_url, is_data_url
from minitoolai.vision.fetch import Resolver, fetch_image_bytes
from minitoolai.vision.image import ImageInput, probe_image
from minitoolai.vision.policy import FetchPolicy
from minitoolai.vision.tokens import check_detail


@dataclass(frozen=True, slots=True)
class ImagePart:
    """The fields of one ``{"type": "image_url", "image_url": {...}}`` message part."""

    url: str
    detail: str = "auto"


def parse_image_part(part: Mapping[str, object]) -> ImagePart:
    """Validate an ``image_url`` content part (shape only; nothing is fetched).

    Accepts ``image_url`` as an object ``{"url", "detail"?}`` or, as some clients send it, a
    bare string.
    """
    raw = part.get("image_url")
    if isinstance(raw, str):
        raw = {"url": raw}
    if not isinstance(raw, Mapping):
        raise _errors.invalid(
            "Image part must have an image_url object with a url.", _errors.INVALID_URL
        )
    url, detail = raw.get("url"), raw.get("detail", "auto")
    if not isinstance(url, str) or not url:
        raise _errors.invalid("Image part's image_url.url must be a string.", _errors.INVALID_URL)
    return ImagePart(url=url, detail=check_detail("auto" if detail is None else detail))


async def load_image(
    url: str, policy: FetchPolicy, *, resolver: Resolver | None = None
) -> ImageInput:
    """Turn an image URL from a request into checked bytes.

    ``data:image/...;base64,`` URLs are decoded; ``http(s)`` URLs are fetched under ``policy``
    (see ``minitoolai.vision.fetch``). Either way the result passed ``probe_image``. Raises
    ``InvalidRequest`` (400) or ``PayloadTooLarge`` (413), always with ``param="messages"``
    and a ``code`` from ``minitoolai.vision._errors``.
    """
    if is_data_url(url):
        data = decode_data_url(url, max_bytes=policy.max_bytes)
    else:
        data = await fetch_image_bytes(url, policy, resolver=resolver)
    return probe_image(data, max_pixels=policy.max_pixels)
