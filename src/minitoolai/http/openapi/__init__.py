"""``GET /openapi.json``: the OpenAPI 3.1 document of every public path, both wire formats.

Request bodies are the pydantic models the handlers validate with (``model_json_schema``), so
the document cannot drift from validation; what a ``field_validator`` checks in code (the image
model and scheduler names, the ``size`` pattern, at most 4 ``stop`` sequences) is added from
the same constants (``request_bodies``, each surface's ``VALIDATOR_FACTS``). Responses are
built as plain dicts on the hot path, so their schemas are written here by hand, one module per
surface (``chat``, ``responses``, ``models``, ``images``, ``embeddings``, ``speech``,
``account``, ``operations``, ``admin``; ``common`` holds what they share); ``tests/api`` checks
both against the running server (schemathesis).

The document is built once, on the first request, and served as cached bytes (``document``).
"""

from minitoolai.http.openapi.document import build_document, document_bytes, openapi_json
from minitoolai.http.openapi.request_bodies import REQUEST_MODELS, VALIDATOR_FACTS

__all__ = ["REQUEST_MODELS", "VALIDATOR_FACTS", "build_document", "document_bytes", "openapi_json"]
