"""data: URLs, magic-number sniffing and header-only size checks (no network)."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from minitoolai.errors import InvalidRequest, PayloadTooLarge
from minitoolai.vision import FetchPolicy, load_image, probe_image
from minitoolai.vision.headers import header_size, sniff_format

from .helpers import make_animated_gif, make_image, png_header_only


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_valid_data_url() -> None:
    png = make_image("PNG", (7, 5))
    image = asyncio.run(load_image(data_url(png), FetchPolicy()))
    assert (image.format, image.mime, image.width, image.height) == ("png", "image/png", 7, 5)
    assert image.data == png
    assert image.data_url() == data_url(png)


def test_declared_mime_does_not_decide_the_format() -> None:
    png = make_image("PNG", (3, 4))
    image = asyncio.run(load_image(data_url(png, "image/jpeg"), FetchPolicy()))
    assert (image.format, image.mime) == ("png", "image/png")


def test_data_url_tolerates_case_and_line_wrapping() -> None:
    jpg = make_image("JPEG", (9, 9))
    b64 = base64.b64encode(jpg).decode()
    wrapped = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    image = asyncio.run(load_image(f"DATA:IMAGE/JPEG;BASE64,{wrapped}", FetchPolicy()))
    assert image.format == "jpeg"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("data:image/png;base64,@@@not base64@@@", "invalid_image_url"),
        ("data:image/png;base64,iVBORw0KGgo", "invalid_image_url"),  # bad padding
        ("data:image/png;base64,", "invalid_image_url"),
        ("data:image/png,rawbytes", "invalid_image_url"),  # not base64
        ("data:text/plain;base64,aGVsbG8=", "invalid_image_url"),
        ("data:;base64,aGVsbG8=", "invalid_image_url"),
        (
            "data:image/png;base64," + base64.b64encode(os.urandom(300)).decode(),
            "invalid_image_format",
        ),
        (
            "data:image/svg+xml;base64," + base64.b64encode(b"<svg/>").decode(),
            "invalid_image_format",
        ),
    ],
)
def test_bad_data_urls(url: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        asyncio.run(load_image(url, FetchPolicy()))
    assert (info.value.code, info.value.param, info.value.status_code) == (code, "messages", 400)


def test_oversized_data_url_is_413_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    big = data_url(make_image("PNG", (300, 300)) + os.urandom(20_000))
    monkeypatch.setattr(base64, "b64decode", lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(PayloadTooLarge) as info:
        asyncio.run(load_image(big, FetchPolicy(max_bytes=10_000)))
    assert info.value.code == "image_too_large"


def test_data_url_bomb_refused() -> None:
    with pytest.raises(InvalidRequest) as info:
        asyncio.run(load_image(data_url(png_header_only(20000, 20000)), FetchPolicy()))
    assert info.value.code == "image_too_many_pixels"


def test_pillow_bomb_guard_is_reported_the_same_way() -> None:
    # Cap above Pillow's own limit: Pillow refuses first, and we still say "too many pixels".
    with pytest.raises(InvalidRequest) as info:
        probe_image(png_header_only(20000, 20000), max_pixels=10**9)
    assert info.value.code == "image_too_many_pixels"


@pytest.mark.parametrize(
    ("data", "fmt", "size"),
    [
        (make_image("JPEG", (31, 17)), "jpeg", (31, 17)),
        (make_image("JPEG", (20, 10), progressive=True), "jpeg", (20, 10)),
        (make_image("PNG", (5, 300)), "png", (5, 300)),
        (make_image("GIF", (12, 8)), "gif", (12, 8)),
        (make_animated_gif((9, 7), frames=4), "gif", (9, 7)),
        (make_image("WEBP", (33, 17)), "webp", (33, 17)),  # VP8 (lossy)
        (make_image("WEBP", (21, 11), lossless=True), "webp", (21, 11)),  # VP8L
        (
            make_image("WEBP", (19, 13), exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"),
            "webp",
            (19, 13),
        ),  # VP8X (extended)
    ],
)
def test_header_sizes_match_pillow(data: bytes, fmt: str, size: tuple[int, int]) -> None:
    assert sniff_format(data) == fmt
    assert header_size(fmt, data) == size
    image = probe_image(data, max_pixels=10**6)
    assert (image.format, image.width, image.height) == (fmt, *size)


def test_vp8x_chunk_is_really_exercised() -> None:
    data = make_image("WEBP", (19, 13), exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00")
    assert data[12:16] == b"VP8X"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GIF89a",  # truncated header
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 30,  # no IHDR
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 7 + b"\xff\xda",  # SOS before a frame
        b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 20,  # bad VP8 start code
        make_image("PNG", (10, 10))[:40],  # valid header, truncated rest: Pillow notices
    ],
)
def test_broken_headers_are_400(data: bytes) -> None:
    with pytest.raises(InvalidRequest) as info:
        probe_image(data, max_pixels=10**6)
    assert info.value.code == "invalid_image_format"


def test_image_repr_does_not_dump_bytes() -> None:
    image = probe_image(make_image("PNG", (2, 2)), max_pixels=100)
    assert "data=" not in repr(image) and "png" in repr(image)
