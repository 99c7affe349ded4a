"""A Responses request in chat's words: its items become chat messages, its parameters chat's,
so one ``ChatRequest`` (and so one pipeline, one hold, one settlement) answers both APIs.

==========================  ==================================================================
Responses                   chat
==========================  ==================================================================
``instructions``            a ``system`` message first (not carried by ``previous_response_id``)
``input`` string            one ``user`` message
message items               messages; ``input_text`` -> ``text``, ``input_image`` -> ``image_url``
                            parts, an assistant's ``output_text`` parts -> its content
``function_call`` items     ``tool_calls`` of the assistant turn they follow
``custom_tool_call`` items  ``tool_calls`` too (``{"type": "custom", "custom": {"name", "input"}}``)
``*_call_output`` items     ``tool`` messages
``tools`` (flat)            ``{"type": "function", "function": {...}}``, ``{"type": "custom",
                            "custom": {...}}`` (a grammar's ``syntax``/``definition`` nested)
``tool_choice`` named       ``{"type": "function", "function": {"name"}}`` (or ``custom``);
                            ``allowed_tools`` -> chat's, its tools named the same way
``text.format``             ``response_format`` (``json_schema`` wrapped in ``json_schema``)
``max_output_tokens``       ``max_completion_tokens``
``reasoning.effort``        ``reasoning_effort``; ``text.verbosity`` -> ``verbosity``
==========================  ==================================================================
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from minitoolai.chat.schemas import ChatRequest
from minitoolai.responses.schemas import (
    AllowedToolsChoice,
    CallOutputItem,
    ContentPart,
    CustomFormatGrammar,
    CustomToolCallItem,
    CustomToolSpec,
    FunctionCallItem,
    FunctionToolSpec,
    InputImagePart,
    InputTextPart,
    MessageItem,
    NamedCustom,
    NamedFunction,
    OutputTextPart,
    RefusalPart,
    ResponsesRequest,
    TextFormatJSONObject,
    TextFormatJSONSchema,
    invalid,
)

Message = dict[str, Any]

#: a chat field a validation error names -> the Responses parameter the client wrote
_PARAMS = {
    "messages": "input",
    "max_completion_tokens": "max_output_tokens",
    "response_format": "text.format",
    "reasoning_effort": "reasoning.effort",
    "verbosity": "text.verbosity",
}


def messages_of(request: ResponsesRequest) -> list[Message]:
    """The request's input items as chat messages (the turn ``previous_response_id`` keeps)."""
    messages: list[Message] = []
    calls_may_join = False  # a function_call joins the assistant turn right before it
    for item in request.items():
        if isinstance(item, MessageItem):
            messages.append(_message(item))
            calls_may_join = item.role == "assistant"
        elif isinstance(item, FunctionCallItem | CustomToolCallItem):
            call = _call(item)
            if calls_may_join:
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
                calls_may_join = True
        else:
            messages.append(_tool_result(item))
            calls_may_join = False
    return messages


def _message(item: MessageItem) -> Message:
    if isinstance(item.content, str):
        return {"role": item.role, "content": item.content}
    if item.role == "assistant":
        text = "".join(p.text for p in item.content if isinstance(p, OutputTextPart))
        message: Message = {"role": "assistant", "content": text}
        refusal = "".join(p.refusal for p in item.content if isinstance(p, RefusalPart))
        if refusal:
            message["refusal"] = refusal
        return message
    return {"role": item.role, "content": [_part(p) for p in item.content]}


def _part(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, InputImagePart):
        return {"type": "image_url", "image_url": {"url": part.image_url, "detail": part.detail}}
    assert isinstance(part, InputTextPart)  # the message's validator let no other part in
    return {"type": "text", "text": part.text}


def _call(item: FunctionCallItem | CustomToolCallItem) -> dict[str, Any]:
    """A call item as a chat ``tool_calls`` entry."""
    if isinstance(item, CustomToolCallItem):
        return {
            "id": item.call_id,
            "type": "custom",
            "custom": {"name": item.name, "input": item.input},
        }
    return {
        "id": item.call_id,
        "type": "function",
        "function": {"name": item.name, "arguments": item.arguments},
    }


def _tool_result(item: CallOutputItem) -> Message:
    output = item.output
    text = output if isinstance(output, str) else "".join(p.text for p in output)
    return {"role": "tool", "tool_call_id": item.call_id, "content": text}


def assistant_message(text: str, calls: list[dict[str, Any]]) -> Message:
    """An answer as the assistant turn of the conversation a next response continues."""
    message: Message = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


def chat_request(
    request: ResponsesRequest, history: list[Message], turn: list[Message], *, stream: bool
) -> ChatRequest:
    """The ``ChatRequest`` that answers ``request``: its instructions, the stored conversation
    it continues (``history``), then this turn's messages."""
    instructions = (
        [{"role": "system", "content": request.instructions}] if request.instructions else []
    )
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [*instructions, *history, *turn],
        "stream": stream,
        "max_completion_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "user": request.user,
        "service_tier": request.service_tier,
        "safety_identifier": request.safety_identifier,
        "prompt_cache_key": request.prompt_cache_key,
        "reasoning_effort": request.reasoning.effort if request.reasoning else None,
        "verbosity": request.text.verbosity if request.text else None,
        "response_format": _response_format(request),
    }
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
        body["parallel_tool_calls"] = request.parallel_tool_calls
    choice = request.tool_choice
    if isinstance(choice, NamedFunction | NamedCustom):
        body["tool_choice"] = _named(choice)
    elif isinstance(choice, AllowedToolsChoice):
        tools = [_named(tool) for tool in choice.tools]
        body["tool_choice"] = {
            "type": "allowed_tools",
            "allowed_tools": {"mode": choice.mode, "tools": tools},
        }
    elif choice == "required" or (choice is not None and request.tools):
        body["tool_choice"] = choice  # "none" and "auto" mean nothing without tools
    try:
        return ChatRequest.model_validate({k: v for k, v in body.items() if v is not None})
    except ValidationError as exc:  # what only the whole conversation can break
        # a message's index in chat's list means nothing to the client: name ``input``
        raise invalid(exc, _PARAMS) from None


def _tool(tool: FunctionToolSpec | CustomToolSpec) -> dict[str, Any]:
    """A flat tool in chat's nested shape (a grammar's fields nested in ``grammar``)."""
    if isinstance(tool, FunctionToolSpec):
        return {
            "type": "function",
            "function": tool.model_dump(exclude={"type"}, exclude_none=True),
        }
    custom: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        custom["description"] = tool.description
    fmt = tool.format
    if isinstance(fmt, CustomFormatGrammar):
        grammar = {"definition": fmt.definition, "syntax": fmt.syntax}
        custom["format"] = {"type": "grammar", "grammar": grammar}
    elif fmt is not None:
        custom["format"] = {"type": "text"}
    return {"type": "custom", "custom": custom}


def _named(tool: NamedFunction | NamedCustom) -> dict[str, Any]:
    return {"type": tool.type, tool.type: {"name": tool.name}}


def _response_format(request: ResponsesRequest) -> dict[str, Any] | None:
    fmt = request.text.format if request.text else None
    if isinstance(fmt, TextFormatJSONSchema):
        schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema_}
        if fmt.description is not None:
            schema["description"] = fmt.description
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        return {"type": "json_schema", "json_schema": schema}
    if isinstance(fmt, TextFormatJSONObject):
        return {"type": "json_object"}
    return None  # plain text is what chat answers anyway
