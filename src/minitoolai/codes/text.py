"""Redeem codes as text: made from ``secrets``, typed back by people, stored as a hash.

A code is ``MTAI-`` and 16 characters of Crockford's base32 (no I, L, O or U), in groups of 4:
``MTAI-7K2M-Q9XD-4RTB-HW3N``, 80 bits of randomness. That is far beyond guessing (and guesses
are throttled), so a fast SHA-256 of the normalised code is the right hash, as for API keys.

Normalising forgives what people do when they copy or type a code: any case, spaces, dashes,
the ``MTAI`` prefix left out, and O/I/L typed for 0/1/1.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "MTAI"
#: Crockford's base32: 32 symbols, none that reads as another
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 16  # symbols: 16 * 5 = 80 bits
GROUP = 4
#: the longest text worth normalising (a code with generous spacing)
MAX_TYPED = 100
_TYPOS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_IGNORED = str.maketrans("", "", " -\t\r\n")


def generate_code() -> str:
    body = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    groups = [body[i : i + GROUP] for i in range(0, LENGTH, GROUP)]
    return "-".join([PREFIX, *groups])


def normalise(typed: str) -> str | None:
    """The code's 16 symbols as they were made, or None when ``typed`` cannot be a code."""
    if len(typed) > MAX_TYPED:  # not worth reading
        return None
    text = typed.upper().translate(_IGNORED)
    if len(text) == len(PREFIX) + LENGTH and text.startswith(PREFIX):
        text = text[len(PREFIX) :]
    text = text.translate(_TYPOS)
    if len(text) != LENGTH or any(ch not in ALPHABET for ch in text):
        return None
    return text


def code_hash(body: str) -> str:
    """What the database keeps of a code: the SHA-256 of its normalised symbols."""
    return hashlib.sha256(body.encode("ascii")).hexdigest()


def last4(body: str) -> str:
    return body[-GROUP:]
