"""Durations as OpenAI's ``x-ratelimit-reset-*`` headers write them (Go's style): ``17ms``,
``1s``, ``12.5s``, ``6m0s``."""

from __future__ import annotations


def duration(ms: int) -> str:
    if ms < 1000:
        return f"{max(0, ms)}ms"
    minutes, rest = divmod(ms, 60_000)
    seconds = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"
