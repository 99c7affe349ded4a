"""One command's work against the configured database, and its errors as exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from minitoolai.bootstrap import Services, build_services
from minitoolai.cli import output
from minitoolai.errors import APIError
from minitoolai.settings import Settings

T = TypeVar("T")


def run(action: Callable[[Services], Awaitable[T]]) -> T:
    """``action`` on services built for it alone (no engines), closed after; an API error
    exits 1, a bad value 2."""

    async def go() -> T:
        services = await build_services(Settings(), engines=False)
        try:
            return await action(services)
        finally:
            await services.aclose()

    try:
        return asyncio.run(go())
    except APIError as exc:
        output.console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1) from None
    except ValueError as exc:
        output.console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
