"""Random names for what a request makes (its charge, its answer, its request id), from the
operating system's CSPRNG read 4 KiB at a time.

``secrets.token_hex`` asks the kernel on every call (a ``getrandom`` system call); a chat
request names four things, and a system call costs 2-5 us on a virtual machine. These ids come
from the same source and are as hard to guess, but they are names, not credentials: keys,
signatures and tokens keep using ``secrets`` itself. A forked child drops the bytes it
inherited, so no two processes hand out the same ones.
"""

from __future__ import annotations

import base64
import os
import threading

_READ = 4096
_lock = threading.Lock()
_pool = b""
_at = 0


def _take(size: int) -> bytes:
    global _pool, _at
    with _lock:  # image workers and ``to_thread`` name things too
        if _at + size > len(_pool):
            _pool, _at = os.urandom(max(_READ, size)), 0
        taken = _pool[_at : _at + size]
        _at += size
    return taken


def hex_id(size: int) -> str:
    """``size`` random bytes as hex (``secrets.token_hex``'s form)."""
    return _take(size).hex()


def urlsafe_id(size: int) -> str:
    """``size`` random bytes as unpadded URL-safe base64 (``secrets.token_urlsafe``'s form)."""
    return base64.urlsafe_b64encode(_take(size)).rstrip(b"=").decode("ascii")


def _forget() -> None:
    global _pool, _at
    _pool, _at = b"", 0


os.register_at_fork(after_in_child=_forget)
