"""A streamed answer's pieces put back together, for one JSON body and the stored completion:
tool calls joined by ``index`` (id and name from their first piece, arguments concatenated),
and ``logprobs`` joined by concatenating their token lists.

Only answers with tool calls or logprobs build one of these: plain text needs neither.
"""

from __future__ import annotations

from typing import Any

from minitoolai.engines.base import ToolCallPart


class ToolCalls:
    """The calls of one answer, in OpenAI's ``message.tool_calls`` shape once whole."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, part: ToolCallPart) -> None:
        call = self._calls.get(part.index)
        if call is None:
            call = self._calls[part.index] = {
                "id": part.id or "",
                "type": "function",
                "function": {"name": part.name or "", "arguments": ""},
            }
        else:
            if part.id:
                call["id"] = part.id
            if part.name:
                call["function"]["name"] = part.name
        call["function"]["arguments"] += part.arguments

    def whole(self) -> list[dict[str, Any]]:
        return [self._calls[index] for index in sorted(self._calls)]


class Logprobs:
    """An answer's ``logprobs``: the token lists of every piece, in order."""

    def __init__(self) -> None:
        self._lists: dict[str, list[Any]] = {}

    def add(self, piece: dict[str, Any]) -> None:
        for key, tokens in piece.items():
            if isinstance(tokens, list):
                self._lists.setdefault(key, []).extend(tokens)

    def whole(self) -> dict[str, Any]:
        return {"content": self._lists.get("content"), "refusal": self._lists.get("refusal")}
