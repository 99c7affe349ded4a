"""What the commands print: rich's console, made on first use, and JSON for scripts.

Commands print through ``output.console`` (looked up at each call), so a test can put a
console of its own here.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from rich.console import Console


class _Console:
    """rich's ``Console``, made at the first print: ``serve`` never loads rich."""

    def __init__(self) -> None:
        self._console: Console | None = None

    def print(self, *objects: Any, **options: Any) -> None:
        if self._console is None:
            from rich.console import Console

            self._console = Console()
        self._console.print(*objects, **options)


console: Console | _Console = _Console()


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
