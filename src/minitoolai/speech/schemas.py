"""Speech requests: OpenAI's ``/v1/audio/speech`` and the seed-style ``/api/texttospeech/``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from minitoolai.engines.base import SpeechParams
from minitoolai.engines.speech.formats import control_character_error

Format = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
Model = Literal["tts-1", "tts-1-hd"]


def _speakable(value: str) -> str:
    """Refused at parse time (400), before the hold: a NUL or other control character."""
    if (problem := control_character_error(value)) is not None:
        raise ValueError(problem)
    return value


#: what is read aloud: 1 to 4,096 characters (OpenAI's limit), no control characters
SpeechInput = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_speakable)]


class OpenAISpeechRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Model
    input: SpeechInput
    voice: str = Field(min_length=1, max_length=64)
    response_format: Format = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    instructions: str | None = Field(default=None, max_length=4096)  # accepted, not used locally

    def params(self) -> SpeechParams:
        return SpeechParams(self.input, self.voice, self.response_format, self.speed)


class SeedSpeechRequest(BaseModel):
    """The same fields in the seed's naming style (camelCase, like ``negativePrompt``)."""

    model_config = ConfigDict(extra="forbid")

    model: Model = "tts-1"
    input: SpeechInput
    voice: str = Field(default="alloy", min_length=1, max_length=64)
    responseFormat: Format = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)

    def params(self) -> SpeechParams:
        return SpeechParams(self.input, self.voice, self.responseFormat, self.speed)
