"""The entry point the chat pipeline calls: turn an image part's URL into a checked image."""

from __future__ import annotations

from minitoolai.vision.dataurl import decode_data_url, is_data_url
from minitoolai.vision.fetch import Resolver, fetch_image_bytes
from minitoolai.vision.image import ImageInput, probe_image
from minitoolai.vision.policy import FetchPolicy


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
