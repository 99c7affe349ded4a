"""Speech synthesis: OpenAI's ``/v1/audio/speech`` and the seed-style ``/api/texttospeech/``.

JSON in, audio out, streamed as it is produced: the audio itself, or (OpenAI's
``stream_format: "sse"``) as ``speech.audio.delta`` events carrying base64 audio, then one
``speech.audio.done`` with the usage. The money is the same either way (per input character).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.routing import Route

from minitoolai.accounts.auth import Principal
from minitoolai.catalog import SPEECH_MEDIA_TYPES, SPEECH_MODELS
from minitoolai.chat.tokens import count_text, encoding_name, load
from minitoolai.errors import ModelNotFound
from minitoolai.http.deps import idempotency, principal, services, slashed, unless_disconnected
from minitoolai.http.limited import admit, answered
from minitoolai.http.responses import parse, read_json
from minitoolai.http.sse import EventStream
from minitoolai.speech.schemas import OpenAISpeechRequest, SeedSpeechRequest


class AudioStream(EventStream):
    def __init__(self, audio: AsyncGenerator[bytes, None], media_type: str) -> None:
        super().__init__(audio)
        self.headers = [(b"content-type", media_type.encode()), (b"cache-control", b"no-cache")]


async def _gen(audio: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    try:
        async for chunk in audio:
            yield chunk
    finally:
        await audio.aclose()  # type: ignore[attr-defined]


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def _sse(audio: AsyncIterator[bytes], text: str) -> AsyncGenerator[bytes, None]:
    """OpenAI's speech events. The usage counts the input's tokens (o200k, as OpenAI counts
    gpt-4o-mini-tts's text); the price is per character, and no audio tokens are counted."""
    try:
        async for chunk in audio:
            yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()})
        await load(encoding_name("gpt-4o"))  # off the loop the first time
        tokens = count_text(text)
        usage = {"input_tokens": tokens, "output_tokens": 0, "total_tokens": tokens}
        yield _event({"type": "speech.audio.done", "usage": usage})
    finally:
        await audio.aclose()  # type: ignore[attr-defined]


def _known_model(data: Any) -> None:
    """An unknown name is OpenAI's 404 ``model_not_found`` (the SDKs' ``NotFoundError``); any
    other wrong ``model`` (not a string) is the schema's 400."""
    model = data.get("model") if isinstance(data, dict) else None
    if isinstance(model, str) and model not in SPEECH_MODELS:
        raise ModelNotFound(
            f"The model '{model}' does not exist; use one of: {', '.join(SPEECH_MODELS)}",
            param="model",
        )


async def _speak(request: Request, seed_style: bool) -> EventStream:
    who = await principal(request)
    data = await read_json(request)
    if not seed_style:
        _known_model(data)
    body: OpenAISpeechRequest | SeedSpeechRequest = (
        parse(SeedSpeechRequest, data) if seed_style else parse(OpenAISpeechRequest, data)
    )
    admission = await admit(request, who)  # requests and concurrency (docs/limits.md)
    return await answered(admission, _audio(request, who, body, data))


async def _audio(
    request: Request, who: Principal, body: OpenAISpeechRequest | SeedSpeechRequest, data: Any
) -> EventStream:
    params = body.params()
    audio = await unless_disconnected(
        request,
        services(request).speech.start(who, body.model, params, idempotency(request, data)),
    )
    if isinstance(body, OpenAISpeechRequest) and body.stream_format == "sse":
        return EventStream(_sse(audio, params.input))
    return AudioStream(_gen(audio), SPEECH_MEDIA_TYPES[params.response_format])


async def openai_speech(request: Request) -> EventStream:
    return await _speak(request, seed_style=False)


async def seed_speech(request: Request) -> EventStream:
    return await _speak(request, seed_style=True)


routes = [
    Route("/v1/audio/speech", openai_speech, methods=["POST"]),
    *slashed("/api/texttospeech/", seed_speech, ["POST"]),
]
