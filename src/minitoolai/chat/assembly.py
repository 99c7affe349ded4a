"""A streamed answer's pieces put back together, for one JSON body and the stored completion:
tool calls joined by ``index`` (id and name from their first piece, arguments concatenated),
``logprobs`` joined by concatenating their token lists, and each choice's parts gathered
(``Choices``: one ``ChoiceParts`` per choice of an ``n`` > 1 answer).

Only answers with tool calls or logprobs build ``ToolCalls`` or ``Logprobs``: plain text needs
neither.
"""

from __future__ import annotations

from typing import Any

from minitoolai.chat.wire import choice_of
from minitoolai.engines.base import ToolCallPart


class ToolCalls:
    """The calls of one answer, in OpenAI's ``message.tool_calls`` shape once whole: a
    function call's ``{"function": {"name", "arguments"}}``, a custom tool's ``{"custom":
    {"name", "input"}}``."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, part: ToolCallPart) -> None:
        call = self._calls.get(part.index)
        if call is None:
            kind = part.kind
            text = "input" if kind == "custom" else "arguments"
            call = self._calls[part.index] = {
                "id": part.id or "",
                "type": kind,
                kind: {"name": part.name or "", text: ""},
            }
        else:
            if part.id:
                call["id"] = part.id
            if part.name:
                call[call["type"]]["name"] = part.name
        body = call[call["type"]]
        if "input" in body:
            body["input"] += part.arguments
        else:
            body["arguments"] += part.arguments

    def whole(self) -> list[dict[str, Any]]:
        return [self._calls[index] for index in sorted(self._calls)]

    def generated_text(self) -> str:
        """What the model wrote for the calls: names and arguments (or inputs)."""
        return "".join(
            body["name"] + body.get("arguments", body.get("input", ""))
            for body in (call[call["type"]] for call in self.whole())
        )


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


class ChoiceParts:
    """One choice as it streamed: its text pieces, tool calls, logprobs and finish reason."""

    __slots__ = ("calls", "finish_reason", "logprobs", "text")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: ToolCalls | None = None  # made at the first tool call
        self.logprobs: Logprobs | None = None  # made at the first logprobs
        self.finish_reason: str | None = None

    def add_call(self, part: ToolCallPart) -> None:
        calls = self.calls = self.calls or ToolCalls()
        calls.add(part)

    def add_logprobs(self, piece: dict[str, Any]) -> None:
        logprobs = self.logprobs = self.logprobs or Logprobs()
        logprobs.add(piece)

    def generated_text(self) -> str:
        """Everything the model wrote for this choice: its text, then its calls."""
        text = "".join(self.text)
        return text + self.calls.generated_text() if self.calls is not None else text

    def whole(self, index: int, *, legacy_functions: bool = False) -> dict[str, Any]:
        return choice_of(
            index,
            "".join(self.text),
            self.finish_reason,
            tool_calls=self.calls.whole() if self.calls else None,
            logprobs=self.logprobs.whole() if self.logprobs else None,
            legacy_functions=legacy_functions,
        )


class Choices:
    """An answer's choices by index, made as they first appear (``first`` always exists)."""

    def __init__(self) -> None:
        self.first = ChoiceParts()
        self._all = [self.first]

    def of(self, index: int) -> ChoiceParts:
        while len(self._all) <= index:
            self._all.append(ChoiceParts())
        return self._all[index]

    def __iter__(self) -> Any:
        return iter(self._all)

    def whole(self, *, legacy_functions: bool = False) -> list[dict[str, Any]]:
        return [
            parts.whole(index, legacy_functions=legacy_functions)
            for index, parts in enumerate(self._all)
        ]
