"""What the operator's tooling reads: health, Prometheus metrics, and this document."""

from __future__ import annotations

from minitoolai.http.openapi.common import (
    ADMIN,
    NO_AUTH,
    STR,
    Schema,
    error_responses,
    json_response,
    obj,
    operation,
    ref,
)

SCHEMAS: dict[str, Schema] = {
    "Health": obj({"status": {"enum": ["ok", "error"]}, "database": STR}),
}


def paths() -> dict[str, Schema]:
    return {
        "/healthz": {
            "get": operation(
                "health",
                "Whether the database answers",
                "operations",
                {
                    "200": json_response(ref("Health"), "healthy"),
                    "503": json_response(ref("Health"), "the database is unreachable"),
                },
                security=NO_AUTH,
            )
        },
        "/metrics": {
            "get": operation(
                "metrics",
                "Prometheus metrics (the admin key, or MINITOOLAI_METRICS_TOKEN)",
                "operations",
                {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": STR}},
                    },
                    **error_responses((401,)),
                },
                security=ADMIN,
            )
        },
        "/openapi.json": {
            "get": operation(
                "openapi",
                "This document",
                "operations",
                {"200": json_response({"type": "object"}, "OpenAPI 3.1")},
                security=NO_AUTH,
            )
        },
    }
