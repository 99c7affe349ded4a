"""The whole document, assembled from its surfaces, and the handler serving it."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

import orjson
from starlette.requests import Request
from starlette.responses import Response

from minitoolai.http.openapi import (
    account,
    admin,
    chat,
    embeddings,
    images,
    models,
    operations,
    responses,
    speech,
)
from minitoolai.http.openapi.common import ERROR_SCHEMAS, JSON_TYPE, Schema
from minitoolai.http.openapi.request_bodies import request_schemas

# Both merges keep the order the document has always listed its paths and schemas in, so a
# change here that moves nothing serves the same bytes.


def paths() -> dict[str, Schema]:
    return {
        **chat.paths(),
        **responses.paths(),
        **models.paths(),
        **images.paths(),
        **embeddings.paths(),
        **speech.paths(),
        **account.paths(),
        **operations.paths(),
        **admin.paths(),
        **account.redeem_paths(),
        **admin.code_and_audit_paths(),
    }


def component_schemas() -> dict[str, Schema]:
    return {
        **request_schemas(),
        **ERROR_SCHEMAS,
        **images.SEED_JOB_SCHEMAS,
        **chat.SCHEMAS,
        **responses.SCHEMAS,
        **embeddings.SCHEMAS,
        **models.SCHEMAS,
        **images.OPENAI_SCHEMAS,
        **speech.SCHEMAS,
        **account.SCHEMAS,
        **operations.SCHEMAS,
        **admin.SCHEMAS,
        **account.REDEEM_SCHEMAS,
        **admin.CODE_AND_AUDIT_SCHEMAS,
    }


def _version() -> str:
    try:
        return version("minitoolai")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0.0.0"


def build_document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "MiniToolAI",
            "version": _version(),
            "description": "Chat completions, text-to-image jobs and speech behind API keys and "
            'a prepaid credit ledger, in two wire formats: the original MiniToolAI ("seed") '
            "paths under `/api/` and OpenAI's under `/v1/`. Paths under `/api/` answer with "
            'and without the trailing slash. Errors are `{"error": {"message", "type", '
            '"param", "code"}}`, except the seed\'s image job API, which keeps its own '
            '`{"status": "error", ...}` shape.',
        },
        "tags": [
            {"name": name}
            for name in (
                "chat",
                "responses",
                "embeddings",
                "images",
                "speech",
                "account",
                "admin",
                "operations",
            )
        ],
        "paths": paths(),
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An account's API key (`mtai-...`).",
                },
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The operator's admin key (`MINITOOLAI_ADMIN_KEY`).",
                },
            },
        },
    }


@functools.cache
def document_bytes() -> bytes:
    return orjson.dumps(build_document())


async def openapi_json(_request: Request) -> Response:
    return Response(document_bytes(), media_type=JSON_TYPE)
