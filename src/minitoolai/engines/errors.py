"""Engine failures, translated in one place into the API's errors by the router."""

from __future__ import annotations


class EngineError(Exception):
    """An engine failed. ``retryable`` tells the router another deployment may succeed."""

    retryable = False


class EngineUnavailable(EngineError):
    """Could not start answering (connect error, timeout, 5xx, model missing): try another."""

    retryable = True


class EngineBusy(EngineError):
    """The engine's queue is full. Rendered as 429 with Retry-After."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EngineRejected(EngineError):
    """The engine refused the request itself (4xx upstream, bad input): do not retry."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
