"""An Idempotency-Key is scoped to its endpoint and bound to its body (Stripe's rules).

Regressions of an adversarial test: a chat key reused on an image job made the image free and
its cancellation refunded the chat; a key reused across kinds was a 500; a different body under
the same key got the first answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from minitoolai.chat.tokens import count_messages
from tests.chat.conftest import database_url
from tests.conftest import BACKENDS
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

MESSAGES = [{"role": "user", "content": "Count for me, please."}]
CHAT_COST = count_messages(MESSAGES) * 150 + 5 * 600  # gpt-4o-mini, 5 completion tokens
IMAGE_PRICE = 1_500_000  # US$0.0015 per image


def chat(gw: Gateway, key: str, **body: object) -> requests.Response:
    return requests.post(
        gw.url + "/v1/chat/completions",
        headers={**gw.headers(), "Idempotency-Key": key},
        json={"model": "gpt-4o-mini", "messages": MESSAGES, **body},
        timeout=10,
    )


def image(gw: Gateway, key: str, prompt: str = "a lighthouse") -> requests.Response:
    return requests.post(
        gw.url + "/api/texttoimage/",
        headers={**gw.headers(), "Idempotency-Key": key},
        json={"model": "realvision", "prompt": prompt},
        timeout=10,
    )


@pytest.fixture(params=BACKENDS)
def gw(request: pytest.FixtureRequest, tmp_path: Path) -> Gateway:
    upstream = FakeUpstream()
    deps: list[dict[str, object]] = [{"model": "gpt-4o-mini", "provider": "up"}]
    with running_gateway(
        tmp_path, database_url(request.param, tmp_path), {"up": upstream}, deps
    ) as gateway:
        yield gateway  # type: ignore[misc]


def test_a_rejected_chats_key_on_an_image_job_neither_frees_the_image_nor_refunds_the_chat(
    gw: Gateway,
) -> None:
    upstream = gw.upstreams["up"]
    before = gw.balance_nano()
    upstream.status = 400  # the upstream rejects the chat: released, nothing charged
    assert chat(gw, "k1").status_code == 400
    upstream.status = 200
    submitted = image(gw, "k1")
    assert submitted.status_code == 200, submitted.text
    assert gw.held_nano() == IMAGE_PRICE  # the image is held like any other
    job = submitted.json()
    cancelled = requests.post(
        gw.url + "/api/texttoimage/jobs/cancel/",
        json={"jobid": str(job["jobid"]), "signature": job["signature"]},
        timeout=10,
    )
    assert cancelled.status_code == 200
    assert gw.balance_nano() == before and gw.idle_held_nano() == 0


def test_a_settled_chats_key_on_an_image_is_a_new_request_and_its_cancel_refunds_only_it(
    gw: Gateway,
) -> None:
    before = gw.balance_nano()
    assert chat(gw, "k2").status_code == 200
    assert before - gw.balance_nano() == CHAT_COST
    submitted = image(gw, "k2")
    assert submitted.status_code == 200, submitted.text
    job = submitted.json()
    requests.post(
        gw.url + "/api/texttoimage/jobs/cancel/",
        json={"jobid": str(job["jobid"]), "signature": job["signature"]},
        timeout=10,
    )
    assert before - gw.balance_nano() == CHAT_COST and gw.idle_held_nano() == 0


def test_an_image_key_reused_on_chat_is_a_new_chat(gw: Gateway) -> None:
    assert image(gw, "k3").status_code == 200
    held = gw.held_nano()
    before = gw.balance_nano()
    answer = chat(gw, "k3")
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "w0 w1 w2 w3 w4 "
    assert before - gw.balance_nano() == CHAT_COST and gw.held_nano() == held


def test_the_same_key_with_another_body_is_a_409_and_changes_nothing(gw: Gateway) -> None:
    upstream = gw.upstreams["up"]
    first = chat(gw, "k4")
    assert first.status_code == 200
    before, calls = gw.balance_nano(), upstream.calls
    other = chat(gw, "k4", max_completion_tokens=3)
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert gw.balance_nano() == before and upstream.calls == calls
    # the same body still replays the first answer, free
    again = chat(gw, "k4")
    assert again.json() == first.json() and gw.balance_nano() == before
    # and so for images
    assert image(gw, "k5").status_code == 200
    assert image(gw, "k5", prompt="a different lighthouse").status_code == 409


def test_a_request_that_failed_can_be_retried_with_its_key(gw: Gateway) -> None:
    upstream = gw.upstreams["up"]
    before = gw.balance_nano()
    upstream.status = 500
    assert chat(gw, "k6").status_code == 502
    upstream.status = 200
    retried = chat(gw, "k6")
    assert retried.status_code == 200
    assert chat(gw, "k6").json() == retried.json()  # and from now on it replays
    assert before - gw.balance_nano() == CHAT_COST and gw.idle_held_nano() == 0


def test_an_unprintable_key_is_a_400(gw: Gateway) -> None:
    response = chat(gw, "k\x7f")
    assert response.status_code == 400 and gw.idle_held_nano() == 0
