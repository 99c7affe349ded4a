"""``ImageInput``: checked image bytes, and the check that makes them.

Whatever the source (remote URL or ``data:`` URL), bytes become an ``ImageInput`` only through
``probe_image``, so every image an engine sees has a real, supported format and a size under
the pixel cap, established without decoding a single pixel.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass, field

from minitoolai.errors import InvalidRequest
from minitoolai.vision import _errors
from minitoolai.vision.headers import MIME_TYPES, header_size, sniff_format

_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}


@dataclass(frozen=True, slots=True)
class ImageInput:
    """An image ready for an engine: bytes plus what was learned from them.

    ``format`` is one of ``jpeg``, ``png``, ``webp``, ``gif`` (from magic numbers, not from a
    name or a declared type); ``mime`` matches it. ``width``/``height`` come from the header.
    """

    data: bytes = field(repr=False)
    mime: str
    format: str
    width: int
    height: int

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    def data_url(self) -> str:
        """``data:<mime>;base64,...``: the only form engines receive (they never fetch)."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


def probe_image(data: bytes, *, max_pixels: int) -> ImageInput:
    """Identify ``data`` and check its size; raise ``InvalidRequest`` naming the problem.

    Order matters: magic number, then our own header read and pixel cap, and only then Pillow
    (``Image.open`` reads headers lazily; ``load()`` is never called), so a decompression bomb
    is refused before any decoder allocates memory for it.
    """
    fmt = sniff_format(data)
    if fmt is None:
        raise _errors.invalid(
            "Image data is not a supported image: expected JPEG, PNG, WebP or GIF bytes.",
            _errors.INVALID_FORMAT,
        )
    try:
        width, height = header_size(fmt, data)
    except ValueError as exc:
        raise _bad_header(fmt, exc) from None
    _check_pixels(width, height, max_pixels)
    width, height = _pillow_size(fmt, data, max_pixels)
    _check_pixels(width, height, max_pixels)
    return ImageInput(data=data, mime=MIME_TYPES[fmt], format=fmt, width=width, height=height)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise _errors.invalid(
            f"Image is {width}x{height} pixels, more than the limit of {max_pixels} pixels.",
            _errors.TOO_MANY_PIXELS,
        )


def _bad_header(fmt: str, exc: Exception) -> InvalidRequest:
    return _errors.invalid(
        f"Image data looks like {fmt.upper()} but its header is invalid ({exc}).",
        _errors.INVALID_FORMAT,
    )


def _pillow_size(fmt: str, data: bytes, max_pixels: int) -> tuple[int, int]:
    """Let Pillow parse the header too (it knows GIF frames larger than the screen, etc.).
    Imported here: a gateway that is sent no image never loads it."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Pillow warns above its own bomb threshold; our cap has been applied already.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[fmt]]) as im:
                return im.size
    except Image.DecompressionBombError:
        raise _errors.invalid(
            "Image has too many pixels to be processed safely.",
            _errors.TOO_MANY_PIXELS,
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # UnidentifiedImageError: OSError
        raise _bad_header(fmt, exc) from None
