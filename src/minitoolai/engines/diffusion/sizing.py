"""Turning a requested width/height into one Stable Diffusion can generate.

SD's VAE works on 8x8 pixel blocks, so diffusers refuses sizes that are not multiples of 8. The
API allows any integer from 256 to 1344, so we generate at the next multiple of 8 up and then
centre-crop to the exact size asked for: the client gets the pixels it requested, unresampled
(cropping at most 7 px per axis, a few px per edge), and the model never works below the size
it was given. 1344 is itself a multiple of 8, so rounding up never leaves the API's range.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from PIL.Image import Image

MULTIPLE: Final = 8


def generation_size(width: int, height: int) -> tuple[int, int]:
    """The size to generate at: each side rounded up to a multiple of 8."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return -(-width // MULTIPLE) * MULTIPLE, -(-height // MULTIPLE) * MULTIPLE


def crop_to(image: Image, width: int, height: int) -> Image:
    """``image`` centre-cropped to ``width`` x ``height`` (returned as is when it already fits)."""
    if image.size == (width, height):
        return image
    left = (image.width - width) // 2
    top = (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))
