"""Fetching from an allowed server: real images in, caps and limits enforced."""

from __future__ import annotations

import asyncio
import base64
import ssl
import time

import pytest
from PIL import Image, ImageFile

from minitoolai.errors import InvalidRequest, PayloadTooLarge
from minitoolai.vision import FetchPolicy, MiB, load_image

from .helpers import STREAM_TOTAL, FakeResolver, Net, server_policy

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    ("name", "fmt", "mime", "size"),
    [
        ("image.jpg", "jpeg", "image/jpeg", (64, 48)),
        ("image.png", "png", "image/png", (40, 30)),
        ("image.webp", "webp", "image/webp", (33, 17)),
        ("anim.gif", "gif", "image/gif", (16, 12)),
        ("png-named.jpg", "png", "image/png", (40, 30)),  # served as image/jpeg: bytes win
    ],
)
async def test_real_images_are_accepted(
    net: Net, name: str, fmt: str, mime: str, size: tuple[int, int]
) -> None:
    image = await load_image(net.url(f"/img/{name}"), server_policy())
    assert (image.format, image.mime, (image.width, image.height)) == (fmt, mime, size)
    assert image.data == net.state.files[name][0]
    assert image.data_url() == f"data:{mime};base64," + base64.b64encode(image.data).decode()
    assert net.state.hits == [f"/img/{name}"]
    assert net.guard.loopback == [("127.0.0.2", net.port)]  # the guard sees real connects
    assert net.listener.connections == 0


async def test_hostname_is_kept_for_the_host_header(net: Net) -> None:
    resolver = FakeResolver({"images.test": ["127.0.0.2"]})
    await load_image(
        f"HTTP://Images.Test:{net.port}/img/image.png", server_policy(), resolver=resolver
    )
    assert net.state.hosts == [f"images.test:{net.port}"]


@pytest.mark.parametrize("spelling", ["0x7f000002", "2130706434", "127.2", "[::ffff:127.0.0.2]"])
async def test_numeric_spelling_of_an_allowed_address_connects_canonically(
    net: Net, spelling: str
) -> None:
    # All mean 127.0.0.2: allowed, and fetched from exactly that address.
    image = await load_image(f"http://{spelling}:{net.port}/img/image.png", server_policy())
    assert image.format == "png"
    assert net.guard.loopback == [("127.0.0.2", net.port)]


async def test_random_bytes_named_png_are_refused(net: Net) -> None:
    with pytest.raises(InvalidRequest) as info:
        await load_image(net.url("/img/random.png"), server_policy())
    assert info.value.code == "invalid_image_format"
    assert "JPEG, PNG, WebP or GIF" in info.value.message


async def test_pixel_bomb_refused_from_its_header(
    net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[object] = []
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a))
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(InvalidRequest) as info:
        await load_image(net.url("/img/bomb.png"), server_policy())
    assert info.value.code == "image_too_many_pixels"
    assert "20000x20000" in info.value.message
    assert opened == []  # refused before Pillow was even asked


async def test_pixel_cap_is_configurable(net: Net) -> None:
    with pytest.raises(InvalidRequest) as info:
        await load_image(net.url("/img/image.jpg"), server_policy(max_pixels=64 * 48 - 1))
    assert info.value.code == "image_too_many_pixels"
    image = await load_image(net.url("/img/image.jpg"), server_policy(max_pixels=64 * 48))
    assert image.width * image.height == 64 * 48


async def test_streamed_body_over_the_cap_is_aborted(net: Net) -> None:
    cap = 256 * 1024
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge) as info:
        await load_image(net.url("/stream"), server_policy(max_bytes=cap))
    assert info.value.code == "image_too_large" and info.value.status_code == 413
    assert time.monotonic() - started < 5
    await asyncio.wait_for(net.state.stream_done.wait(), 5)
    # The server got well past the cap (so the streaming check fired, not a header check)
    # but was cut off long before sending everything.
    assert cap < net.state.streamed < STREAM_TOTAL


async def test_content_length_over_the_cap_is_refused_before_the_body(net: Net) -> None:
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge):
        await load_image(net.url("/big-length"), server_policy(max_bytes=MiB, timeout_s=5))
    assert time.monotonic() - started < 2  # did not wait for (or read) the 100 MiB body


async def test_slow_server_hits_the_total_timeout(net: Net) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidRequest) as info:
        await load_image(net.url("/slow"), server_policy(timeout_s=0.5))
    assert info.value.code == "image_fetch_timeout"
    assert 0.4 < time.monotonic() - started < 3


async def test_stalled_body_hits_the_total_timeout(net: Net) -> None:
    with pytest.raises(InvalidRequest) as info:
        await load_image(net.url("/slow-body"), server_policy(timeout_s=0.5))
    assert info.value.code == "image_fetch_timeout"


async def test_redirects_up_to_the_limit_are_followed(net: Net) -> None:
    image = await load_image(net.url("/hop/3"), server_policy(max_redirects=3))
    assert image.format == "png"
    assert net.state.hits == ["/hop/3", "/hop/2", "/hop/1", "/hop/0"]


async def test_too_many_redirects_refused(net: Net) -> None:
    with pytest.raises(InvalidRequest) as info:
        await load_image(net.url("/hop/4"), server_policy(max_redirects=3))
    assert info.value.code == "image_fetch_failed"
    assert "redirected more than 3 times" in info.value.message
    assert net.state.hits == ["/hop/4", "/hop/3", "/hop/2", "/hop/1"]  # 4th hop never made


async def test_zero_redirects_allowed(net: Net) -> None:
    with pytest.raises(InvalidRequest):
        await load_image(net.url("/hop/1"), server_policy(max_redirects=0))
    assert net.state.hits == ["/hop/1"]


async def test_http_error_status_is_a_400(net: Net) -> None:
    with pytest.raises(InvalidRequest) as info:
        await load_image(net.url("/missing"), server_policy())
    assert info.value.code == "image_fetch_failed" and "404" in info.value.message


async def test_connection_refused_is_a_400(net: Net) -> None:
    policy = FetchPolicy(allowed_networks=["127.0.0.3/32"], timeout_s=2)
    with pytest.raises(InvalidRequest) as info:
        await load_image(f"http://127.0.0.3:{net.port}/img/image.png", policy)
    assert info.value.code == "image_fetch_failed"


async def test_https_keeps_sni_and_certificate_name_while_pinned(
    net: Net, tls: tuple[int, ssl.SSLContext]
) -> None:
    port, client_ctx = tls
    resolver = FakeResolver({"images.test": ["127.0.0.2"]})
    policy = server_policy(ssl_context=client_ctx)
    image = await load_image(
        f"https://images.test:{port}/img/image.webp", policy, resolver=resolver
    )
    assert image.format == "webp"
    assert net.guard.loopback == [("127.0.0.2", port)]
    # The same server by address: the certificate does not name 127.0.0.2, so TLS must fail.
    with pytest.raises(InvalidRequest) as info:
        await load_image(f"https://127.0.0.2:{port}/img/image.webp", policy)
    assert info.value.code == "image_fetch_failed"
    # And certificates are verified by default (the test CA is not a system CA).
    with pytest.raises(InvalidRequest):
        await load_image(
            f"https://images.test:{port}/img/image.webp", server_policy(), resolver=resolver
        )
