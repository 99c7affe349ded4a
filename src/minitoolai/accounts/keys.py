"""API keys: random, shown once, stored as a SHA-256 hash with a short prefix for humans.

A key has 256 bits of randomness, so a fast hash is the right choice (a slow KDF protects low
entropy passwords, and would cost every request). Lookups go by hash; the final comparison is
constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "mtai-"
VISIBLE = 12  # characters of the key shown in listings: "mtai-Ab3dEf9"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def visible_prefix(key: str) -> str:
    return key[:VISIBLE]


def hashes_match(stored: str, presented_key: str) -> bool:
    return hmac.compare_digest(stored, hash_key(presented_key))
