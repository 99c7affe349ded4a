"""The exception tree. Each class knows its HTTP status and OpenAI error ``type``.

    APIError                      500 api_error (never shows internals)
    ├── InvalidRequest            400 invalid_request_error
    │   └── UnsupportedInput      400 invalid_request_error (e.g. an image a model cannot see)
    ├── AuthenticationFailed      401 authentication_error
    ├── PermissionDenied          403 permission_error
    ├── InsufficientCredit        402 insufficient_quota
    ├── NotFound                  404 not_found_error
    ├── Conflict                  409 conflict_error
    ├── PayloadTooLarge           413 invalid_request_error
    ├── RateLimited               429 rate_limit_error (carries Retry-After)
    ├── UpstreamError             502 upstream_error
    └── ServiceUnavailable        503 service_unavailable

Domain code raises these; the HTTP layer renders them once, in one handler, as
``{"error": {"message", "type", "param", "code"}}``. Nothing here imports the web framework.
"""

from __future__ import annotations


class APIError(Exception):
    status_code = 500
    error_type = "api_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str = "The server had an error while processing your request.",
        *,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code

    def to_dict(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequest(APIError):
    status_code = 400
    error_type = "invalid_request_error"


class UnsupportedInput(InvalidRequest):
    default_code = "unsupported_input"


class AuthenticationFailed(APIError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(APIError):
    status_code = 403
    error_type = "permission_error"


class InsufficientCredit(APIError):
    status_code = 402
    error_type = "insufficient_quota"
    default_code = "insufficient_quota"


class NotFound(APIError):
    status_code = 404
    error_type = "not_found_error"


class ModelNotFound(NotFound):
    """A model this server does not know: 404 in OpenAI's words, so SDKs raise
    ``NotFoundError``."""

    error_type = "invalid_request_error"
    default_code = "model_not_found"


class Conflict(APIError):
    status_code = 409
    error_type = "conflict_error"


class PayloadTooLarge(APIError):
    status_code = 413
    error_type = "invalid_request_error"


class RateLimited(APIError):
    status_code = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int = 1, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class UpstreamError(APIError):
    status_code = 502
    error_type = "upstream_error"


class ServiceUnavailable(APIError):
    status_code = 503
    error_type = "service_unavailable"
