"""The playground's endpoints and the ``/docs`` page over plain HTTP, against a running server
(SQLite; the fake upstream for chat and speech, the test-pattern image engine for images).

Every run's cost, as the page is told it, is compared with the charge ``/api/usage/`` lists
(read with a key the admin API made for the person's account) and with the balance's fall.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, idle_held, running_gateway
from tests.web.conftest import signed_up

#: the fake upstream's answer: 12 words, 0.15 s apart, so a stream is watchable
WORDS = 12
DELAY_S = 0.15


@contextmanager
def playground_gateway(tmp: Path, database_url: str | None = None) -> Iterator[Gateway]:
    """A gateway serving chat (with vision) and speech through the fake upstream, and images
    on the test-pattern engine with one worker slow enough to show progress (SQLite unless
    ``database_url`` names another database)."""
    fake = FakeUpstream(chunks=WORDS, delay_s=DELAY_S)
    with running_gateway(
        tmp,
        database_url or f"sqlite+aiosqlite:///{tmp / 'playground.db'}",
        {"openai": fake},
        [
            {"model": "gpt-4o-mini", "provider": "openai"},
            {"model": "tts-1", "provider": "openai", "upstream_model": "tts-1"},
        ],
        image_workers=1,
        test_pattern_step_s=0.25,
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with playground_gateway(tmp_path_factory.mktemp("playground")) as gateway:
        yield gateway


class Person:
    """A signed-in browser with credit, its CSRF token, and a key (made by the admin API) to
    read its usage with."""

    def __init__(self, gw: Gateway, credit: str = "5") -> None:
        self.gw = gw
        self.email = f"play-{uuid.uuid4().hex[:8]}@example.com"
        self.browser = signed_up(gw.url, self.email)
        if credit != "0":
            topped = gw.admin(
                "POST", f"/admin/accounts/{self.email}/credit", json={"amount": credit}
            )
            assert topped.status_code == 200, topped.text
        made = gw.admin("POST", f"/admin/accounts/{self.email}/keys", json={"name": "reader"})
        assert made.status_code == 201, made.text
        self.key = made.json()["api_key"]
        page = self.browser.get(gw.url + "/playground", timeout=10)
        assert page.status_code == 200, page.text
        found = re.search(r'data-csrf="([^"]+)"', page.text)
        assert found, "the playground page carries no CSRF token"
        self.csrf = found.group(1)

    def post(self, path: str, body: Any, **kw: Any) -> requests.Response:
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return self.browser.post(self.gw.url + path, json=body, headers=headers, timeout=30, **kw)

    def usage(self) -> list[dict[str, Any]]:
        answer = requests.get(
            self.gw.url + "/api/usage/",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=10,
        )
        data: list[dict[str, Any]] = answer.json()["data"]
        return data

    def account(self) -> dict[str, Any]:
        data: dict[str, Any] = self.gw.admin("GET", f"/admin/accounts/{self.email}").json()
        return data

    def balance(self) -> Decimal:
        return Decimal(self.account()["balance"])


def sse_data(response: requests.Response) -> Iterator[tuple[float, str]]:
    """Each event's data, with the time it arrived."""
    for line in response.iter_lines(chunk_size=None):  # as it arrives
        if line.startswith(b"data: "):
            yield time.monotonic(), line[6:].decode()


