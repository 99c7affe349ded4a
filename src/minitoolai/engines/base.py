"""Every engine contract: chat, speech and images, upstream or local.

The chat pipeline (hold -> stream -> settle) knows nothing about where tokens come from: an
OpenAI-compatible upstream and an in-process llama.cpp model both yield ``ChatChunk`` values,
and it asks every engine the same questions (``stream``, ``complete``,
``estimate_prompt_tokens``, ``count_tokens``); the protocol's defaults answer the optional ones.
A speech engine yields encoded audio bytes; an image engine turns an ``ImageSpec`` into a
``GeneratedImage`` in a worker's thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson

from minitoolai.chat.schemas import Message, text_of

T = TypeVar("T")


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

    ``messages`` are the request's validated messages; image parts already hold ``data:`` URLs
    (the server fetched them), so an engine never reaches into the operator's network.
    ``extra``: llama.cpp sampler settings without an OpenAI name (see
    ``engines.llamacpp.generation.Sampling``); the HTTP API never sets them.
    """

    messages: list[Message]
    max_tokens: int
    temperature: float = 1.0
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    #: OpenAI's tools, as the client sent them: functions (``{"type": "function", "function":
    #: {"name", "description", "parameters", "strict"}}``) and custom tools (``{"type":
    #: "custom", "custom": {"name", "description", "format"}}``); None: no tools
    tools: list[dict[str, Any]] | None = None
    #: ``"none"`` | ``"auto"`` | ``"required"`` | ``{"type": "function", "function": {"name"}}``
    #: | ``{"type": "custom", "custom": {"name"}}`` | ``{"type": "allowed_tools",
    #: "allowed_tools": {"mode", "tools"}}``, as the client sent it
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    #: how many choices to answer with (``n``): each is a whole answer to the same prompt
    n: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    #: OpenAI parameters only an upstream acts on (``logprobs``, ``metadata``, ``store``...:
    #: ``chat.schemas.FORWARDED``), as the client sent them; local engines ignore them
    forwarded: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ToolCallPart:
    """A piece of one tool call as it streams, as OpenAI streams it: the first piece of call
    ``index`` carries its ``id`` and ``name``, later pieces add ``arguments`` text. An engine
    that has a call whole yields it as one piece.

    ``kind`` is ``function`` (``arguments``: JSON text) or ``custom`` (a custom tool's call:
    ``arguments`` holds its free-form ``input``); ``choice`` is the answer's choice it belongs
    to (0 unless the request asked for ``n`` > 1).
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    choice: int = 0
    kind: str = "function"


@dataclass(slots=True)
class ChatChunk:
    """One step of a streamed answer. Any field may be empty.

    ``usage`` arrives at most once, normally last, and covers every choice. ``model`` names
    what really answered. ``choice``: which of the request's ``n`` choices this step belongs to.
    """

    content: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    role: str | None = None
    tool_calls: list[ToolCallPart] | None = None
    #: the choice's ``logprobs`` as OpenAI shapes it (``{"content": [...], "refusal": ...}``),
    #: for the tokens of this chunk; only when the client asked for them
    logprobs: dict[str, Any] | None = None
    choice: int = 0


async def one_per_step(items: AsyncIterator[T]) -> AsyncIterator[list[T]]:
    """``items`` one per list (``ChatEngine.steps``'s default); closing it closes them."""
    try:
        async for item in items:
            yield [item]
    finally:
        await _close(items)


async def one_by_one(steps: AsyncIterator[list[T]]) -> AsyncIterator[T]:
    """The items of ``steps``, one at a time; closing it closes them."""
    try:
        async for step in steps:
            for item in step:
                yield item
    finally:
        await _close(steps)


async def _close(iterator: AsyncIterator[Any]) -> None:
    """An exception leaving ``async for`` does not close what it iterated: an engine's stream
    (a local model generating) must be, to stop."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


class ChatEngine(Protocol):
    """Something that answers chat requests.

    ``stream`` must raise ``EngineUnavailable`` (see ``minitoolai.engines.errors``) *before the
    first chunk* when it cannot answer at all, so the router may try another deployment; it must
    stop its work promptly when the consumer stops iterating (``aclose``/cancellation).

    Engines subclass this protocol to inherit the defaults of ``complete`` and
    ``estimate_prompt_tokens``.
    """

    #: the model id that really answers, e.g. ``smollm2-135m-instruct``
    model_id: str
    #: whether image parts are accepted
    accepts_images: bool

    def stream(self, params: ChatParams) -> AsyncIterator[ChatChunk]: ...

    def complete(self, params: ChatParams) -> AsyncIterator[ChatChunk]:
        """The answer for a client that wants it whole, with the same errors as ``stream``.

        By default the stream itself, which the pipeline gathers: a client that leaves half-way
        pays for what was generated so far. An upstream overrides it with one non-streamed call
        (one chunk, one JSON parse instead of one per token).
        """
        return self.stream(params)

    def steps(self, params: ChatParams, *, whole: bool = False) -> AsyncIterator[list[ChatChunk]]:
        """The answer (``complete``'s when ``whole``, else ``stream``'s) as its chunks that come
        together, a list at a time: what the pipeline reads, so the events of one network read
        pass each layer once. By default one chunk per list; an upstream's lists are its reads.
        """
        return one_per_step(self.complete(params) if whole else self.stream(params))

    def estimate_prompt_tokens(
        self, messages: list[Message], tools: list[dict[str, Any]] | None = None
    ) -> int | None:
        """This engine's count of the prompt's tokens, at most (it goes into the hold),
        offered ``tools`` included; None when the pipeline's own count (OpenAI's tokenizers)
        is already this engine's.

        By default an upper bound from ``count_tokens`` with a per-message allowance for the
        chat template, and the tools' JSON.
        """
        text = "".join(text_of(m) for m in messages)
        if tools:
            text += orjson.dumps(tools).decode()
        return self.count_tokens(text) + 8 * len(messages) + 16

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
    #: how to speak (gpt-4o-mini-tts); upstreams get it, the local voices have one way only
    instructions: str | None = None


class SpeechEngine(Protocol):
    model_id: str

    def synthesize(self, params: SpeechParams) -> AsyncIterator[bytes]:
        """Encoded audio bytes in ``params.response_format``, yielded as they are produced."""
        ...

    async def aclose(self) -> None: ...


# -- images: a worker runs one request to one image, in a thread off the event loop -------------


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """One text-to-image request as an engine receives it.

    The API layer checked names and ranges and filled in the seed's defaults (from
    ``minitoolai.catalog``), so an engine defaults nothing itself.
    """

    model: str
    prompt: str
    scheduler: str
    steps: int
    cfg_scale: float
    width: int
    height: int
    negative_prompt: str = ""
    #: ``None`` draws a random seed; the one used comes back in ``GeneratedImage.seed``
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    #: a ``PIL.Image.Image`` (typed loosely so that the contracts never import Pillow)
    image: Any
    #: the seed that reproduces this image (same model, settings and device type)
    seed: int
    width: int
    height: int
    model: str
    scheduler: str
    steps: int
    cfg_scale: float
    #: UNet evaluations the sampler made (2nd-order samplers make about two per step)
    denoise_calls: int
    elapsed_s: float


class ProgressCallback(Protocol):
    def __call__(self, fraction: float, /) -> None: ...


class ImageEngine(Protocol):
    """Something that turns an ``ImageSpec`` into an image. Blocking: seconds to minutes.

    ``generate`` raises ``EngineUnavailable`` when it cannot run the job at all (weights missing:
    retrying will not help) and ``EngineError`` or ``ValueError`` for a request it cannot serve.
    """

    def loaded_models(self) -> list[str]:
        """Model names whose weights are loaded now, so a worker can prefer their jobs."""
        ...

    def generate(
        self, spec: ImageSpec, on_progress: ProgressCallback | None = None
    ) -> GeneratedImage:
        """``on_progress`` gets the fraction done, in (0, 1], after each step; an exception it
        raises aborts the generation and propagates (that is how a worker stops a lost job).
        """
        ...


# -- embeddings: one request's inputs to one vector each, whole ---------------------------------


@dataclass(frozen=True, slots=True)
class EmbeddingParams:
    """A validated embeddings request as an engine receives it.

    ``inputs`` are texts, or token ids (``cl100k_base``, OpenAI's embedding encoding), as the
    client sent them: an upstream gets them unchanged. ``texts`` are the same inputs as text
    (token ids decoded), for a local engine with a tokenizer of its own.
    ``dimensions``: shorten each vector to this many, then re-normalise (None: the model's own).
    """

    inputs: list[str] | list[list[int]]
    texts: list[str]
    dimensions: int | None = None
    encoding_format: str = "float"  # float | base64: what the client asked for
    user: str | None = None


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    #: a ``numpy`` float32 array of shape (len(inputs), dimensions), in the inputs' order
    #: (typed loosely so that the contracts never import numpy)
    vectors: Any
    #: the tokens the provider says it embedded; None when it did not say (we bill our count)
    prompt_tokens: int | None
    #: the model that really answered, e.g. ``all-minilm-l6-v2``
    model: str


class EmbeddingEngine(Protocol):
    """Something that embeds texts. ``embed`` raises ``EngineUnavailable`` when it cannot answer
    (another deployment is tried) and ``EngineRejected`` for a request it cannot serve."""

    model_id: str

    def count_tokens(self, params: EmbeddingParams) -> int | None:
        """The tokens this engine will bill for ``params`` (what it really embeds: a local model
        truncates at its window), known before any work; None when the provider reports usage
        and the API's own count (OpenAI's tokenizer) is already its count. May block briefly."""
        ...

    async def embed(self, params: EmbeddingParams) -> EmbeddingResult: ...

    async def aclose(self) -> None: ...


# -- the Responses API, spoken by an upstream itself ---------------------------------------------


@dataclass(slots=True)
class ResponsesEvent:
    """One step of an upstream's Responses answer: a stream's event, or the whole ``response``
    object (``kind`` ``"response"``), as the upstream sent it, with what billing reads out of
    it already read.

    ``text``: the output this event delivers (an ``output_text`` or ``function_call_arguments``
    delta, or a whole body's), counted by the engine's tokenizer if the answer is cut short.
    ``usage``: the upstream's own, believed (``parse_responses_usage``), on the event that ends
    the answer (``response.completed``, ``.incomplete``, ``.failed``) or on a whole body.
    """

    kind: str
    data: dict[str, Any]
    text: str = ""
    usage: Usage | None = None


class ResponsesEngine(Protocol):
    """An upstream that speaks OpenAI's Responses API (``POST /v1/responses``) itself.

    ``respond`` sends ``body`` (the client's request, as the gateway decided to forward it)
    and yields its events (``stream``; those of one network read as one list, as
    ``ChatEngine.steps``) or one whole body (a list of one), with the errors of
    ``ChatEngine.stream``: ``EngineUnavailable`` before the first event when it cannot answer
    (another deployment is tried), ``EngineRejected`` for a request it refuses, a plain
    ``EngineError`` once it has begun.
    """

    model_id: str

    def respond(
        self, body: dict[str, Any], *, stream: bool
    ) -> AsyncIterator[list[ResponsesEvent]]: ...

    def count_tokens(self, text: str) -> int: ...


def responses_engine(engine: object) -> ResponsesEngine | None:
    """``engine`` as a ``ResponsesEngine`` when its upstream speaks the Responses API (an
    OpenAI-compatible deployment with ``responses = true``), else None."""
    if getattr(engine, "speaks_responses", False):
        return engine  # type: ignore[return-value]
    return None
