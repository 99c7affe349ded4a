"""Speech synthesis: OpenAI's ``/v1/audio/speech`` and the seed-style ``/api/texttospeech/``.

JSON in, audio out, streamed as it is produced.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from starlette.requests import Request
from starlette.routing import Route

from minitoolai.catalog import SPEECH_MEDIA_TYPES
from minitoolai.http.deps import idempotency, principal, services, slashed, unless_disconnected
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


async def _speak(request: Request, seed_style: bool) -> AudioStream:
    who = await principal(request)
    svc = services(request)
    data = await read_json(request)
    body: OpenAISpeechRequest | SeedSpeechRequest = (
        parse(SeedSpeechRequest, data) if seed_style else parse(OpenAISpeechRequest, data)
    )
    params = body.params()
    audio = await unless_disconnected(
        request, svc.speech.start(who, body.model, params, idempotency(request, data))
    )
    return AudioStream(_gen(audio), SPEECH_MEDIA_TYPES[params.response_format])


async def openai_speech(request: Request) -> AudioStream:
    return await _speak(request, seed_style=False)


async def seed_speech(request: Request) -> AudioStream:
    return await _speak(request, seed_style=True)


routes = [
    Route("/v1/audio/speech", openai_speech, methods=["POST"]),
    *slashed("/api/texttospeech/", seed_speech, ["POST"]),
]
