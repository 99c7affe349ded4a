"""What a chat answer says, in order, as the domain tells it (``chat.answer.ChatAnswer``).

A live answer yields ``Began``, ``Delta`` or ``ToolCallDelta`` first, then ``Delta``\\ s and
``ToolCallDelta``\\ s, ``Finish``, and last ``Billed`` once the money has settled; an engine
failing half-way yields ``Failure`` before ``Billed``. The HTTP layer renders these
(``chat.render``) and decides nothing.

An answer with ``n`` > 1 choices interleaves its choices' events: each event names its
``choice`` (0..n-1; 0, the default, for the usual single choice), each choice ends with its own
``Finish``, and one ``Billed`` covers them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minitoolai.engines.base import ToolCallPart, Usage

# Not frozen: a frozen dataclass costs twice as much to build, and a stream builds one per token.


@dataclass(slots=True)
class Began:
    """The assistant's turn began, nothing said yet (an engine's role-only chunk)."""

    choice: int = 0


#: the ``Began`` of the first choice: it carries nothing else, so a stream costs no allocation
BEGAN = Began()


@dataclass(slots=True)
class Delta:
    """Text the assistant said next, with its tokens' ``logprobs`` when the client asked."""

    text: str
    logprobs: dict[str, Any] | None = None
    choice: int = 0


#: A piece of a tool call, as OpenAI streams it: the engine's own piece, passed on as it is
#: (the first piece of call ``index`` has its ``id`` and ``name``, later ones more arguments;
#: ``choice`` names its choice, ``kind`` says ``function`` or ``custom``)
ToolCallDelta = ToolCallPart


@dataclass(slots=True)
class Finish:
    """Why the answer (its choice ``choice``) ended: ``stop``, ``length``..."""

    reason: str
    choice: int = 0


@dataclass(slots=True)
class Failure:
    """The engine broke after the answer began; what was delivered is still billed."""

    message: str


@dataclass(slots=True)
class Billed:
    """The usage the client was charged for (the last event)."""

    usage: Usage


ChatEvent = Began | Delta | ToolCallDelta | Finish | Failure | Billed
