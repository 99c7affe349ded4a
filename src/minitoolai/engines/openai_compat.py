"""An upstream that speaks OpenAI's chat completions protocol, streamed.

OpenAI, Azure-style base URLs, vLLM, llama.cpp's server, Ollama and another MiniToolAI all
qualify. Streams always ask for usage (``include_usage``), so billing reads the provider's own
counts and a client disconnect can close the upstream at once; a client that wants one answer
gets one non-streamed call (``complete``), whose answer always carries its usage.

Failures are translated here, once: connect errors, timeouts, 429 and 5xx before the first
chunk are ``EngineUnavailable`` (the router tries another deployment); other 4xx are
``EngineRejected``; anything after the first chunk is a plain ``EngineError``. The upstream's
key is sent in a header and never logged or echoed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from minitoolai.chat.tokens import count_text
from minitoolai.engines.base import ChatChunk, ChatParams, Usage
from minitoolai.engines.errors import EngineError, EngineRejected, EngineUnavailable
from minitoolai.settings import ProviderConfig


def chat_body(params: ChatParams, model: str, stream: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": params.messages,
        "stream": stream,
        "max_completion_tokens": params.max_tokens,
        "temperature": params.temperature,
    }
    optional = {
        "top_p": params.top_p,
        "stop": params.stop,
        "seed": params.seed,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
        "response_format": params.response_format,
        "user": params.user,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def request_headers(provider: ProviderConfig) -> dict[str, str]:
    """What every call to a provider carries; its key goes in a header and nowhere else."""
    headers = {"Content-Type": "application/json", **provider.headers}
    key = provider.resolved_key()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _usage(data: dict[str, Any]) -> Usage:
    prompt_details = data.get("prompt_tokens_details") or {}
    completion_details = data.get("completion_tokens_details") or {}
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        cached_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """Lines of the body as network chunks arrive: one split per chunk, not one await per line."""
    pending = b""
    async for data in response.content.iter_any():
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line:
                yield line
    if pending:
        yield pending


def _error_text(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
        message = data.get("error", {}).get("message") if isinstance(data, dict) else None
        if isinstance(message, str):
            return message[:500]
    except orjson.JSONDecodeError:
        pass
    return raw[:200].decode("utf-8", "replace")


class ProviderEndpoint:
    """One endpoint of one provider: where to send, with which headers, for how long.

    Shared by the chat and speech engines; ``repr`` never shows the provider's key.
    """

    path = ""

    def __init__(
        self,
        provider_name: str,
        provider: ProviderConfig,
        upstream_model: str,
        session: aiohttp.ClientSession,
    ) -> None:
        self.provider_name = provider_name
        self.model_id = upstream_model
        self._session = session
        self._url = provider.base_url.rstrip("/") + self.path
        self._params = dict(provider.query)
        self._headers = request_headers(provider)
        self._timeout = aiohttp.ClientTimeout(
            total=provider.timeout_s,
            sock_connect=provider.connect_timeout_s,
            sock_read=min(provider.timeout_s, 120.0),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider_name}:{self.model_id})"

    async def _open(self, body: bytes) -> aiohttp.ClientResponse:
        """POST ``body``; a response the caller reads and closes, or the error, translated.

        Connect errors, timeouts, 429 and 5xx are ``EngineUnavailable`` (another deployment
        may answer); other 4xx are ``EngineRejected``.
        """
        try:
            response = await self._session.post(
                self._url,
                data=body,
                headers=self._headers,
                params=self._params,
                timeout=self._timeout,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise EngineUnavailable(
                f"{self.provider_name}: cannot connect ({type(exc).__name__})"
            ) from None
        if response.status < 400:
            return response
        try:
            raw = await response.content.read(64 * 1024)
        except (aiohttp.ClientError, TimeoutError):
            raw = b""
        finally:
            response.close()
        message = f"{self.provider_name} answered {response.status}: {_error_text(raw)}"
        if response.status == 429 or response.status >= 500:
            raise EngineUnavailable(message)
        raise EngineRejected(message, status=response.status)

    async def aclose(self) -> None:
        return None


class OpenAICompatEngine(ProviderEndpoint):
    accepts_images = True
    path = "/chat/completions"

    def count_tokens(self, text: str) -> int:
        return count_text(text, self.model_id)

    async def complete(self, params: ChatParams) -> ChatChunk:
        """One non-streamed answer (for clients that asked for one): a single JSON parse
        instead of one per token. Usage comes with every non-streamed OpenAI answer."""
        response = await self._open(orjson.dumps(chat_body(params, self.model_id, stream=False)))
        try:
            raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EngineUnavailable(
                f"{self.provider_name}: answer broke ({type(exc).__name__})"
            ) from None
        finally:
            response.close()
        try:
            data = orjson.loads(raw)
            choice = data["choices"][0]
            content = choice["message"].get("content") or ""
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
            raise EngineUnavailable(f"{self.provider_name}: malformed answer") from None
        return ChatChunk(
            content=content,
            finish_reason=choice.get("finish_reason") or "stop",
            usage=_usage(data["usage"]) if data.get("usage") else None,
            model=data.get("model"),
            role="assistant",
        )

    async def stream(self, params: ChatParams) -> AsyncIterator[ChatChunk]:
        response = await self._open(orjson.dumps(chat_body(params, self.model_id)))
        started = False
        try:
            async for chunk in self._chunks(response):
                started = True
                yield chunk
            if not started:
                raise EngineUnavailable(f"{self.provider_name}: empty answer")
        except (aiohttp.ClientError, TimeoutError, asyncio.IncompleteReadError) as exc:
            what = f"{self.provider_name}: stream broke ({type(exc).__name__})"
            raise (EngineError(what) if started else EngineUnavailable(what)) from None
        finally:
            response.close()  # stops the upstream when the client went away

    async def _chunks(self, response: aiohttp.ClientResponse) -> AsyncIterator[ChatChunk]:
        async for line in _lines(response):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                return
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise EngineError(f"{self.provider_name}: malformed stream event") from None
            if "error" in data:
                raise EngineError(f"{self.provider_name}: {_error_text(payload)}")
            model = data.get("model")
            usage = _usage(data["usage"]) if data.get("usage") else None
            choices = data.get("choices") or []
            if not choices:
                if usage is not None:
                    yield ChatChunk(usage=usage, model=model)
                continue
            choice = choices[0]
            delta = choice.get("delta") or {}
            yield ChatChunk(
                content=delta.get("content"),
                finish_reason=choice.get("finish_reason"),
                usage=usage,
                model=model,
                role=delta.get("role"),
            )
