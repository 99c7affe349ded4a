"""Passwords, hashed with argon2id (argon2-cffi's defaults: RFC 9106's low-memory profile).

A password is low-entropy, so unlike an API key it gets a slow, salted, memory-hard hash.
Hashing takes tens of milliseconds of CPU: callers run it in a thread, off the event loop.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from minitoolai.errors import InvalidRequest

MIN_LENGTH = 8
MAX_LENGTH = 1024  # hashing is cheap per byte, but nobody needs more

_hasher = PasswordHasher()  # argon2id

#: verified against when the email is unknown, so a miss costs what a wrong password costs
DUMMY_HASH = _hasher.hash("not a password of anybody's")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidRequest(f"a password needs at least {MIN_LENGTH} characters", param="password")
    if len(password) > MAX_LENGTH:
        raise InvalidRequest(f"a password has at most {MAX_LENGTH} characters", param="password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)
