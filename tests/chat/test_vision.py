"""Image input through the chat endpoint: fetched safely, inlined, billed with image tokens."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from minitoolai.chat.tokens import count_messages
from tests.chat.conftest import database_url
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway
from tests.support.servers import serve_in_thread
from tests.vision.helpers import make_image, png_header_only

IMAGE_HOST = "127.0.0.2"  # the one loopback address the gateway is told to trust


class CountingListener:
    """A TCP listener that only counts connections: hostile URLs aim here and must not arrive."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    counting = CountingListener()
    yield counting
    counting.sock.close()


@pytest.fixture
def image_server(listener: CountingListener) -> Iterator[str]:
    files = {
        "/cat.png": make_image("PNG", (1024, 1024)),
        "/photo.jpg": make_image("PNG", (64, 48)),  # a PNG wearing a .jpg name
        "/noise.png": b"\x00not an image at all" * 10,
        "/bomb.png": png_header_only(20000, 20000),
    }

    async def serve(request: Request) -> Response:
        if request.url.path == "/hop":
            return RedirectResponse(f"http://127.0.0.1:{listener.port}/x.png", status_code=302)
        data = files.get(request.url.path)
        return Response(data, media_type="image/jpeg") if data else Response(status_code=404)

    app = Starlette(routes=[Route("/{path:path}", serve)])
    with serve_in_thread(app, host=IMAGE_HOST) as url:
        yield url


@pytest.fixture
def vision_gateway(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Gateway]:
    deps: list[dict[str, object]] = [
        {"model": "gpt-4o", "provider": "up"},
        {"model": "gpt-4o-mini", "provider": "up"},
    ]
    with running_gateway(
        tmp_path,
        database_url("sqlite", tmp_path),
        {"up": upstream},
        deps,
        image_fetch_allow=[f"{IMAGE_HOST}/32"],
    ) as gw:
        yield gw


def ask(gw: Gateway, url: str, model: str = "gpt-4o", detail: str = "high") -> requests.Response:
    body = {
        "model": model,
        "stream": False,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What's in this image?"},
                    {"type": "image_url", "image_url": {"url": url, "detail": detail}},
                ],
            }
        ],
    }
    return requests.post(
        gw.url + "/api/chat-completions/", headers=gw.headers(), json=body, timeout=30
    )


TEXT_ONLY = count_messages(
    [{"role": "user", "content": [{"type": "text", "text": "What's in this image?"}]}]
)


def test_remote_image_is_inlined_and_billed_with_its_tokens(
    vision_gateway: Gateway, image_server: str, upstream: FakeUpstream
) -> None:
    gw = vision_gateway
    before = gw.balance_nano()
    reply = ask(gw, image_server + "/cat.png")
    assert reply.status_code == 200, reply.text
    # OpenAI's documented example: 1024x1024 at high detail on gpt-4o costs 765 tokens
    assert reply.json()["usage"]["prompt_tokens"] == TEXT_ONLY + 765
    assert before - gw.balance_nano() == (TEXT_ONLY + 765) * 2500 + 5 * 10000
    sent = upstream.requests[-1]["messages"][0]["content"][1]["image_url"]
    assert sent["url"].startswith("data:image/png;base64,") and sent["detail"] == "high"


def test_data_url_and_renamed_png(
    vision_gateway: Gateway, image_server: str, upstream: FakeUpstream
) -> None:
    gw = vision_gateway
    assert (
        ask(gw, image_server + "/photo.jpg", model="gpt-4o-mini", detail="low").status_code == 200
    )
    assert upstream.requests[-1]["messages"][0]["content"][1]["image_url"]["url"].startswith(
        "data:image/png"
    )
    data_url = "data:image/webp;base64," + base64.b64encode(make_image("WEBP", (32, 32))).decode()
    reply = ask(gw, data_url, model="gpt-4o-mini", detail="low")
    assert reply.json()["usage"]["prompt_tokens"] == TEXT_ONLY + 2833  # gpt-4o-mini's low base


@pytest.mark.parametrize(
    "path_or_url",
    [
        "http://127.0.0.1:{port}/x.png",
        "http://127.1:{port}/x.png",
        "http://2130706433:{port}/x.png",
        "http://0x7f000001:{port}/x.png",
        "http://[::1]:{port}/x.png",
        "http://[::ffff:127.0.0.1]:{port}/x.png",
        "http://localhost:{port}/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x.png",
        "ftp://example.com/x.png",
        "file:///etc/passwd",
        "{server}/hop",
        "{server}/noise.png",
        "{server}/bomb.png",
    ],
)
def test_hostile_or_bad_images_are_400_connect_nowhere_and_cost_nothing(
    vision_gateway: Gateway,
    image_server: str,
    listener: CountingListener,
    upstream: FakeUpstream,
    path_or_url: str,
) -> None:
    gw = vision_gateway
    before = gw.balance_nano()
    url = path_or_url.format(port=listener.port, server=image_server)
    reply = ask(gw, url)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == "messages" and error["code"]
    assert listener.connections == 0  # refused before any connection
    assert upstream.calls == 0 and gw.balance_nano() == before and gw.idle_held_nano() == 0


def test_images_in_the_seed_stream(vision_gateway: Gateway, image_server: str) -> None:
    gw = vision_gateway
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "developer", "content": "You are a helpful assistant."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What's in this image?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": image_server + "/cat.png", "detail": "auto"},
                    },
                ],
            },
        ],
        "temperature": 0.7,
        "max_completion_tokens": 300,
    }
    text = requests.post(
        gw.url + "/api/chat-completions/", headers=gw.headers(), json=body, timeout=30
    ).text
    usage = orjson.loads(text.strip().split("\n\n")[-2][6:])["usage"]
    assert usage["prompt_tokens"] > 5667  # at least one gpt-4o-mini tile
