"""The fast lane answers the paid surfaces' exact paths as Starlette's stack would: the same
status, body and headers for an answer, an API error, a routing error and an unexpected error;
other methods and paths still go through Starlette; and it really bypasses the stack."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from minitoolai.app import _App
from minitoolai.errors import APIError, InvalidRequest
from minitoolai.http.responses import JSON, on_api_error, on_http_error, on_unexpected
from tests.support.servers import serve_in_thread

SEEN: list[dict[str, Any]] = []


async def ok(request: Request) -> Response:
    SEEN.append(dict(request.scope))
    body = await request.body()
    return JSON(
        {"route": request.scope["route"].path, "app": request.app is not None, "n": len(body)}
    )


async def api_error(request: Request) -> Response:
    raise InvalidRequest("bad value", param="x")


async def http_error(request: Request) -> Response:
    raise HTTPException(status_code=404, detail="nothing here")


async def boom(request: Request) -> Response:
    raise RuntimeError("unexpected")


ROUTES = [
    Route("/ok", ok, methods=["POST"]),
    Route("/api-error", api_error, methods=["POST"]),
    Route("/http-error", http_error, methods=["POST"]),
    Route("/boom", boom, methods=["POST"]),
    Route("/items/{item}", ok, methods=["POST"]),  # a path with a parameter: never in the lane
]


def app(fast: bool) -> _App:
    made = _App(
        routes=ROUTES,
        exception_handlers={
            APIError: on_api_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )
    made.fast_routes = list(ROUTES) if fast else []
    return made


@pytest.fixture(scope="module")
def urls() -> Iterator[tuple[str, str]]:
    with serve_in_thread(app(False)) as plain, serve_in_thread(app(True)) as fast:
        yield plain, fast


def _seen(response: httpx.Response, base: str) -> tuple[int, bytes, dict[str, str]]:
    drop = {"date", "x-request-id", "openai-processing-ms"}
    headers = {k: v.replace(base, "BASE") for k, v in response.headers.items() if k not in drop}
    return response.status_code, response.content, headers


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/ok"),
        ("POST", "/api-error"),
        ("POST", "/http-error"),
        ("POST", "/boom"),
        ("GET", "/ok"),  # 405, from Starlette's router
        ("POST", "/ok/"),  # Starlette's slash redirect
        ("POST", "/items/7"),
        ("POST", "/missing"),
    ],
)
def test_answers_are_those_of_starlettes_stack(
    urls: tuple[str, str], method: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    plain, fast = urls
    with caplog.at_level(logging.ERROR):
        a = httpx.request(method, plain + path, content=b"{}", follow_redirects=False)
        b = httpx.request(method, fast + path, content=b"{}", follow_redirects=False)
    assert _seen(a, plain) == _seen(b, fast)
    assert a.headers["x-request-id"] and b.headers["x-request-id"]


def test_an_unexpected_error_is_logged(
    urls: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, fast = urls
    with caplog.at_level(logging.ERROR):
        response = httpx.post(fast + "/boom", content=b"{}")
    assert response.status_code == 500
    assert any(r.getMessage() == "unhandled error" for r in caplog.records)


def test_the_lane_bypasses_starlettes_stack(urls: tuple[str, str]) -> None:
    plain, fast = urls
    SEEN.clear()
    httpx.post(plain + "/ok", content=b"{}")
    httpx.post(fast + "/ok", content=b"{}")
    through_stack, through_lane = SEEN
    # Starlette's exception middleware marks the scope; the lane never runs it
    assert "starlette.exception_handlers" in through_stack
    assert "starlette.exception_handlers" not in through_lane
    assert through_lane["route"] is through_stack["route"]
    assert through_lane["path_params"] == {}
