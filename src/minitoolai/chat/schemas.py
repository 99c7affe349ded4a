"""The chat request as the seed and OpenAI define it, validated once at the door.

Only the request is a pydantic model: responses are built as plain dicts/bytes on the hot path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from minitoolai.catalog import CHAT_DEFAULT_MAX_COMPLETION_TOKENS, CHAT_MAX_CHOICES


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


class FunctionCall(_Model):
    """A call the assistant made: the function's name and its arguments, a JSON text."""

    name: str
    arguments: str


def _tagged(kind: str, members: dict[str, object]) -> None:
    """OpenAI's tagged objects (``{"type": "custom", "custom": {...}}``): the member the
    ``type`` names is there, no other kind's is. (One model per family, not a discriminated
    union, so that an error's ``param`` is the client's own path, e.g. ``tools.0.function``.)"""
    if members[kind] is None:
        raise ValueError(f"a '{kind}' entry needs its '{kind}' object")
    others = [k for k, member in members.items() if k != kind and member is not None]
    if others:
        raise ValueError(f"a '{kind}' entry cannot carry '{others[0]}'")


class CustomCall(_Model):
    """A call the assistant made to a custom tool: its name and its free-form input."""

    name: str
    input: str


class ToolCall(_Model):
    """A call of an assistant turn: a function's (``function``) or a custom tool's
    (``custom``)."""

    id: str
    type: Literal["function", "custom"]
    function: FunctionCall | None = None
    custom: CustomCall | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ToolCall:
        _tagged(self.type, {"function": self.function, "custom": self.custom})
        return self


#: checks an assistant turn's ``tool_calls``, which stay the client's dicts (forwarded and
#: counted as they came)
_TOOL_CALLS = TypeAdapter(list[ToolCall])


class Message(BaseModel):
    # Assistant turns replayed by clients may carry fields we pass through (refusal, audio...).
    model_config = ConfigDict(extra="allow")

    role: Literal["developer", "system", "user", "assistant", "tool", "function"]
    content: str | list[Part] | None = None
    name: str | None = Field(default=None, max_length=256)
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None

    @field_validator("tool_calls")
    @classmethod
    def _calls(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value is not None:
            _TOOL_CALLS.validate_python(value)
        return value

    @model_validator(mode="after")
    def _content_required(self) -> Message:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a '{self.role}' message needs content")
        if self.role != "user" and self.images():
            raise ValueError("only 'user' messages may contain images")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only 'assistant' messages may carry tool_calls")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a 'tool' message needs the tool_call_id it answers")
        if self.role == "function" and not self.name:
            raise ValueError("a 'function' message needs the function's name")
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
    include_obfuscation: bool | None = None  # accepted; our streams carry no obfuscation


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"]


class FunctionDefinition(_Model):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON Schema object
    strict: bool | None = None


class TextFormat(_Model):
    type: Literal["text"]


class Grammar(_Model):
    definition: str
    syntax: Literal["lark", "regex"]


class GrammarFormat(_Model):
    type: Literal["grammar"]
    grammar: Grammar


class CustomDefinition(_Model):
    """A tool whose input is free-form text rather than JSON arguments."""

    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    #: what the model writes as the call's input: free text (the default) or a grammar's
    format: Annotated[TextFormat | GrammarFormat, Field(discriminator="type")] | None = None


class Tool(_Model):
    """A tool offered to the model: a function (``function``) or a custom tool (``custom``)."""

    type: Literal["function", "custom"]
    function: FunctionDefinition | None = None
    custom: CustomDefinition | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Tool:
        _tagged(self.type, {"function": self.function, "custom": self.custom})
        return self


#: checks the request's tools and older functions, which stay the client's JSON
_TOOLS = TypeAdapter(list[Tool])
_FUNCTIONS = TypeAdapter(list[FunctionDefinition])


class FunctionName(_Model):
    name: str


class NamedTool(_Model):
    """A tool named by a choice: ``{"type": "function", "function": {"name"}}`` or
    ``{"type": "custom", "custom": {"name"}}``."""

    type: Literal["function", "custom"]
    function: FunctionName | None = None
    custom: FunctionName | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> NamedTool:
        _tagged(self.type, {"function": self.function, "custom": self.custom})
        return self


class AllowedTools(_Model):
    mode: Literal["auto", "required"]
    #: the tools the model may call (``required``: one of them), each named
    tools: list[NamedTool] = Field(min_length=1, max_length=128)


class ToolChoice(_Model):
    """An object ``tool_choice``: call this function, call this custom tool, or offer every
    tool but let the model call only ``allowed_tools``."""

    type: Literal["function", "custom", "allowed_tools"]
    function: FunctionName | None = None
    custom: FunctionName | None = None
    allowed_tools: AllowedTools | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ToolChoice:
        members = {"function": self.function, "custom": self.custom}
        _tagged(self.type, {**members, "allowed_tools": self.allowed_tools})
        return self


#: checks an object ``tool_choice``, which stays the client's JSON (forwarded unchanged)
_TOOL_CHOICE = TypeAdapter(ToolChoice)


