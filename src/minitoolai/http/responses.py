"""JSON in and out with orjson, and the one place errors become HTTP responses."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from minitoolai.errors import APIError, InvalidRequest, PayloadTooLarge

log = logging.getLogger("minitoolai.http")

M = TypeVar("M", bound=BaseModel)

#: Chat bodies may carry images inline as data URLs; every other body is small.
MAX_CHAT_BODY = 32 * 1024 * 1024
MAX_BODY = 1024 * 1024
#: A body this large is only read for an account that has something to spend: parsing 30 MB
#: holds the event loop for tens of milliseconds (orjson, like any parser, keeps the GIL).
LARGE_BODY = 1024 * 1024


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: APIError) -> JSON:
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    headers.update(getattr(exc, "headers", None) or {})  # a rate limit's x-ratelimit-*
    return JSON(exc.to_dict(), status_code=exc.status_code, headers=headers)


async def on_api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(exc)


_ROUTING_TYPES = {404: "not_found_error", 405: "invalid_request_error"}


class RoutingError(APIError):
    """Starlette's own refusals (no such path: 404, a method the path lacks: 405), told in the
    API's error shape with Starlette's status and wording.
    """

    def __init__(self, exc: HTTPException) -> None:
        super().__init__(exc.detail)
        self.status_code = exc.status_code
        self.error_type = _ROUTING_TYPES.get(exc.status_code, APIError.error_type)


async def on_http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(RoutingError(exc))


async def on_unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(APIError())


def body_length(request: Request) -> int | None:
    length = request.headers.get("content-length")
    if length is None or not (length.isascii() and length.isdigit()) or len(length) > 15:
        return None
    return int(length)


async def read_json(request: Request, limit: int = MAX_BODY) -> Any:
    """The body as JSON, or a 400/413 that says what is wrong with it."""
    length = body_length(request)
    if length is not None and length > limit:
        raise PayloadTooLarge(f"the request body is over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the request body is over {limit} bytes")
    if not body:
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None


def validation_message(exc: ValidationError) -> tuple[str, str | None]:
    """The first problem of a pydantic error, as OpenAI words it: a message and a param."""
    first = exc.errors(include_url=False)[0]
    loc = [str(p) for p in first.get("loc", ())]
    param = ".".join(loc) if loc else None
    msg = first.get("msg", "invalid value")
    if first.get("type") == "missing":
        return f"Missing required parameter: '{param}'.", param
    if first.get("type") == "extra_forbidden":
        return f"Unrecognized request argument supplied: {param}", param
    return f"Invalid value for '{param}': {msg}", param


def parse(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, param = validation_message(exc)
        raise InvalidRequest(message, param=param) from None
