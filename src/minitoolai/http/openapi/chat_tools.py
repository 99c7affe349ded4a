"""The tools of a chat request and the tool calls of its answers (``chat.schemas``'s ``Tool``,
``ToolChoice``, ``ToolCall``), which pydantic's own schema states too loosely."""

from __future__ import annotations

from minitoolai.http.openapi.common import INT, STR, Schema, closed_obj, nullable, obj


def _tagged(kind: str, inner: Schema) -> Schema:
    """``{"type": kind, kind: inner}``, OpenAI's shape for each kind of tool."""
    return closed_obj({"type": {"const": kind}, kind: inner})


#: a function a client offers the model (``chat.schemas.FunctionDefinition``), as a tool
FUNCTION: Schema = closed_obj(
    {
        "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
        "description": nullable(STR),
        "parameters": nullable({"type": "object"}),
        "strict": nullable({"type": "boolean"}),
    },
    required=["name"],
)
#: a custom tool a client offers the model (``chat.schemas.CustomDefinition``): its input is
#: free text, or what a grammar allows
CUSTOM: Schema = closed_obj(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 64},
        "description": nullable(STR),
        "format": nullable(
            {
                "oneOf": [
                    closed_obj({"type": {"const": "text"}}),
                    closed_obj(
                        {
                            "type": {"const": "grammar"},
                            "grammar": closed_obj(
                                {"definition": STR, "syntax": {"enum": ["lark", "regex"]}}
                            ),
                        }
                    ),
                ]
            }
        ),
    },
    required=["name"],
)
#: a tool of a chat request (``chat.schemas.Tool``): a function or a custom tool
TOOL: Schema = {"oneOf": [_tagged("function", FUNCTION), _tagged("custom", CUSTOM)]}


def _named(kind: str) -> Schema:
    """A tool named by kind: ``{"type": "function", "function": {"name"}}`` (or custom)."""
    return _tagged(kind, closed_obj({"name": STR}))


#: chat's ``tool_choice`` (``chat.schemas.ToolChoice``): a mode, a named function, a named
#: custom tool, or every tool offered but only ``allowed_tools`` callable
TOOL_CHOICE: Schema = {
    "anyOf": [
        {"type": "string", "enum": ["none", "auto", "required"]},
        _named("function"),
        _named("custom"),
        _tagged(
            "allowed_tools",
            closed_obj(
                {
                    "mode": {"enum": ["auto", "required"]},
                    "tools": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 128,
                        "items": {"oneOf": [_named("function"), _named("custom")]},
                    },
                }
            ),
        ),
    ]
}

#: each kind of tool call, and the field holding what the model wrote for it
_CALL_KINDS = (("function", "arguments"), ("custom", "input"))
#: a call of an assistant turn in a request's history (``chat.schemas.ToolCall``)
HISTORY_CALL: Schema = {
    "oneOf": [
        closed_obj({"id": STR, "type": {"const": kind}, kind: closed_obj({"name": STR, text: STR})})
        for kind, text in _CALL_KINDS
    ]
}
#: a tool call in an answer, and a piece of one in a stream (the first has id, type and name):
#: a function's (``arguments``) or a custom tool's (``input``)
TOOL_CALL: Schema = {
    "oneOf": [
        obj({"id": STR, "type": {"const": kind}, kind: obj({"name": STR, text: STR})})
        for kind, text in _CALL_KINDS
    ]
}
TOOL_CALL_PIECE: Schema = obj(
    {
        "index": INT,
        "id": STR,
        "type": {"enum": ["function", "custom"]},
        "function": obj({"name": STR, "arguments": STR}, required=[]),
        "custom": obj({"name": STR, "input": STR}, required=[]),
    },
    required=["index"],
)
