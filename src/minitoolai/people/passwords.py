"""Passwords, hashed with argon2id (argon2-cffi's defaults: RFC 9106's low-memory profile).

A password is low-entropy, so unlike an API key it gets a slow, salted, memory-hard hash.
Hashing takes tens of milliseconds of CPU and 64 MiB: ``hashed`` and ``verified`` run it in a
thread, off the event loop, at most ``HASHES_AT_ONCE`` at a time, so a flood of sign-ups or
log-ins waits its turn instead of taking every core and the memory with it (the API keeps
its share of the machine).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

import anyio

from minitoolai.errors import InvalidRequest

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MIN_LENGTH = 8
MAX_LENGTH = 1024  # hashing is cheap per byte, but nobody needs more
#: password hashes running at once, at most: half the cores (one on a two-core machine)
HASHES_AT_ONCE = max(1, (os.cpu_count() or 2) // 2)
_HASHING = anyio.CapacityLimiter(HASHES_AT_ONCE)


@functools.cache
def _argon() -> tuple[PasswordHasher, str]:
    """The hasher (argon2id) and a hash to verify against when the email is unknown, so a miss
    costs what a wrong password costs. Made at the first use of either, in the caller's thread:
    a gateway nobody logs in to never loads argon2 nor spends a hash at start-up."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher()
    return hasher, hasher.hash("not a password of anybody's")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidRequest(f"a password needs at least {MIN_LENGTH} characters", param="password")
    if len(password) > MAX_LENGTH:
        raise InvalidRequest(f"a password has at most {MAX_LENGTH} characters", param="password")


def hash_password(password: str) -> str:
    return _argon()[0].hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` is the one of ``stored_hash``; None (an unknown email) is checked
    against the dummy hash, at the same cost, and is always False."""
    from argon2.exceptions import InvalidHashError, VerificationError

    hasher, dummy = _argon()
    try:
        return hasher.verify(stored_hash or dummy, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def hashed(password: str) -> str:
    """``hash_password`` in a thread, ``HASHES_AT_ONCE`` at most."""
    return await anyio.to_thread.run_sync(hash_password, password, limiter=_HASHING)


async def verified(stored_hash: str | None, password: str) -> bool:
    """``verify_password`` in a thread, ``HASHES_AT_ONCE`` at most."""
    return await anyio.to_thread.run_sync(verify_password, stored_hash, password, limiter=_HASHING)


def needs_rehash(stored_hash: str) -> bool:
    return _argon()[0].check_needs_rehash(stored_hash)