def test_a_chat_streams_and_its_cost_is_the_charge(gw: Gateway) -> None:
    me = Person(gw)
    before = me.balance()
    answer = me.post(
        "/playground/api/chat",
        {"model": "gpt-4o-mini", "system": "Be brief.", "message": "Hello"},
        stream=True,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/event-stream")
    events = list(sse_data(answer))
    assert events[-1][1] == "[DONE]"
    chunks = [orjson.loads(data) for _, data in events[:-1]]
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )
    assert text == "".join(f"w{i} " for i in range(WORDS))
    texts = [at for (at, data), c in zip(events, chunks, strict=False) if c.get("choices")]
    assert texts[-1] - texts[0] > (WORDS - 2) * DELAY_S * 0.8  # streamed, not sent at once
    cost = chunks[-1]
    assert cost["object"] == "playground.cost"
    row = me.usage()[0]
    assert row["request_id"] == answer.headers["x-request-id"]
    assert (row["kind"], row["model"], row["status"]) == ("chat", "gpt-4o-mini", "settled")
    assert cost["cost"] == row["cost"] and Decimal(row["cost"]) > 0
    assert cost["prompt_tokens"] == row["prompt_tokens"]
    assert cost["completion_tokens"] == row["completion_tokens"] == WORDS
    usage_chunk = chunks[-2]["usage"]
    assert usage_chunk["completion_tokens"] == row["completion_tokens"]
    assert before - me.balance() == Decimal(row["cost"])
    assert idle_held(lambda: Decimal(me.account()["held"])) == 0  # its lease given back
    # the fake upstream got the system prompt and the message
    sent = gw.upstreams["openai"].requests[-1]["messages"]
    assert sent == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
    ]
    # and the person's usage export lists it
    assert row["request_id"] in me.browser.get(gw.url + "/usage.csv", timeout=10).text


PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_a_chat_with_an_image_sends_it_as_an_image_part(gw: Gateway) -> None:
    me = Person(gw)
    url = "data:image/png;base64," + base64.b64encode(PNG_1PX).decode()
    answer = me.post(
        "/playground/api/chat",
        {"model": "gpt-4o-mini", "message": "What is this?", "image": url},
        stream=True,
    )
    assert answer.status_code == 200, answer.text
    events = [data for _, data in sse_data(answer)]
    assert events[-1] == "[DONE]"
    content = gw.upstreams["openai"].requests[-1]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["type"] == "image_url"
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert orjson.loads(events[-2])["cost"] == me.usage()[0]["cost"]


def test_an_image_job_shows_progress_then_the_image_and_its_cost(gw: Gateway) -> None:
    me = Person(gw)
    before = me.balance()
    body = {
        "model": "juggernaut",
        "scheduler": "Euler a",
        "steps": 6,
        "cfgScale": 3.5,
        "width": 256,
        "height": 320,
        "prompt": "a lighthouse",
        "negativePrompt": "fog",
    }
    submitted = me.post("/playground/api/images", body)
    assert submitted.status_code == 200, submitted.text
    ticket = submitted.json()
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while True:
        state = me.post("/playground/api/images/status", ticket).json()
        seen.append(state)
        if state["status"] not in ("pending", "processing"):
            break
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)
    assert state["status"] == "success", state
    progress = [s["progress"] for s in seen if s["status"] == "processing"]
    assert progress and progress == sorted(progress) and 0 <= min(progress) < 1
    assert state["image_url"].startswith("/files/images/")  # on the page's own origin
    image = me.browser.get(gw.url + state["image_url"], timeout=10)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    row = me.usage()[0]
    assert (row["kind"], row["model"], row["status"]) == ("image", "juggernaut", "settled")
    assert state["cost"] == row["cost"] and Decimal(row["cost"]) > 0
    assert before - me.balance() == Decimal(row["cost"])


