"""Secret tokens for browsers (session cookies, reset links): random, stored only as SHA-256.

Like API keys they carry 256 bits of randomness, so a fast hash is enough: whoever reads the
database learns no token that opens a session or resets a password.
"""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def tokens_match(a: str, b: str) -> bool:
    """Constant-time comparison, for CSRF tokens."""
    return secrets.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )
