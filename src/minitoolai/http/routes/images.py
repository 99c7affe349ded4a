"""Text-to-image on the wire: the seed's job API, OpenAI's images API, and signed image files.

The seed's answers always carry ``status``; errors are ``{"status": "error", "jobid": null,
"signature": null, "message": ...}`` on submit and ``{"status": "error", "image_url": null,
"message": ...}`` on poll, each with a 4xx/5xx status code.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from minitoolai.errors import APIError, InvalidRequest, UpstreamError
from minitoolai.http.deps import idempotency
from minitoolai.http.responses import JSON, parse, read_json
from minitoolai.http.routes.account import services, slashed
from minitoolai.images.queue import Job, JobStatus
from minitoolai.images.schemas import JobRef, JobRequest, OpenAIImageRequest
from minitoolai.images.service import ImageService
from minitoolai.images.storage import CONTENT_TYPES, LocalStorage

NOT_FOUND = "no job with this id and signature"


def _images(request: Request) -> ImageService:
    svc = services(request)
    assert svc.images is not None
    return svc.images


def _base_url(request: Request) -> str:
    configured = services(request).settings.public_base_url
    return configured or str(request.base_url)


async def submit(request: Request) -> Response:
    try:
        svc = services(request)
        principal = await svc.auth.authenticate(request.headers.get("authorization"))
        raw = await read_json(request)
        job_request = parse(JobRequest, raw)
        done = await _images(request).submit(principal, job_request, idempotency(request, raw))
    except APIError as exc:
        body = {"status": "error", "jobid": None, "signature": None, "message": exc.message}
        return JSON(body, status_code=exc.status_code)
    return JSON({"status": "success", "jobid": done.jobid, "signature": done.signature})


async def _job_from(request: Request) -> Job:
    ref = parse(JobRef, await read_json(request))
    job = await _images(request).find(int(ref.jobid), ref.signature)
    if job is None:
        raise _Missing
    return job


class _Missing(Exception):
    pass


def _poll_error(message: str, status: int) -> JSON:
    return JSON({"status": "error", "image_url": None, "message": message}, status_code=status)


async def _signed_job(request: Request) -> Job | Response:
    """The job the body names and signs, or the error answer (same for wrong and unknown)."""
    try:
        return await _job_from(request)
    except _Missing:
        return _poll_error(NOT_FOUND, 404)
    except APIError as exc:
        return _poll_error(exc.message, exc.status_code)


async def poll(request: Request) -> Response:
    try:
        ref = parse(JobRef, await read_json(request))
    except APIError as exc:
        return _poll_error(exc.message, exc.status_code)
    answer = await _images(request).poll(int(ref.jobid), ref.signature, _base_url(request))
    if answer is None:
        return _poll_error(NOT_FOUND, 404)
    return JSON(answer)


async def cancel(request: Request) -> Response:
    job = await _signed_job(request)
    if isinstance(job, Response):
        return job
    images = _images(request)
    if await images.cancel(job):
        return JSON(
            {"status": "cancelled", "image_url": None, "message": "cancelled; nothing charged"}
        )
    current = await images.queue.get(job.id)
    assert current is not None
    body = await images.report(current, _base_url(request))
    body["message"] = f"the job had already ended ({body['message']}); nothing changed"
    return JSON(body, status_code=409)


async def openai_generate(request: Request) -> Response:
    svc = services(request)
    principal = await svc.auth.authenticate(request.headers.get("authorization"))
    raw = await read_json(request)
    body = parse(OpenAIImageRequest, raw)
    images = _images(request)
    key = idempotency(request, raw)
    submitted = [
        await images.submit(principal, body.job_request(), key.part(i) if key else None)
        for i in range(body.n)
    ]
    data: list[dict[str, Any]] = []
    for item in submitted:
        job = await images.wait(item.jobid, svc.settings.job_wait_s)
        if job.status != JobStatus.SUCCEEDED:
            if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
                await images.cancel(job)
            raise UpstreamError(f"image job {job.id} did not finish: {job.message or job.status}")
        assert job.result_key is not None
        if body.response_format == "b64_json":
            raw = await images.storage.get(job.result_key)
            if raw is None:
                raise InvalidRequest("the image is no longer stored")
            data.append({"b64_json": base64.b64encode(raw).decode(), "revised_prompt": None})
        else:
            data.append(
                {
                    "url": images.image_url(job.result_key, _base_url(request)),
                    "revised_prompt": None,
                }
            )
    return JSON({"created": int(time.time()), "data": data})


async def image_file(request: Request) -> Response:
    name = request.path_params["name"]
    images = _images(request)
    query = request.query_params
    if not images.signer.url_ok(name, query.get("exp", ""), query.get("sig", "")):
        return JSON(
            {
                "error": {
                    "message": "this image link is invalid or has expired",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
            status_code=403,
        )
    storage = images.storage
    if isinstance(storage, LocalStorage):
        path = storage.path(name)
        if path is None:
            return JSON(
                {
                    "error": {
                        "message": "no such image",
                        "type": "not_found_error",
                        "param": None,
                        "code": None,
                    }
                },
                status_code=404,
            )
        media = CONTENT_TYPES[name.rsplit(".", 1)[1]]
        return FileResponse(
            path, media_type=media, headers={"Cache-Control": "private, max-age=3600"}
        )
    raw = await storage.get(name)
    if raw is None:
        return Response(status_code=404)
    return Response(raw, media_type=CONTENT_TYPES[name.rsplit(".", 1)[1]])


routes = [
    *slashed("/api/texttoimage/", submit, ["POST"]),
    *slashed("/api/texttoimage/jobs/", poll, ["POST"]),
    *slashed("/api/texttoimage/jobs/cancel/", cancel, ["POST"]),
    Route("/v1/images/generations", openai_generate, methods=["POST"]),
    Route("/files/images/{name}", image_file, methods=["GET"]),
]
