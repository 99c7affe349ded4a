"""What a request lets the model write: plain text, JSON, a tool call, or a choice of these.

A small local model has no function-calling training we can rely on, so tool calls are a
format we teach it in the prompt (``prompt.tools_section``) and enforce with a grammar: a call
is the marker ``<tool_call>`` followed by ``{"name": ..., "arguments": ...}`` where the name is
one of the offered tools and the arguments follow that tool's ``parameters`` schema. With
``tool_choice`` ``required`` or a named function the grammar allows nothing else; with ``auto``
it allows a call or an answer (free text, or the ``response_format`` JSON), and the first
character the model writes decides which. One call per answer (``parallel_tool_calls`` is
accepted; the model is too small to plan several calls at once).

``tool_choice`` ``allowed_tools`` keeps every tool in the prompt and lets the grammar call only
the allowed ones (``required``: a call is forced, as with ``required``). A custom tool with
free-form input (``format`` text, the default) is offered as a function taking one string,
``{"input": ...}``, so the same grammar bounds it, and its call comes back as a custom tool's
(``{"custom": {"name", "input"}}``); one whose input follows a Lark or regex grammar is a 400
naming ``tools``: llama.cpp reads neither syntax, and its input could not be enforced.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from minitoolai.engines.base import ChatParams, ToolCallPart
from minitoolai.engines.errors import EngineRejected
from minitoolai.engines.llamacpp.grammar import (
    ANY_OBJECT,
    TEXT,
    Answer,
    build_grammar,
    inline_refs,
)

TOOL_CALL_MARKER = "<tool_call>"
#: a tool without ``parameters`` takes no arguments
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


#: what a custom tool takes, as the local model is told and the grammar enforces it
CUSTOM_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string"}},
    "required": ["input"],
    "additionalProperties": False,
}


def function_of(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool as a function the model can call (a custom tool's: one ``input`` string)."""
    if tool.get("type") == "custom":
        return _custom_as_function(tool)
    function = tool.get("function") if tool.get("type", "function") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise EngineRejected(
            "each tool must be {'type': 'function', 'function': {'name': ...}}", param="tools"
        )
    return function


def _custom_as_function(tool: dict[str, Any]) -> dict[str, Any]:
    custom = tool.get("custom")
    if not isinstance(custom, dict) or not isinstance(custom.get("name"), str):
        raise EngineRejected("each custom tool needs custom.name", param="tools")
    kind = (custom.get("format") or {}).get("type", "text")
    if kind != "text":
        raise EngineRejected(
            f"custom tool {custom['name']!r} takes input in a {kind} format, which the local "
            "engine cannot enforce (only free-form text input); route this request to an "
            "upstream that supports grammar-format custom tools",
            param="tools",
        )
    return {
        "name": custom["name"],
        "description": custom.get("description") or "Takes free-form text as its input.",
        "parameters": CUSTOM_INPUT,
    }


def custom_tools(params: ChatParams) -> frozenset[str]:
    """The names of the request's custom tools (their calls are custom tools' calls)."""
    return frozenset(
        tool["custom"]["name"] for tool in params.tools or () if tool.get("type") == "custom"
    )


def offered_tools(params: ChatParams) -> list[dict[str, Any]]:
    """The functions the model is told about: none when ``tool_choice`` is ``"none"``."""
    if not params.tools or params.tool_choice == "none":
        return []
    return [function_of(tool) for tool in params.tools]


@dataclass(frozen=True, slots=True)
class OutputPlan:
    """How one answer is constrained: ``gbnf`` (None: unconstrained text), whether the answer
    can only be a tool call / may be one, and whether it is JSON (no stop sequences apply)."""

    gbnf: str | None
    calls_only: bool
    may_call: bool
    structured: bool
    #: the names of the custom tools among the callable ones
    custom: frozenset[str] = frozenset()


