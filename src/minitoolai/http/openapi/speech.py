"""Text to speech: OpenAI's ``/v1/audio/speech`` and the seed's ``/api/texttospeech/``."""

from __future__ import annotations

from minitoolai.catalog import SPEECH_MEDIA_TYPES
from minitoolai.http.openapi.common import (
    BINARY,
    IDEMPOTENCY,
    INT,
    METERED,
    SLASH_NOTE,
    SSE_TYPE,
    STR,
    Schema,
    error_responses,
    json_text,
    obj,
    operation,
    ref,
)

SCHEMAS: dict[str, Schema] = {
    "SpeechAudioEvent": {
        "oneOf": [
            obj({"type": {"const": "speech.audio.delta"}, "audio": STR}),
            obj(
                {
                    "type": {"const": "speech.audio.done"},
                    "usage": obj({"input_tokens": INT, "output_tokens": INT, "total_tokens": INT}),
                }
            ),
        ],
    },
    "SpeechEvent": {
        **obj(
            {"event": STR, "id": STR, "data": json_text(ref("SpeechAudioEvent"))},
            ["data"],
        ),
        "description": "One Server-Sent Event of `stream_format: sse` speech: its `data` is a "
        "`speech.audio.delta` (a piece of the audio, base64) or, last, `speech.audio.done`.",
    },
}


def paths() -> dict[str, Schema]:
    audio_types = {media: BINARY for media in SPEECH_MEDIA_TYPES.values()}  # formats share some
    audio = {
        "description": "The audio, streamed as it is made; `response_format` picks the type.",
        "content": audio_types,
    }
    speech_audio = {
        "description": "The audio, streamed as it is made; `response_format` picks the type, "
        "or with `stream_format: sse` Server-Sent Events carrying it.",
        "content": {**audio_types, SSE_TYPE: {"schema": ref("SpeechEvent")}},
    }
    return {
        "/v1/audio/speech": {
            "post": operation(
                "createSpeech",
                "Text to speech (OpenAI's API)",
                "speech",
                {"200": speech_audio, **error_responses(METERED)},
                body="OpenAISpeechRequest",
                parameters=[IDEMPOTENCY],
            )
        },
        "/api/texttospeech/": {
            "post": operation(
                "seedSpeech",
                "Text to speech in the seed's naming style (camelCase)",
                "speech",
                {"200": audio, **error_responses(METERED)},
                body="SeedSpeechRequest",
                parameters=[IDEMPOTENCY],
                description=SLASH_NOTE,
            )
        },
    }
