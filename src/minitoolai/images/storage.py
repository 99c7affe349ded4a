"""Where finished images live. Local files by default; the interface leaves room for S3.

Object names are random (128 bits) so nobody can guess another user's image; access also needs
a signed, expiring URL (see ``signing``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Protocol

from minitoolai.catalog import IMAGE_MEDIA_TYPES


class Storage(Protocol):
    async def put(self, data: bytes, extension: str) -> str:
        """Store ``data``; return its new object name."""
        ...

    async def get(self, name: str) -> bytes | None: ...

    async def delete(self, name: str) -> None: ...

    async def purge_older_than(self, seconds: float) -> int: ...


def _valid(name: str) -> bool:
    stem, _, ext = name.partition(".")
    return (
        len(stem) == 32 and all(c in "0123456789abcdef" for c in stem) and ext in IMAGE_MEDIA_TYPES
    )


class LocalStorage:
    """Files under ``root``, written atomically (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def put(self, data: bytes, extension: str) -> str:
        name = f"{secrets.token_hex(16)}.{extension}"
        await asyncio.to_thread(self._write, name, data)
        return name

    def _write(self, name: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.root / name)

    def path(self, name: str) -> Path | None:
        if not _valid(name):
            return None
        path = self.root / name
        return path if path.is_file() else None

    async def get(self, name: str) -> bytes | None:
        path = self.path(name)
        return None if path is None else await asyncio.to_thread(path.read_bytes)

    async def delete(self, name: str) -> None:
        path = self.path(name)
        if path is not None:
            await asyncio.to_thread(path.unlink, True)

    async def purge_older_than(self, seconds: float) -> int:
        def purge() -> int:
            if not self.root.exists():
                return 0
            cutoff = time.time() - seconds
            gone = 0
            for path in self.root.iterdir():
                if _valid(path.name) and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    gone += 1
            return gone

        return await asyncio.to_thread(purge)