def _answer_of(response_format: dict[str, Any] | None) -> Answer:
    kind = (response_format or {}).get("type", "text")
    if kind == "json_object":
        return ANY_OBJECT
    if kind == "json_schema":
        spec = response_format.get("json_schema") if response_format else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise EngineRejected(
                "response_format json_schema needs json_schema.schema (a JSON schema object)",
                param="response_format",
            )
        return schema
    return TEXT


def _call_schema(function: dict[str, Any]) -> dict[str, Any]:
    # each tool's parameters is a schema document of its own: its $refs point into it
    parameters = inline_refs(function.get("parameters") or NO_PARAMETERS)
    return {
        "type": "object",
        "properties": {"name": {"const": function["name"]}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def _named(tools: list[dict[str, Any]], choice: dict[str, Any]) -> str:
    """The function a named choice names (a custom tool's name cannot be among ``tools``)."""
    name = (choice.get(choice.get("type") or "function") or {}).get("name")
    if not any(f["name"] == name for f in tools):
        raise EngineRejected(
            f"tool_choice names {name!r}, which is not among the tools", param="tool_choice"
        )
    return str(name)


def _chosen(tools: list[dict[str, Any]], choice: str | dict[str, Any] | None) -> list[Any]:
    """The functions the model may call: all of them, the named one, or the allowed ones."""
    if not isinstance(choice, dict):
        return tools
    if choice.get("type") == "allowed_tools":
        allowed = {_named(tools, named) for named in choice["allowed_tools"]["tools"]}
        return [f for f in tools if f["name"] in allowed]
    name = _named(tools, choice)
    return [f for f in tools if f["name"] == name]


def _forced(choice: str | dict[str, Any] | None) -> bool:
    """Whether the answer must be a call: ``required``, a named tool, allowed tools in
    ``required`` mode."""
    if isinstance(choice, dict):
        if choice.get("type") == "allowed_tools":
            return bool(choice["allowed_tools"]["mode"] == "required")
        return True
    return choice == "required"


def plan_output(params: ChatParams, budget: int) -> OutputPlan:
    """The grammar for this request's answer within ``budget`` tokens (400 when a JSON
    answer might not close within it)."""
    answer = _answer_of(params.response_format)
    tools = offered_tools(params)
    choice = params.tool_choice or "auto"
    calls_only = bool(tools) and _forced(choice)
    schemas = [_call_schema(f) for f in _chosen(tools, choice)] if tools else None
    try:
        grammar = build_grammar(
            budget, None if calls_only else answer, schemas, TOOL_CALL_MARKER if tools else ""
        )
    except EngineRejected:
        raise
    except Exception as exc:  # the converter's own refusals (ValueError, KeyError...)
        raise EngineRejected(
            f"this JSON schema cannot be enforced locally: {type(exc).__name__}: {exc}",
            param="response_format" if isinstance(answer, dict) else "tools",
        ) from exc
    return OutputPlan(
        gbnf=None if grammar is None else grammar.gbnf,
        calls_only=calls_only,
        may_call=bool(tools),
        structured=answer != TEXT,
        custom=custom_tools(params) if tools else frozenset(),
    )


def parse_call(text: str, custom: frozenset[str] = frozenset()) -> ToolCallPart | None:
    """The call in a finished ``<tool_call>{...}`` answer; None when it is cut short. A call of
    one of the ``custom`` tools is a custom tool's call, its ``input`` the text."""
    try:
        call = json.loads(text.removeprefix(TOOL_CALL_MARKER))
    except ValueError:
        return None
    if call["name"] in custom:
        return ToolCallPart(
            index=0,
            id="call_" + secrets.token_hex(12),
            name=call["name"],
            arguments=call["arguments"]["input"],
            kind="custom",
        )
    return ToolCallPart(
        index=0,
        id="call_" + secrets.token_hex(12),
        name=call["name"],
        arguments=json.dumps(call["arguments"], ensure_ascii=False),
    )
