"""A Responses API request (``POST /v1/responses``) as OpenAI defines it, validated once at the
door. What it means is chat's: ``responses.translate`` turns it into a ``ChatRequest``.

``input`` is a string or a list of items: messages (``type`` may be left out), the assistant's
earlier ``function_call``\\ s and the client's ``function_call_output``\\ s. Parts are
``input_text``, ``output_text`` (an assistant turn replayed), ``refusal`` and ``input_image``.
Tools are function and custom tools in OpenAI's flat shape (not chat's nested one);
``tool_choice`` may name either, or be ``allowed_tools``. Custom tools' calls are
``custom_tool_call`` items (answered by ``custom_tool_call_output``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from minitoolai.errors import InvalidRequest


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputTextPart(_Model):
    type: Literal["input_text"]
    text: str


class OutputTextPart(_Model):
    """Text the assistant said, as a previous response's output carries it."""

    type: Literal["output_text"]
    text: str
    annotations: list[dict[str, Any]] | None = None
    logprobs: list[dict[str, Any]] | None = None


class RefusalPart(_Model):
    type: Literal["refusal"]
    refusal: str


class InputImagePart(_Model):
    """An image by URL (``https:`` or ``data:``); uploaded files (``file_id``) do not exist
    here."""

    type: Literal["input_image"]
    image_url: str = Field(min_length=1)
    detail: Literal["auto", "high", "low"] = "auto"


ContentPart = Annotated[
    InputTextPart | OutputTextPart | RefusalPart | InputImagePart, Field(discriminator="type")
]


class MessageItem(_Model):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[ContentPart]
    id: str | None = None  # an output message replayed as input keeps its id and status
    status: Literal["in_progress", "completed", "incomplete"] | None = None

    @model_validator(mode="after")
    def _parts_fit_the_role(self) -> MessageItem:
        if isinstance(self.content, str):
            return self
        said = {"output_text", "refusal"}
        for part in self.content:
            if self.role == "assistant" and part.type not in said:
                raise ValueError("an 'assistant' message has 'output_text' or 'refusal' parts")
            if self.role != "assistant" and part.type in said:
                raise ValueError(f"a '{self.role}' message has 'input_text' or 'input_image' parts")
            if self.role != "user" and part.type == "input_image":
                raise ValueError("only 'user' messages may contain images")
        return self


class FunctionCallItem(_Model):
    """A call the assistant made earlier (an output item of a previous response)."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class CustomToolCallItem(_Model):
    """A call the assistant made earlier to a custom tool: its free-form ``input``."""

    type: Literal["custom_tool_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: str
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class CustomToolCallOutputItem(_Model):
    """The client's result of a custom tool's call."""

    type: Literal["custom_tool_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[InputTextPart]
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


class FunctionCallOutputItem(_Model):
    """The client's result of a call: a text, or text parts."""

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[InputTextPart]
    id: str | None = None
    status: Literal["in_progress", "completed", "incomplete"] | None = None


def _item_kind(value: Any) -> str | None:
    """An item's ``type``; a message may leave it out (OpenAI's ``EasyInputMessage``)."""
    if isinstance(value, dict):
        kind = value.get("type", "message")
        return kind if isinstance(kind, str) else None
    return getattr(value, "type", None)


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[CustomToolCallItem, Tag("custom_tool_call")]
    | Annotated[CustomToolCallOutputItem, Tag("custom_tool_call_output")],
    Discriminator(_item_kind),
]
#: the items that are an assistant's calls, and those that answer one
CallItem = FunctionCallItem | CustomToolCallItem
CallOutputItem = FunctionCallOutputItem | CustomToolCallOutputItem


class FunctionToolSpec(_Model):
    """A function the model may call, in the Responses API's flat shape."""

    type: Literal["function"]
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON Schema object
    strict: bool | None = None


class CustomFormatText(_Model):
    type: Literal["text"]


class CustomFormatGrammar(_Model):
    type: Literal["grammar"]
    syntax: Literal["lark", "regex"]
    definition: str


class CustomToolSpec(_Model):
    """A tool whose input is free-form text (or what a grammar allows), in the flat shape."""

    type: Literal["custom"]
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    format: (
        Annotated[CustomFormatText | CustomFormatGrammar, Field(discriminator="type")] | None
    ) = None


ToolSpec = Annotated[FunctionToolSpec | CustomToolSpec, Field(discriminator="type")]


class NamedFunction(_Model):
    type: Literal["function"]
    name: str


class NamedCustom(_Model):
    type: Literal["custom"]
    name: str


NamedTool = Annotated[NamedFunction | NamedCustom, Field(discriminator="type")]


