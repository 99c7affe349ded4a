"""Text-to-image on the wire: the seed's job API, OpenAI's images API, and signed image files.

The seed's answers always carry ``status``; errors are ``{"status": "error", "jobid": null,
"signature": null, "message": ...}`` on submit and ``{"status": "error", "image_url": null,
"message": ...}`` on poll, each with a 4xx/5xx status code: an ``APIError``'s message and
status in the seed's shape. OpenAI's endpoint and the file links answer ``APIError``'s own body.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from minitoolai.catalog import IMAGE_MODELS
from minitoolai.errors import APIError, InvalidRequest, ModelNotFound, NotFound, UpstreamError
from minitoolai.http.deps import idempotency, principal, services, slashed
from minitoolai.http.limited import admit
from minitoolai.http.responses import JSON, parse, read_json
from minitoolai.images.queue import JobStatus
from minitoolai.images.schemas import JobRef, JobRequest, OpenAIImageRequest
from minitoolai.images.service import ImageService

#: a wrong signature and an unknown id get the same answer
NOT_FOUND = "no job with this id and signature"


def _images(request: Request) -> ImageService:
    return services(request).images


def _base_url(request: Request) -> str:
    configured = services(request).settings.public_base_url
    return configured or str(request.base_url)


def _submit_error(exc: APIError) -> JSON:
    body = {"status": "error", "jobid": None, "signature": None, "message": exc.message}
    headers = dict(getattr(exc, "headers", None) or {})  # a rate limit's x-ratelimit-*
    if (retry_after := getattr(exc, "retry_after", None)) is not None:
        headers["Retry-After"] = str(retry_after)
    return JSON(body, status_code=exc.status_code, headers=headers)


def _poll_error(exc: APIError) -> JSON:
    body = {"status": "error", "image_url": None, "message": exc.message}
    return JSON(body, status_code=exc.status_code)


async def seed_submit(request: Request) -> Response:
    try:
        who = await principal(request)
        raw = await read_json(request)
        job_request = parse(JobRequest, raw)
        # images per minute, before the hold; a job is not a connection held open
        admission = await admit(request, who, images=1, requests=0, concurrent=False)
        ticket = await _images(request).create_job(who, job_request, idempotency(request, raw))
    except APIError as exc:
        return _submit_error(exc)
    body = {"status": "success", "jobid": ticket.jobid, "signature": ticket.signature}
    return JSON(body, headers=admission.headers)


async def seed_poll(request: Request) -> Response:
    try:
        ref = parse(JobRef, await read_json(request))
    except APIError as exc:
        return _poll_error(exc)
    answer = await _images(request).poll(int(ref.jobid), ref.signature, _base_url(request))
    if answer is None:
        return _poll_error(NotFound(NOT_FOUND))
    return JSON(answer)


async def seed_cancel(request: Request) -> Response:
    images = _images(request)
    try:
        ref = parse(JobRef, await read_json(request))
        job = await images.find(int(ref.jobid), ref.signature)
    except APIError as exc:
        return _poll_error(exc)
    if job is None:
        return _poll_error(NotFound(NOT_FOUND))
    if await images.cancel(job):
        return JSON(
            {"status": "cancelled", "image_url": None, "message": "cancelled; nothing charged"}
        )
    body = await images.job_status(job.id, _base_url(request))
    body["message"] = f"the job had already ended ({body['message']}); nothing changed"
    return JSON(body, status_code=409)


async def openai_generate(request: Request) -> Response:
    who = await principal(request)
    raw = await read_json(request)
    body = parse(OpenAIImageRequest, raw)
    images = _images(request)
    key = idempotency(request, raw)
    openai_names = services(request).config.openai_image_models
    if body.model not in IMAGE_MODELS and body.model not in openai_names:
        raise ModelNotFound(
            f"The model '{body.model}' does not exist; use one of: "
            f"{', '.join([*IMAGE_MODELS, *openai_names])}",
            param="model",
        )
    job_request = body.job_request(openai_names)
    admission = await admit(request, who, images=body.n, requests=0, concurrent=False)
    tickets = [
        await images.create_job(who, job_request, key.part(i) if key else None)
        for i in range(body.n)
    ]
    wait_s = services(request).settings.job_wait_s
    data: list[dict[str, Any]] = []
    for ticket in tickets:
        job = await images.wait(ticket.jobid, wait_s)
        if job.status != JobStatus.SUCCEEDED:
            if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
                await images.cancel(job)
            raise UpstreamError(f"image job {job.id} did not finish: {job.message or job.status}")
        assert job.result_key is not None
        if body.response_format == "b64_json":
            image = await images.image_bytes(job.result_key)
            if image is None:
                raise InvalidRequest("the image is no longer stored")
            # no revised_prompt: the prompt is used as written (OpenAI omits it then, too)
            data.append({"b64_json": base64.b64encode(image).decode()})
        else:
            data.append({"url": images.image_url(job.result_key, _base_url(request))})
    return JSON({"created": int(time.time()), "data": data}, headers=admission.headers)


async def image_file(request: Request) -> Response:
    query = request.query_params
    found = await _images(request).image_file(
        request.path_params["name"], query.get("exp", ""), query.get("sig", "")
    )
    if found.path is not None:
        return FileResponse(
            found.path,
            media_type=found.media_type,
            headers={"Cache-Control": "private, max-age=3600"},
        )
    return Response(found.data, media_type=found.media_type)


routes = [
    *slashed("/api/texttoimage/", seed_submit, ["POST"]),
    *slashed("/api/texttoimage/jobs/", seed_poll, ["POST"]),
    *slashed("/api/texttoimage/jobs/cancel/", seed_cancel, ["POST"]),
    Route("/v1/images/generations", openai_generate, methods=["POST"]),
    Route("/files/images/{name}", image_file, methods=["GET"]),
]
