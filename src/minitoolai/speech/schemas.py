"""Speech requests: OpenAI's ``/v1/audio/speech`` and the seed-style ``/api/texttospeech/``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from minitoolai.engines.base import SpeechParams

Format = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
Model = Literal["tts-1", "tts-1-hd"]


class OpenAISpeechRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Model
    input: str = Field(min_length=1, max_length=4096)
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
    input: str = Field(min_length=1, max_length=4096)
    voice: str = Field(default="alloy", min_length=1, max_length=64)
    responseFormat: Format = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)

    def params(self) -> SpeechParams:
        return SpeechParams(self.input, self.voice, self.responseFormat, self.speed)