#: Parameters of OpenAI's reference that only an upstream acts on: forwarded to it as the client
#: sent them (a local engine ignores them)
FORWARDED = (
    "store",
    "metadata",
    "service_tier",
    "reasoning_effort",
    "verbosity",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "safety_identifier",
    "modalities",
    "prediction",
    "web_search_options",
    "moderation",
)


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
    n: int | None = Field(default=None, ge=1, le=CHAT_MAX_CHOICES)
    # tools stay the client's JSON (checked as ``Tool``\ s): upstreams get them unchanged
    tools: list[dict[str, Any]] | None = Field(default=None, min_length=1, max_length=128)
    # an object choice stays the client's JSON too (checked as a ``ToolChoice``)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = Field(default=None, min_length=1, max_length=128)
    function_call: Literal["none", "auto"] | FunctionName | None = None
    # forwarded to upstreams unchanged (FORWARDED)
    store: bool | None = None
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(
        default=None, max_length=16
    )
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    logit_bias: dict[str, Annotated[int, Field(ge=-100, le=100)]] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: dict[str, Any] | None = None
    safety_identifier: str | None = Field(default=None, max_length=64)
    modalities: list[Literal["text", "audio"]] | None = None
    prediction: dict[str, Any] | None = None
    audio: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    moderation: dict[str, Any] | None = None

    @field_validator("tools")
    @classmethod
    def _tools(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value is not None:
            _TOOLS.validate_python(value)
        return value

    @field_validator("tool_choice")
    @classmethod
    def _tool_choice(cls, value: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if isinstance(value, dict):
            _TOOL_CHOICE.validate_python(value)
        return value

    @field_validator("messages")
    @classmethod
    def _tool_answers(cls, messages: list[Message]) -> list[Message]:
        _answers_known_calls(messages)
        return messages

    # OpenAI's own rules on tools and logprobs, nothing stricter; each names its parameter
    @field_validator("tool_choice", "parallel_tool_calls")
    @classmethod
    def _needs_tools(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("tools") is None:
            raise ValueError(f"'{info.field_name}' is only allowed when 'tools' are specified")
        return value

    @field_validator("functions")
    @classmethod
    def _not_both(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            if info.data.get("tools") is not None:
                raise ValueError("give 'tools' or the older 'functions', not both")
            _FUNCTIONS.validate_python(value)
        return value

    @field_validator("function_call")
    @classmethod
    def _needs_functions(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("functions") is None:
            raise ValueError("'function_call' is only allowed when 'functions' are specified")
        return value

    @field_validator("top_logprobs")
    @classmethod
    def _needs_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("logprobs"):
            raise ValueError("'logprobs' must be true when 'top_logprobs' is set")
        return value

    @field_validator("n", mode="before")
    @classmethod
    def _choices_limit(cls, value: Any) -> Any:
        if isinstance(value, int) and value > CHAT_MAX_CHOICES:
            raise ValueError(
                f"this server answers with at most {CHAT_MAX_CHOICES} choices: n must be "
                f"between 1 and {CHAT_MAX_CHOICES}"
            )
        return value

    # no engine here answers in audio: refused rather than silently answered in text
    @field_validator("modalities")
    @classmethod
    def _text_only(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and "audio" in value:
            raise ValueError("audio output is not available on this server; use ['text']")
        return value

    @field_validator("audio")
    @classmethod
    def _no_audio(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            raise ValueError("audio output is not available on this server")
        return value

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
    def choices(self) -> int:
        """How many choices the answer has (``n``)."""
        return self.n or 1

    @property
    def stop_list(self) -> list[str] | None:
        if self.stop is None:
            return None
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def legacy_functions(self) -> bool:
        """The client speaks the older ``functions`` API: answers carry ``function_call``."""
        return self.functions is not None

    def engine_tools(self) -> list[dict[str, Any]] | None:
        """The tools an engine is given: the client's own JSON (``functions`` wrapped as
        tools)."""
        if self.functions is not None:
            return [{"type": "function", "function": f} for f in self.functions]
        return self.tools

    def engine_tool_choice(self) -> str | dict[str, Any] | None:
        """The client's own ``tool_choice`` (the older ``function_call`` as a tool choice)."""
        if self.tools is not None:
            return self.tool_choice
        choice = self.function_call
        if isinstance(choice, FunctionName):  # the older API names the function alone
            return {"type": "function", "function": choice.model_dump()}
        return choice

    def forwarded(self) -> dict[str, Any]:
        """The parameters only upstreams act on, as the client sent them."""
        values = ((key, getattr(self, key)) for key in FORWARDED)
        return {key: value for key, value in values if value is not None}

    def has_images(self) -> bool:
        return any(m.images() for m in self.messages)

    def image_count(self) -> int:
        return sum(len(m.images()) for m in self.messages)


def _answers_known_calls(messages: list[Message]) -> None:
    """A ``tool`` message answers a call of the assistant turn before it (OpenAI's rule)."""
    calls: set[str] = set()
    for message in messages:
        if message.role == "assistant":
            calls = {call["id"] for call in message.tool_calls or ()}
        elif message.role == "tool":
            if message.tool_call_id not in calls:
                raise ValueError(
                    "a 'tool' message must answer a tool call of the assistant message before "
                    f"it; no call has the id {message.tool_call_id!r}"
                )
        elif message.role != "function":
            calls = set()
