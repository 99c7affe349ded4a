"""The seed's text-to-image job API, end to end on a running server."""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import openai
import pytest
import requests
from PIL import Image

from tests.support.gateway import Gateway

PRICE = 1_500_000  # US$0.0015 in nano-dollars


def seed_image_snippet(url: str, api_key: str) -> str:
    """The seed's Python image snippet, host and key changed."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    data = {
        "model": "realvision",
        "prompt": "Ultra realistic portrait of a 20 year old woman, wearing an elegant black gown, "
        "joyful expression, deep shadows, cinematic composition, moody lighting",
        "negativePrompt": "unrealistic eyes, malformed features, ugly drawn",
        "scheduler": "DPM++ SDE",
        "steps": 4,
        "cfgScale": 2.0,
        "width": 1152,
        "height": 768,
    }
    response = requests.post(url, json=data, headers=headers, timeout=30)
    return response.text


def poll(
    gw: Gateway, jobid: Any, signature: str, path: str = "/api/texttoimage/jobs/"
) -> requests.Response:
    # the seed's curl: no API key, the id as a string
    return requests.post(
        gw.url + path,
        json={"jobid": str(jobid), "signature": signature},
        headers={"Content-Type": "application/json"},
        timeout=10,
    )


def wait_done(gw: Gateway, jobid: int, signature: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = poll(gw, jobid, signature).json()
        if body["status"] not in ("pending", "processing"):
            return body
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_seed_snippet_to_image(image_gateway: Gateway) -> None:
    gw = image_gateway
    before = gw.balance_nano()
    created = requests.models.complexjson.loads(
        seed_image_snippet(gw.url + "/api/texttoimage/", gw.api_key)
    )
    assert created["status"] == "success" and isinstance(created["jobid"], int)
    assert set(created) == {"status", "jobid", "signature"}
    done = wait_done(gw, created["jobid"], created["signature"])
    assert done["status"] == "success" and done["message"] == "success"
    image = Image.open(io.BytesIO(requests.get(done["image_url"], timeout=10).content))
    assert image.format == "PNG" and image.size == (1152, 768)
    assert before - gw.balance_nano() == PRICE and gw.idle_held_nano() == 0
    # the poll works with the id as a number too, and without the trailing slash
    again = requests.post(
        gw.url + "/api/texttoimage/jobs",
        timeout=10,
        json={"jobid": created["jobid"], "signature": created["signature"]},
    )
    assert again.json()["status"] == "success" and isinstance(again.json()["seed"], int)
    usage = requests.get(gw.url + "/api/usage/", headers=gw.headers(), timeout=10).json()["data"]
    assert (
        usage[0]["kind"] == "image" and usage[0]["units"] == 1 and usage[0]["cost"] == "0.001500000"
    )


def test_image_url_is_signed_and_expires(image_gateway: Gateway) -> None:
    gw = image_gateway
    created = requests.post(
        gw.url + "/api/texttoimage/",
        headers=gw.headers(),
        timeout=10,
        json={
            "model": "dreamshaper",
            "prompt": "a lighthouse",
            "width": 256,
            "height": 256,
            "format": "webp",
        },
    ).json()
    url = wait_done(gw, created["jobid"], created["signature"])["image_url"]
    assert requests.get(url, timeout=10).headers["content-type"] == "image/webp"
    base, query = url.split("?")
    assert requests.get(base, timeout=10).status_code == 403
    tampered = url.replace("sig=", "sig=x")
    assert requests.get(tampered, timeout=10).status_code == 403
    expired = base + "?exp=1000&" + query.split("&")[1]
    assert requests.get(expired, timeout=10).status_code == 403
    other = base.rsplit("/", 1)[0] + "/" + "0" * 32 + ".png?" + query
    assert requests.get(other, timeout=10).status_code == 403


@pytest.mark.parametrize(
    "change",
    [
        {"model": "midjourney"},
        {"scheduler": "DDIM"},
        {"steps": 9},
        {"steps": 0},
        {"cfgScale": 7.5},
        {"cfgScale": 0.5},
        {"width": 255},
        {"height": 1345},
        {"prompt": ""},
        {"unknown": 1},
    ],
)
def test_invalid_jobs_answer_the_seed_error_and_cost_nothing(
    image_gateway: Gateway, change: dict[str, Any]
) -> None:
    gw = image_gateway
    before = gw.balance_nano()
    body = {"model": "realvision", "prompt": "a cat", **change}
    response = requests.post(
        gw.url + "/api/texttoimage/", headers=gw.headers(), json=body, timeout=10
    )
    assert response.status_code == 400
    data = response.json()
    assert data["status"] == "error" and data["jobid"] is None and data["signature"] is None
    assert data["message"]
    assert gw.balance_nano() == before


def test_all_fifteen_models_and_eighteen_schedulers_are_accepted(image_gateway: Gateway) -> None:
    from minitoolai.catalog import IMAGE_MODELS, IMAGE_SCHEDULERS

    gw = image_gateway
    assert len(IMAGE_MODELS) == 15 and len(IMAGE_SCHEDULERS) == 18
    for i, scheduler in enumerate(IMAGE_SCHEDULERS):
        body = {
            "model": IMAGE_MODELS[i % 15],
            "prompt": "x",
            "scheduler": scheduler,
            "width": 256,
            "height": 256,
            "steps": 1,
        }
        created = requests.post(
            gw.url + "/api/texttoimage/", headers=gw.headers(), json=body, timeout=10
        )
        assert created.json()["status"] == "success", scheduler


def test_key_and_credit_rules(image_gateway: Gateway) -> None:
    gw = image_gateway
    body = {"model": "realvision", "prompt": "a cat"}
    unauth = requests.post(gw.url + "/api/texttoimage/", json=body, timeout=10)
    assert unauth.status_code == 401 and unauth.json()["status"] == "error"
    poor = gw.admin("POST", "/admin/accounts", json={"name": "poor", "credit": "0.001"}).json()
    refused = requests.post(
        gw.url + "/api/texttoimage/",
        json=body,
        timeout=10,
        headers={"Authorization": f"Bearer {poor['api_key']}"},
    )
    assert refused.status_code == 402 and "Insufficient credit" in refused.json()["message"]


def test_forged_and_swapped_signatures_learn_nothing(image_gateway: Gateway) -> None:
    gw = image_gateway
    a = requests.post(
        gw.url + "/api/texttoimage/",
        headers=gw.headers(),
        timeout=10,
        json={"model": "realvision", "prompt": "a", "width": 256, "height": 256},
    ).json()
    b = requests.post(
        gw.url + "/api/texttoimage/",
        headers=gw.headers(),
        timeout=10,
        json={"model": "realvision", "prompt": "b", "width": 256, "height": 256},
    ).json()
    answers = [
        poll(gw, a["jobid"], b["signature"]),  # swapped
        poll(gw, a["jobid"], a["signature"][:-1] + ("A" if a["signature"][-1] != "A" else "B")),
        poll(gw, 123456789012, a["signature"]),  # unknown id
        poll(gw, a["jobid"], ""),
    ]
    bodies = [r.json() for r in answers[:3]]
    assert all(r.status_code == 404 for r in answers[:3])
    assert bodies[0] == bodies[1] == bodies[2]  # an existing id and a missing one look the same
    assert answers[3].status_code == 400
    for bad in (
        {"jobid": "12ab", "signature": "x"},
        {"signature": "x"},
        {"jobid": -5, "signature": "x"},
    ):
        r = requests.post(gw.url + "/api/texttoimage/jobs/", json=bad, timeout=10)
        assert r.status_code == 400 and r.json()["status"] == "error"


def test_openai_images_generations(image_gateway: Gateway) -> None:
    gw = image_gateway
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key)
    before = gw.balance_nano()
    result = client.images.generate(model="juggernaut", prompt="a red bicycle", n=2, size="512x256")
    assert len(result.data) == 2
    for item in result.data:
        assert item.url is not None
        assert Image.open(io.BytesIO(requests.get(item.url, timeout=10).content)).size == (512, 256)
    b64 = client.images.generate(
        model="juggernaut", prompt="x", size="256x256", response_format="b64_json"
    )
    assert b64.data[0].b64_json is not None
    assert Image.open(io.BytesIO(base64.b64decode(b64.data[0].b64_json))).size == (256, 256)
    assert before - gw.balance_nano() == 3 * PRICE
    with pytest.raises(openai.NotFoundError) as caught:  # OpenAI's answer to an unknown model
        client.images.generate(model="dall-e-4", prompt="x")
    assert caught.value.code == "model_not_found"
    assert before - gw.balance_nano() == 3 * PRICE


def test_idempotent_submit_returns_the_same_job(image_gateway: Gateway) -> None:
    gw = image_gateway
    headers = {**gw.headers(), "Idempotency-Key": "img-1"}
    body = {"model": "realvision", "prompt": "a", "width": 256, "height": 256}
    first = requests.post(
        gw.url + "/api/texttoimage/", headers=headers, json=body, timeout=10
    ).json()
    second = requests.post(
        gw.url + "/api/texttoimage/", headers=headers, json=body, timeout=10
    ).json()
    assert first == second
    wait_done(gw, first["jobid"], first["signature"])
    assert gw.balance_nano() == 5_000_000_000 - PRICE