class AllowedToolsChoice(_Model):
    """Every tool offered, but only these callable (``required``: one of them is called)."""

    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[NamedTool] = Field(min_length=1, max_length=128)


ToolChoiceObject = Annotated[
    NamedFunction | NamedCustom | AllowedToolsChoice, Field(discriminator="type")
]


class TextFormatText(_Model):
    type: Literal["text"]


class TextFormatJSONObject(_Model):
    type: Literal["json_object"]


class TextFormatJSONSchema(_Model):
    type: Literal["json_schema"]
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


TextFormat = Annotated[
    TextFormatText | TextFormatJSONObject | TextFormatJSONSchema, Field(discriminator="type")
]


class TextOptions(_Model):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningOptions(_Model):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class ResponsesStreamOptions(_Model):
    include_obfuscation: bool | None = None  # accepted; our streams carry no obfuscation


class ResponsesRequest(_Model):
    model: str = Field(min_length=1, max_length=200)
    input: str | Annotated[list[InputItem], Field(min_length=1)]
    instructions: str | None = None
    tools: list[ToolSpec] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceObject | None = None
    parallel_tool_calls: bool | None = None
    text: TextOptions | None = None
    max_output_tokens: int | None = Field(default=None, ge=16, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(
        default=None, max_length=16
    )
    user: str | None = Field(default=None, max_length=256)
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=64)
    store: bool | None = None
    stream: bool | None = None
    stream_options: ResponsesStreamOptions | None = None
    # forwarded to upstreams, as chat forwards them
    reasoning: ReasoningOptions | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    safety_identifier: str | None = Field(default=None, max_length=64)
    prompt_cache_key: str | None = None
    truncation: Literal["auto", "disabled"] | None = None  # accepted: nothing is cut here

    @field_validator("tool_choice")
    @classmethod
    def _named_tool_exists(cls, value: Any, info: ValidationInfo) -> Any:
        offered = {(tool.type, tool.name) for tool in info.data.get("tools") or ()}
        named = value.tools if isinstance(value, AllowedToolsChoice) else [value]
        for tool in named:
            if (
                isinstance(tool, NamedFunction | NamedCustom)
                and (tool.type, tool.name) not in offered
            ):
                kind = "function" if tool.type == "function" else "custom tool"
                raise ValueError(f"names the {kind} {tool.name!r}, which is not in 'tools'")
        return value

    @property
    def stores(self) -> bool:
        """OpenAI keeps a response unless ``store`` is false."""
        return self.store is not False

    def items(self) -> list[MessageItem | CallItem | CallOutputItem]:
        """``input`` as items: a string is one user message."""
        if isinstance(self.input, str):
            return [MessageItem(role="user", content=self.input)]
        return list(self.input)


#: the names pydantic puts in an error's location for a union's branch (not the client's
#: fields): a tag follows a list index (an item's or part's ``type``) or ``format``
_TAGS = {
    "message",
    "function_call",
    "function_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "function",
    "custom",
    "allowed_tools",
    "grammar",
    "input_text",
    "output_text",
    "refusal",
    "input_image",
    "text",
    "json_object",
    "json_schema",
}


#: fields whose value is a tagged union: the tag after them is a branch, not a field
_UNIONS = {"format", "tool_choice"}


def _param(loc: tuple[int | str, ...]) -> str:
    """An error's location as the client wrote it: ``input.0.content`` (no branch names)."""
    kept: list[str] = []
    previous: int | str | None = None
    for part in loc:
        branch = isinstance(part, str) and (
            not part.isidentifier()
            or part == "str"
            or (part in _TAGS and (isinstance(previous, int) or previous in _UNIONS))
        )
        if not branch:
            kept.append(str(part))
        previous = part
    return ".".join(kept)


def invalid(exc: ValidationError, rename: dict[str, str] | None = None) -> InvalidRequest:
    """A validation error as a 400 in OpenAI's words, naming the parameter (for a union, the
    problem of the branch the value got furthest in). ``rename``: a top-level field -> the
    parameter the client wrote (when what failed was built from the request)."""
    errors = exc.errors(include_url=False)
    first = max(errors, key=lambda e: (len(e["loc"]), "str" not in e["loc"]))
    param = _param(tuple(first["loc"])) or None
    if param is not None and rename is not None:
        head = param.split(".")[0]
        param = rename.get(head, head)
    if first["type"] == "missing":
        message = f"Missing required parameter: '{param}'."
    elif first["type"] == "extra_forbidden":
        message = f"Unrecognized request argument supplied: {param}"
    else:
        message = f"Invalid value for '{param}': {first['msg']}"
    return InvalidRequest(message, param=param)


def parse_request(data: Any) -> ResponsesRequest:
    """The request, or a 400 naming the parameter that is wrong."""
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    try:
        return ResponsesRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from None
