"""Idempotency keys, as Stripe defines them: scoped to an endpoint, bound to a request body.

A client's ``Idempotency-Key`` is stored as ``"<endpoint> <key>"``, so the same key on a chat
and on an image job names two different requests and a replay can never reach another
endpoint's charge. The body's fingerprint is stored with it: the same key with a different
body is a 409, never the first request's answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from minitoolai.errors import Conflict

MAX_KEY_LENGTH = 200


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    scope: str  # the endpoint, e.g. "/v1/chat/completions"
    key: str  # what the client sent
    fingerprint: str  # SHA-256 of the canonical request body

    @classmethod
    def for_body(cls, scope: str, key: str, body: Any) -> IdempotencyKey:
        canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        return cls(scope, key, hashlib.sha256(canonical).hexdigest())

    @property
    def stored(self) -> str:
        return f"{self.scope} {self.key}"

    def part(self, index: int) -> IdempotencyKey:
        """The key of the ``index``-th of several charges one request makes (``n`` images)."""
        return IdempotencyKey(self.scope, f"{self.key}:{index}", self.fingerprint)


def reused_with_another_body() -> Conflict:
    return Conflict(
        "This Idempotency-Key was already used with a different request body. "
        "Use a new key for a new request.",
        code="idempotency_key_reused",
    )
