"""Image parts of a chat request: fetched safely, checked, inlined as data URLs, counted.

Engines never see a remote URL: the gateway fetches every image itself under the operator's
``FetchPolicy`` (see ``minitoolai.vision``), so an upstream or local engine cannot be made to
reach into the operator's network, and the image tokens enter the hold before any money moves.
"""

from __future__ import annotations

import asyncio
from typing import Any

from minitoolai.vision import (
    FetchPolicy,
    ImageInput,
    Resolver,
    image_tokens,
    load_image,
    parse_image_part,
)


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

    async def __call__(
        self, model: str, messages: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], int]:
        """Messages with every image part inlined, and the image tokens they cost."""
        parts = [
            part
            for message in messages
            if isinstance(message.get("content"), list)
            for part in message["content"]
            if isinstance(part, dict) and part.get("type") == "image_url"
        ]
        refs = [parse_image_part(p) for p in parts]
        images = await asyncio.gather(*(self._load(ref.url) for ref in refs))
        tokens = 0
        for part, ref, image in zip(parts, refs, images, strict=True):
            part["image_url"] = {"url": image.data_url(), "detail": ref.detail}
            tokens += image_tokens(model, image.width, image.height, ref.detail)
        return messages, tokens
