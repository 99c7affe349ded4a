"""The chat request as the seed and OpenAI define it, validated once at the door.

Only the request is a pydantic model: responses are built as plain dicts/bytes on the hot path.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from minitoolai.catalog import CHAT_DEFAULT_MAX_COMPLETION_TOKENS


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Model):
    type: Literal["text"]
    text: str


class ImageURL(_Model):
    url: str = Field(min_length=1)
    detail: Literal["auto", "high", "low"] = "auto"


class ImagePart(_Model):
    """An image of a user message; validated here once, fetched and inlined by
    ``chat.images.ImageResolver``."""

    type: Literal["image_url"]
    image_url: ImageURL


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(BaseModel):
    # Assistant turns replayed by clients may carry fields we pass through (refusal, audio...).
    model_config = ConfigDict(extra="allow")

    role: Literal["developer", "system", "user", "assistant", "tool"]
    content: str | list[Part] | None = None
    name: str | None = Field(default=None, max_length=256)
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _content_required(self) -> Message:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a '{self.role}' message needs content")
        if self.role != "user" and self.images():
            raise ValueError("only 'user' messages may contain images")
        return self

    def images(self) -> list[ImagePart]:
        if isinstance(self.content, list):
            return [p for p in self.content if isinstance(p, ImagePart)]
        return []


def text_of(message: Message) -> str:
    """What a message says in words: its text, or its text parts one per line."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content if isinstance(part, TextPart))


class StreamOptions(_Model):
    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"]


class ChatRequest(_Model):
    model: str = Field(min_length=1, max_length=200)
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)  # the older name
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    response_format: ResponseFormat | None = None
    user: str | None = Field(default=None, max_length=256)
    n: int | None = Field(default=None, ge=1, le=1)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @property
    def completion_limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens or CHAT_DEFAULT_MAX_COMPLETION_TOKENS

    @property
    def stop_list(self) -> list[str] | None:
        if self.stop is None:
            return None
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def has_images(self) -> bool:
        return any(m.images() for m in self.messages)

    def image_count(self) -> int:
        return sum(len(m.images()) for m in self.messages)
