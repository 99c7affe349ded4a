"""Shared helpers for the local engine tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator
from typing import Any

from minitoolai.chat.schemas import Message
from minitoolai.engines.base import ChatChunk, ChatParams


async def collect(stream: AsyncIterator[ChatChunk]) -> list[ChatChunk]:
    return [chunk async for chunk in stream]


def text_of(chunks: list[ChatChunk]) -> str:
    return "".join(c.content or "" for c in chunks)


def ask(question: str, *, max_tokens: int = 24, temperature: float = 0.0, **kw: Any) -> ChatParams:
    """A one-question request, greedy unless told otherwise (so its answer is reproducible)."""
    return ChatParams(
        messages=[Message(role="user", content=question)],
        max_tokens=max_tokens,
        temperature=temperature,
        **kw,
    )


def slow_request() -> ChatParams:
    """A request that would run for many seconds: EOS is banned and the budget is large."""
    return ask("Count from one to one thousand.", max_tokens=1800, extra={"ignore_eos": True})


def decoded_seconds(path: str) -> float:
    """Decode ``path`` with ffmpeg and measure what really comes out (a header can lie)."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg is not None
    pcm = subprocess.run(
        [ffmpeg, "-v", "error", "-i", path, "-f", "s16le", "-ac", "1", "-ar", "24000", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return len(pcm) / 2 / 24000