def test_speech_answers_the_audio_and_its_cost(gw: Gateway) -> None:
    me = Person(gw)
    before = me.balance()
    text = "Read this aloud."
    answer = me.post(
        "/playground/api/speech",
        {"model": "tts-1", "voice": "nova", "response_format": "mp3", "input": text},
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    prefix = "data:audio/mpeg;base64,"
    assert result["audio"].startswith(prefix)
    assert base64.b64decode(result["audio"][len(prefix) :]) == (
        b"audio-part-0;audio-part-1;audio-part-2;"
    )
    row = me.usage()[0]
    assert (row["kind"], row["model"], row["units"]) == ("speech", "tts-1", len(text))
    assert result["cost"] == row["cost"] and result["units"] == len(text)
    assert before - me.balance() == Decimal(row["cost"])
    assert gw.upstreams["openai"].requests[-1]["voice"] == "nova"


def test_the_endpoints_refuse_without_session_csrf_or_same_origin(gw: Gateway) -> None:
    me = Person(gw)
    chat = {"model": "gpt-4o-mini", "message": "hi"}
    calls_before = gw.upstreams["openai"].calls
    for path in (
        "/playground/api/chat",
        "/playground/api/images",
        "/playground/api/images/status",
        "/playground/api/speech",
    ):
        anonymous = requests.post(
            gw.url + path, json=chat, headers={"X-CSRF-Token": me.csrf}, timeout=10
        )
        assert anonymous.status_code == 401, path
        assert anonymous.json()["error"]["code"] == "not_signed_in"
        no_header = me.browser.post(gw.url + path, json=chat, timeout=10)
        assert no_header.status_code == 403, path
        assert no_header.json()["error"]["code"] == "csrf_failed"
        wrong = me.post(path, chat, headers={"X-CSRF-Token": "x" * 43})
        assert wrong.status_code == 403, path
        # a form's token in the body is not the header
        in_body = me.browser.post(gw.url + path, data={"csrf_token": me.csrf}, timeout=10)
        assert in_body.status_code == 403, path
        elsewhere = me.post(path, chat, headers={"Origin": "https://evil.example"})
        assert elsewhere.status_code == 403, path
        assert elsewhere.json()["error"]["code"] == "cross_origin"
        cross_site = me.post(path, chat, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross_site.status_code == 403, path
    # another person's token does not work with this session
    other = Person(gw, credit="0")
    assert (
        me.post("/playground/api/chat", chat, headers={"X-CSRF-Token": other.csrf}).status_code
        == 403
    )
    # the same origin, said by a browser, is fine
    same = me.post("/playground/api/chat", chat, headers={"Origin": gw.url}, stream=True)
    assert same.status_code == 200 and list(sse_data(same))[-1][1] == "[DONE]"
    assert gw.upstreams["openai"].calls == calls_before + 1  # only that one reached the model
    assert len(me.usage()) == 1


def test_the_page_is_for_signed_in_people(gw: Gateway) -> None:
    anonymous = requests.get(gw.url + "/playground", allow_redirects=False, timeout=10)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/playground"


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/playground/api/chat", {"model": "gpt-4o-mini", "message": ""}, 400, "message"),
        ("/playground/api/chat", {"model": "no-such-model", "message": "hi"}, 404, None),
        ("/playground/api/chat", {"model": "gpt-4o-mini", "message": "hi", "x": 1}, 400, "x"),
        (
            "/playground/api/chat",
            {"model": "gpt-4o-mini", "message": "hi", "image": "data:image/png;base64,!!"},
            400,
            None,
        ),
        (
            "/playground/api/images",
            {"model": "realvision", "prompt": "a", "steps": 99},
            400,
            "steps",
        ),
        (
            "/playground/api/images",
            {"model": "realvision", "prompt": "a", "scheduler": "Nope"},
            400,
            "scheduler",
        ),
        ("/playground/api/images", {"model": "nope", "prompt": "a"}, 400, "model"),
        (
            "/playground/api/images",
            {"model": "realvision", "prompt": "a", "width": 4096},
            400,
            "width",
        ),
        ("/playground/api/images/status", {"jobid": "1", "signature": "forged"}, 404, None),
        ("/playground/api/speech", {"model": "tts-1", "voice": "alloy", "input": ""}, 400, "input"),
        (
            "/playground/api/speech",
            {"model": "tts-9", "voice": "alloy", "input": "a"},
            400,
            "model",
        ),
    ],
)
def test_bad_input_is_a_4xx_with_a_message(
    gw: Gateway, path: str, body: dict[str, Any], status: int, param: str | None
) -> None:
    me = Person(gw)
    answer = me.post(path, body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["message"]
    if param is not None:
        assert param in (error["param"] or ""), error
    assert me.usage() == [] and Decimal(me.account()["held"]) == 0


def test_no_credit_is_a_402_and_nothing_runs(gw: Gateway) -> None:
    me = Person(gw, credit="0")
    calls = gw.upstreams["openai"].calls
    chat = me.post("/playground/api/chat", {"model": "gpt-4o-mini", "message": "hi"})
    assert chat.status_code == 402 and "Insufficient credit" in chat.json()["error"]["message"]
    image = me.post("/playground/api/images", {"model": "realvision", "prompt": "a"})
    assert image.status_code == 402
    speech = me.post("/playground/api/speech", {"model": "tts-1", "voice": "alloy", "input": "a"})
    assert speech.status_code == 402
    assert gw.upstreams["openai"].calls == calls and me.usage() == []


def test_a_job_of_another_account_is_not_found(gw: Gateway) -> None:
    owner, stranger = Person(gw), Person(gw)
    ticket = owner.post(
        "/playground/api/images",
        {"model": "realvision", "prompt": "a", "width": 256, "height": 256},
    ).json()
    peek = stranger.post("/playground/api/images/status", ticket)
    assert peek.status_code == 404
    assert owner.post("/playground/api/images/status", ticket).status_code == 200


def test_the_page_offers_the_catalog(gw: Gateway) -> None:
    from minitoolai.catalog import IMAGE_MODELS, IMAGE_SCHEDULERS

    me = Person(gw)
    html = me.browser.get(gw.url + "/playground", timeout=10).text
    image_models = re.search(r'<select id="image-model".*?</select>', html, re.S)
    schedulers = re.search(r'<select id="image-scheduler".*?</select>', html, re.S)
    assert image_models and schedulers
    assert re.findall(r'<option value="([^"]+)"', image_models.group(0)) == list(IMAGE_MODELS)
    assert len(IMAGE_MODELS) == 15 and len(IMAGE_SCHEDULERS) == 18
    assert re.findall(r'<option value="([^"]+)"', schedulers.group(0)) == list(IMAGE_SCHEDULERS)
    assert '<option value="gpt-4o-mini" data-vision="yes">' in html
    assert re.search(r'<select id="speech-model".*?tts-1', html, re.S)
    assert "mtai-" not in html  # no key in the page
    assert '<a href="/playground"' in html and '<a href="/docs"' in html


def test_the_docs_page_has_this_server_and_no_key(gw: Gateway) -> None:
    anonymous = requests.get(gw.url + "/docs", timeout=10)
    assert anonymous.status_code == 200
    html = anonymous.text
    for path in (
        "/api/chat-completions/",
        "/api/texttoimage/",
        "/api/texttoimage/jobs/",
        "/api/texttospeech/",
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/images/generations",
        "/v1/audio/speech",
        "/v1/models",
    ):
        assert f"<code>{path}</code>" in html, path
    assert f"curl -N {gw.url}/api/chat-completions/" in html
    assert f"base_url=&#34;{gw.url}/v1&#34;" in html  # the Python examples, escaped
    assert "{base}" not in html and "mtai-" not in html
    me = Person(gw)
    signed_in = me.browser.get(gw.url + "/docs", timeout=10).text
    assert "mtai-" not in signed_in and me.key not in signed_in
    assert 'href="/keys"' in signed_in and "YOUR_KEY" in signed_in
    assert f"{gw.url}/v1/embeddings" in signed_in


def run_image(me: Person, body: dict[str, Any]) -> dict[str, Any]:
    ticket = me.post("/playground/api/images", body).json()
    deadline = time.monotonic() + 30
    while (state := me.post("/playground/api/images/status", ticket).json())["status"] in (
        "pending",
        "processing",
    ):
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    return state


def test_every_run_is_charged_exactly_on_postgres(tmp_path: Path, fresh_postgres: str) -> None:
    with playground_gateway(tmp_path, fresh_postgres) as pg:
        me = Person(pg, credit="0.25")
        chat = me.post("/playground/api/chat", {"model": "gpt-4o-mini", "message": "hi"})
        chat_cost = orjson.loads([d for _, d in sse_data(chat)][-2])
        image = run_image(me, {"model": "amigo", "prompt": "a", "width": 256, "height": 256})
        speech = me.post(
            "/playground/api/speech", {"model": "tts-1", "voice": "alloy", "input": "Hello."}
        ).json()
        rows = {row["kind"]: row for row in me.usage()}
        assert set(rows) == {"chat", "image", "speech"}
        assert chat_cost["cost"] == rows["chat"]["cost"]
        assert image["status"] == "success" and image["cost"] == rows["image"]["cost"]
        assert speech["cost"] == rows["speech"]["cost"]
        spent = sum(Decimal(r["cost"]) for r in rows.values())
        assert Decimal("0.25") - me.balance() == spent > 0
        assert idle_held(lambda: Decimal(me.account()["held"])) == 0
