"""Engine failures, translated in one place into the API's errors (``routing.failover``)."""

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
    """The engine refused the request itself (4xx upstream, bad input): do not retry.

    ``param`` names the request field at fault when the engine knows it (``"voice"``); the
    client's 400 carries it as is.
    """

    def __init__(self, message: str, status: int = 400, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param
