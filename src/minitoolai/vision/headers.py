"""Image format and dimensions, read from the first bytes of the file only.

Why not just ask Pillow? Because some of Pillow's openers do real work before its own
decompression-bomb check runs (the WebP opener builds an animation decoder that allocates the
whole canvas). Reading the few header bytes ourselves lets us refuse a 20000x20000 image having
touched nothing but its header; Pillow is then only a second opinion on images already under
the cap. The format comes from magic numbers, never from a file name or Content-Type.
"""

from __future__ import annotations

#: format name -> MIME type, for the formats the chat endpoint accepts
MIME_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif"}

# JPEG start-of-frame markers (they carry the size); C4, C8 and CC are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def sniff_format(data: bytes) -> str | None:
    """``"jpeg"``, ``"png"``, ``"webp"``, ``"gif"`` from the magic number, else ``None``."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    return None


def header_size(fmt: str, data: bytes) -> tuple[int, int]:
    """(width, height) from the header of an image already sniffed as ``fmt``.

    Raises ``ValueError`` if the header is truncated, malformed or says 0 pixels.
    """
    reader = {"jpeg": _jpeg_size, "png": _png_size, "gif": _gif_size, "webp": _webp_size}[fmt]
    width, height = reader(data)
    if width <= 0 or height <= 0:
        raise ValueError(f"{fmt} header gives an empty size {width}x{height}")
    return width, height


def _u16be(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def _le(data: bytes, at: int, n: int) -> int:
    return int.from_bytes(data[at : at + n], "little")


def _need(data: bytes, n: int, what: str) -> None:
    if len(data) < n:
        raise ValueError(f"truncated {what} header")


def _png_size(data: bytes) -> tuple[int, int]:
    # signature(8) | length(4)=13 | "IHDR" | width(4) | height(4) | ...
    _need(data, 24, "PNG")
    if data[12:16] != b"IHDR" or int.from_bytes(data[8:12], "big") != 13:
        raise ValueError("PNG does not start with an IHDR chunk")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _gif_size(data: bytes) -> tuple[int, int]:
    # "GIF89a" | logical screen width(2, LE) | height(2, LE)
    _need(data, 10, "GIF")
    return _le(data, 6, 2), _le(data, 8, 2)


def _webp_size(data: bytes) -> tuple[int, int]:
    # "RIFF" size "WEBP" | chunk fourcc(4) | chunk size(4) | payload at 20
    _need(data, 30, "WebP")
    fourcc, p = data[12:16], 20
    if fourcc == b"VP8X":  # extended: canvas size, 24-bit little-endian minus one
        return _le(data, p + 4, 3) + 1, _le(data, p + 7, 3) + 1
    if fourcc == b"VP8L":  # lossless: 0x2f, then 14-bit width-1 and height-1
        if data[p] != 0x2F:
            raise ValueError("bad VP8L signature")
        bits = _le(data, p + 1, 4)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if fourcc == b"VP8 ":  # lossy: frame tag(3), start code 9d 01 2a, 14-bit width/height
        if data[p + 3 : p + 6] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        return _le(data, p + 6, 2) & 0x3FFF, _le(data, p + 8, 2) & 0x3FFF
    raise ValueError(f"unknown WebP chunk {fourcc!r}")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    # Walk the marker segments after SOI until a start-of-frame; stop at SOS/EOI.
    i, n = 2, len(data)
    while i < n:
        if data[i] != 0xFF:
            raise ValueError("JPEG marker expected")
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # stand-alone markers, no length
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        _need(data, i + 2, "JPEG")
        length = _u16be(data, i)
        if length < 2:
            raise ValueError("bad JPEG segment length")
        if marker in _JPEG_SOF:
            # length(2) | precision(1) | height(2) | width(2)
            _need(data, i + 7, "JPEG")
            return _u16be(data, i + 5), _u16be(data, i + 3)
        i += length
    raise ValueError("JPEG has no frame header")
