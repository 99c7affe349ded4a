"""Speech requests: OpenAI's ``/v1/audio/speech`` and the seed-style ``/api/texttospeech/``.

``instructions`` (gpt-4o-mini-tts's voice direction) is accepted and checked; the local engines
ignore it. ``stream_format`` is ``audio`` (the encoded audio itself) or ``sse`` (OpenAI's
``speech.audio.delta`` / ``speech.audio.done`` events, the audio base64-encoded in them).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from minitoolai.catalog import (
    SPEECH_DEFAULT_FORMAT,
    SPEECH_DEFAULT_MODEL,
    SPEECH_DEFAULT_SPEED,
    SPEECH_DEFAULT_VOICE,
    SPEECH_MAX_INPUT_CHARS,
    SPEECH_MAX_INSTRUCTIONS_CHARS,
    SPEECH_MAX_VOICE_CHARS,
    SPEECH_SPEED_RANGE,
    SpeechFormat,
    SpeechModel,
)
from minitoolai.engines.base import SpeechParams
from minitoolai.engines.speech.formats import control_character_error


def _speakable(value: str) -> str:
    """Refused at parse time (400), before the hold: a NUL or other control character."""
    if (problem := control_character_error(value)) is not None:
        raise ValueError(problem)
    return value


#: what is read aloud: 1 to 4,096 characters (OpenAI's limit), no control characters
SpeechInput = Annotated[
    str, Field(min_length=1, max_length=SPEECH_MAX_INPUT_CHARS), AfterValidator(_speakable)
]
Voice = Annotated[str, Field(min_length=1, max_length=SPEECH_MAX_VOICE_CHARS)]
Speed = Annotated[float, Field(ge=SPEECH_SPEED_RANGE[0], le=SPEECH_SPEED_RANGE[1])]


class OpenAISpeechRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: SpeechModel
    input: SpeechInput
    voice: Voice
    response_format: SpeechFormat = SPEECH_DEFAULT_FORMAT
    speed: Speed = SPEECH_DEFAULT_SPEED
    # accepted, not used locally
    instructions: str | None = Field(default=None, max_length=SPEECH_MAX_INSTRUCTIONS_CHARS)
    stream_format: Literal["audio", "sse"] = "audio"

    def params(self) -> SpeechParams:
        return SpeechParams(
            self.input, self.voice, self.response_format, self.speed, self.instructions
        )


class SeedSpeechRequest(BaseModel):
    """The same fields in the seed's naming style (camelCase, like ``negativePrompt``)."""

    model_config = ConfigDict(extra="forbid")

    model: SpeechModel = SPEECH_DEFAULT_MODEL
    input: SpeechInput
    voice: Voice = SPEECH_DEFAULT_VOICE
    responseFormat: SpeechFormat = SPEECH_DEFAULT_FORMAT
    speed: Speed = SPEECH_DEFAULT_SPEED

    def params(self) -> SpeechParams:
        return SpeechParams(self.input, self.voice, self.responseFormat, self.speed)
