"""Image parts of a chat request: fetched safely, checked, inlined as data URLs, counted.

Engines never see a remote URL: the gateway fetches every image itself under the operator's
``FetchPolicy`` (see ``minitoolai.vision``), so an upstream or local engine cannot be made to
reach into the operator's network, and the image tokens enter the hold before any money moves.
"""

from __future__ import annotations

import asyncio

from minitoolai.chat.schemas import ImageURL, Message
from minitoolai.vision import FetchPolicy, ImageInput, Resolver, image_tokens, load_image


class ImageResolver:
    """Loads the images of chat requests, at most ``concurrency`` at a time in this process,
    so the bytes in flight stay under ``concurrency * policy.max_bytes`` whatever arrives."""

    def __init__(
        self, policy: FetchPolicy, resolver: Resolver | None = None, *, concurrency: int = 4
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self._slots = asyncio.Semaphore(concurrency)

    async def _load(self, url: str) -> ImageInput:
        async with self._slots:
            return await load_image(url, self.policy, resolver=self.resolver)

    async def __call__(self, model: str, messages: list[Message]) -> int:
        """Inline every image part of ``messages`` (in place, as a ``data:`` URL with its
        ``detail``) and return the image tokens they cost."""
        parts = [part for message in messages for part in message.images()]
        images = await asyncio.gather(*(self._load(part.image_url.url) for part in parts))
        tokens = 0
        for part, image in zip(parts, images, strict=True):
            detail = part.image_url.detail
            part.image_url = ImageURL(url=image.data_url(), detail=detail)
            tokens += image_tokens(model, image.width, image.height, detail)
        return tokens
