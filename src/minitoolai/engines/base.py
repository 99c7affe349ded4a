"""The contract every chat and speech engine meets, upstream or local.

The chat pipeline (hold -> stream -> settle) knows nothing about where tokens come from: an
OpenAI-compatible upstream and an in-process llama.cpp model both yield ``ChatChunk`` values.
The wire format (seed SSE, OpenAI JSON) is built from these by the HTTP layer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class ChatParams:
    """A validated chat request, in OpenAI's vocabulary, as an engine receives it.

    ``messages`` are OpenAI-format dicts; image parts already hold ``data:`` URLs (the server
    fetched them), so an engine never reaches into the operator's network.
    """

    messages: list[dict[str, Any]]
    max_tokens: int
    temperature: float = 1.0
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ChatChunk:
    """One step of a streamed answer. Any field may be empty.

    ``usage`` arrives at most once, normally last. ``model`` names what really answered.
    """

    content: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    role: str | None = None


class ChatEngine(Protocol):
    """Something that answers chat requests.

    ``stream`` must raise ``EngineUnavailable`` (see ``minitoolai.engines.errors``) *before the
    first chunk* when it cannot answer at all, so the router may try another deployment; it must
    stop its work promptly when the consumer stops iterating (``aclose``/cancellation).
    """

    #: the model id that really answers, e.g. ``smollm2-135m-instruct``
    model_id: str
    #: whether image parts are accepted
    accepts_images: bool

    def stream(self, params: ChatParams) -> AsyncIterator[ChatChunk]: ...

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by this engine's own tokenizer (for billing a cut-off stream)."""
        ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class SpeechParams:
    input: str
    voice: str
    response_format: str  # mp3 | opus | aac | flac | wav | pcm
    speed: float = 1.0


class SpeechEngine(Protocol):
    model_id: str

    def synthesize(self, params: SpeechParams) -> AsyncIterator[bytes]:
        """Encoded audio bytes in ``params.response_format``, yielded as they are produced."""
        ...

    async def aclose(self) -> None: ...
