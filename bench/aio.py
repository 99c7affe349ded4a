"""Run a coroutine on uvloop when it is installed, as the gateway under test does."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``uvloop.run`` if uvloop is importable, else ``asyncio.run`` (slower, still correct)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
