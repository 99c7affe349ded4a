"""Images: the seed's text-to-image job API (submit, poll, cancel), OpenAI's
``/v1/images/generations`` on the same jobs, and the signed image files."""

from __future__ import annotations

from minitoolai.catalog import (
    IMAGE_MEDIA_TYPES,
    IMAGE_MODELS,
    IMAGE_SCHEDULERS,
    IMAGE_SIZE_RANGE,
)
from minitoolai.http.openapi.common import (
    BINARY,
    IDEMPOTENCY,
    INT,
    METERED,
    NO_AUTH,
    SIGNED_JOB,
    SLASH_NOTE,
    STR,
    Schema,
    answers,
    error_responses,
    nullable,
    obj,
    operation,
    path_param,
    query_param,
    ref,
)
from minitoolai.settings import DEFAULT_OPENAI_IMAGE_MODELS

#: the seed's job API answers its own shapes, errors included
SEED_JOB_SCHEMAS: dict[str, Schema] = {
    "SeedJobSubmitted": obj(
        {"status": {"const": "success"}, "jobid": INT, "signature": STR},
    ),
    "SeedJobSubmitError": obj(
        {
            "status": {"const": "error"},
            "jobid": {"type": "null"},
            "signature": {"type": "null"},
            "message": STR,
        }
    ),
    "SeedJobStatus": {
        **obj(
            {
                "status": {"enum": ["pending", "processing", "success", "error", "cancelled"]},
                "image_url": nullable({"type": "string", "format": "uri"}),
                "message": STR,
                "queue_position": INT,
                "progress": {"type": "number", "minimum": 0, "maximum": 1},
                "seed": nullable(INT),
            },
            ["status", "image_url", "message"],
        ),
        "description": "A job's state: `image_url` is set once `status` is `success`. Errors of "
        "the poll and cancel calls have this shape too, with `status` `error`.",
    },
}

OPENAI_SCHEMAS: dict[str, Schema] = {
    "ImagesResponse": obj(
        {
            "created": INT,
            "data": {
                "type": "array",
                "items": obj(
                    {
                        "url": {"type": "string", "format": "uri"},
                        "b64_json": STR,
                    },
                    [],
                ),
            },
        }
    ),
}

#: what the image requests' validators check in code, from the catalog's constants
VALIDATOR_FACTS: dict[tuple[str, str], Schema] = {
    ("JobRequest", "model"): {"type": "string", "enum": list(IMAGE_MODELS)},
    ("JobRequest", "scheduler"): nullable({"type": "string", "enum": list(IMAGE_SCHEDULERS)}),
    ("OpenAIImageRequest", "model"): {
        "type": "string",
        "maxLength": 200,
        "default": "realvision",
        "examples": [*IMAGE_MODELS, *DEFAULT_OPENAI_IMAGE_MODELS],
        "description": "One of the image models, or an OpenAI name that the operator's "
        "`[openai_image_models]` maps to one (by default "
        f"{', '.join(DEFAULT_OPENAI_IMAGE_MODELS)}); any other name is a 404 `model_not_found`.",
    },
    ("OpenAIImageRequest", "size"): {
        "type": "string",
        "pattern": r"^(\d{3,4}x\d{3,4}|auto)$",
        "default": "1024x1024",
        "description": f"WIDTHxHEIGHT, each {IMAGE_SIZE_RANGE[0]} to {IMAGE_SIZE_RANGE[1]}, "
        "or `auto` (1024x1024).",
    },
    ("JobRef", "jobid"): {
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
            {"type": "string", "pattern": r"^\s*\d{1,20}\s*$"},
        ],
        "description": "The job id from the submit answer, as a number or a string of digits.",
    },
}


def paths() -> dict[str, Schema]:
    job_status = ref("SeedJobStatus")
    return {
        "/api/texttoimage/": {
            "post": operation(
                "seedSubmitImageJob",
                "Submit a text-to-image job (the seed's job API)",
                "images",
                answers(
                    "SeedJobSubmitted",
                    "the job id and its signature",
                    METERED,
                    error_schema=ref("SeedJobSubmitError"),
                ),
                body="JobRequest",
                parameters=[IDEMPOTENCY],
                description="Errors answer `{status: error, jobid: null, signature: null, "
                "message}` with the status code. " + SLASH_NOTE,
            )
        },
        "/api/texttoimage/jobs/": {
            "post": operation(
                "seedPollImageJob",
                "A job's state and, once done, its image URL (no key: the signature is "
                "the credential)",
                "images",
                answers("SeedJobStatus", "the job's state", SIGNED_JOB, error_schema=job_status),
                security=NO_AUTH,
                body="JobRef",
                description=SLASH_NOTE,
            )
        },
        "/api/texttoimage/jobs/cancel/": {
            "post": operation(
                "seedCancelImageJob",
                "Cancel a queued or running job; nothing is charged",
                "images",
                answers("SeedJobStatus", "cancelled", (*SIGNED_JOB, 409), error_schema=job_status),
                security=NO_AUTH,
                body="JobRef",
                description="409 with the job's state when it had already ended. " + SLASH_NOTE,
            )
        },
        "/v1/images/generations": {
            "post": operation(
                "createImage",
                "Generate images (OpenAI's API, on the same jobs); waits for them",
                "images",
                answers("ImagesResponse", "the images", METERED),
                body="OpenAIImageRequest",
                parameters=[IDEMPOTENCY],
            )
        },
        "/files/images/{name}": {
            "get": operation(
                "getImageFile",
                "A generated image, by the signed URL a job answered",
                "images",
                {
                    "200": {
                        "description": "the image",
                        "content": {media: BINARY for media in IMAGE_MEDIA_TYPES.values()},
                    },
                    **error_responses((403, 404)),
                },
                security=NO_AUTH,
                parameters=[
                    path_param("name", "the file name in the URL"),
                    query_param("exp", STR, required=True),
                    query_param("sig", STR, required=True),
                ],
            )
        },
    }
