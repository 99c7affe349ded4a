"""What every surface of the document is built from: schema helpers, the error answers, the
shared parameters and the security each path asks for."""

from __future__ import annotations

from typing import Any

from minitoolai.http.responses import MAX_BODY

Schema = dict[str, Any]

JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream"

#: HTTP status -> what it means here (the descriptions of the error responses).
STATUS_TEXT = {
    400: "Invalid request: the body, a parameter or a header is wrong (`param` names it).",
    401: "Missing or invalid key.",
    402: "Insufficient credit: the account cannot cover the request's hold.",
    403: "Forbidden: this key may not use this model, or the signed link is wrong or expired.",
    404: "Not found: no such model, account, key, job or file.",
    409: "Conflict: a request with this Idempotency-Key is still in progress, or the name "
    "already exists, or the job had already ended.",
    413: f"The request body is over {MAX_BODY} bytes.",
    429: "Busy: a local engine's queue is full. Retry after `Retry-After` seconds.",
    502: "The upstream provider or engine failed (nothing is charged for what was not served).",
    503: "No deployment serves this model right now, or a dependency is down.",
}

#: the statuses each kind of path can answer, besides its success
METERED = (400, 401, 402, 403, 404, 409, 413, 429, 502, 503)
SIGNED_JOB = (400, 404, 413)
ADMIN_WRITE = (400, 401, 404, 409, 413)


# -- schemas ------------------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """An object of these properties, all of them required unless ``required`` says which."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


def closed_obj(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    """``obj`` that allows no other property (a model with ``extra="forbid"``)."""
    return {**obj(properties, required), "additionalProperties": False}


def list_of(name: str) -> Schema:
    """A ``{"object": "list", "data": [...]}`` answer of the named schema."""
    return obj({"object": {"const": "list"}, "data": {"type": "array", "items": ref(name)}})


def json_text(schema: Schema) -> Schema:
    """A string holding JSON of this schema (a Server-Sent Event's ``data``)."""
    return {"type": "string", "contentMediaType": JSON_TYPE, "contentSchema": schema}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
USD: Schema = {
    "type": "string",
    "pattern": r"^-?\d+(\.\d{9})?$",
    "description": "US dollars as an exact decimal string, e.g. `4.999995950`.",
}
TIME: Schema = {"type": "string", "format": "date-time"}
#: how an amount is written in a request (the validators also take numbers and exponents)
USD_IN = r"^\d{1,10}(\.\d{1,9})?$"
#: a media type's entry for raw bytes (an image, audio)
BINARY: Schema = {"schema": {"type": "string", "format": "binary"}}


def usd_in(description: str, **facts: Any) -> Schema:
    """An amount field of a request: a decimal string of US dollars (``facts``: a default)."""
    return {"type": "string", "pattern": USD_IN, **facts, "description": description}


ERROR_SCHEMAS: dict[str, Schema] = {
    "Error": {
        **obj(
            {
                "error": obj(
                    {
                        "message": STR,
                        "type": STR,
                        "param": nullable(STR),
                        "code": nullable(STR),
                    }
                )
            }
        ),
        "description": "Every error outside the seed's image job API, as OpenAI words them.",
    },
}


# -- operations ---------------------------------------------------------------------------------


def json_response(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON_TYPE: {"schema": schema}}}


#: a rate limit's headers (docs/limits.md): on its 429, and on every answer of a limited key
RATE_LIMIT_HEADERS: dict[str, Schema] = {
    f"x-ratelimit-{what}-{kind}": {"description": f"{what} ({kind}; docs/limits.md)", "schema": STR}
    for kind in ("requests", "tokens")
    for what in ("limit", "remaining", "reset")
}


def error_responses(codes: tuple[int, ...], schema: Schema | None = None) -> dict[str, Schema]:
    body = schema or ref("Error")
    out: dict[str, Schema] = {}
    for code in codes:
        response = json_response(body, STATUS_TEXT[code])
        if code == 429:
            response["headers"] = {
                "Retry-After": {"description": "seconds to wait", "schema": INT},
                **RATE_LIMIT_HEADERS,
            }
        out[str(code)] = response
    return out


def answers(
    name: str,
    description: str,
    errors: tuple[int, ...],
    *,
    status: str = "200",
    error_schema: Schema | None = None,
) -> dict[str, Schema]:
    """The responses of an operation that answers the named JSON schema, or these errors."""
    return {
        status: json_response(ref(name), description),
        **error_responses(errors, error_schema),
    }


def json_body(name: str) -> Schema:
    return {"required": True, "content": {JSON_TYPE: {"schema": ref(name)}}}


IDEMPOTENCY: Schema = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Retrying with the same key and body answers as before and bills once.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}
BEARER: list[Schema] = [{"apiKey": []}]
ADMIN: list[Schema] = [{"adminKey": []}]
NO_AUTH: list[Schema] = []

SLASH_NOTE = "The same path without the trailing slash answers the same."


def operation(
    op_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Schema],
    *,
    security: list[Schema] = BEARER,
    body: str | None = None,
    parameters: list[Schema] | None = None,
    description: str | None = None,
) -> Schema:
    op: Schema = {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "security": security,
        "responses": responses,
    }
    if description:
        op["description"] = description
    if body:
        op["requestBody"] = json_body(body)
    if parameters:
        op["parameters"] = parameters
    return op


def path_param(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }


def query_param(
    name: str, schema: Schema, *, required: bool = False, description: str | None = None
) -> Schema:
    param: Schema = {"name": name, "in": "query", "required": required}
    if description:
        param["description"] = description
    param["schema"] = schema
    return param
