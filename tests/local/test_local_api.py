"""The local engines behind the API: chat from SmolLM2, speech from Piper, offline."""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import orjson
import pytest
import requests

from minitoolai.engines.llamacpp import packaged_model_path
from tests.chat.test_seed_endpoint import seed_snippet
from tests.support.gateway import Gateway, running_gateway

pytestmark = pytest.mark.slow
MODEL_FILE = packaged_model_path()


@pytest.fixture(scope="module")
def local_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("local")
    extra = f"""
[local_models.smollm2-busy]
path = "{MODEL_FILE}"
queue_size = 0
n_ctx = 2048
"""
    with running_gateway(
        tmp,
        f"sqlite+aiosqlite:///{tmp / 'gw.db'}",
        {},
        [],
        extra_toml=extra,
        local_default=True,
        local_speech=True,
    ) as gw:
        yield gw


def test_seed_snippet_gets_a_real_local_answer_billed_by_usage(local_gateway: Gateway) -> None:
    gw = local_gateway
    before = gw.balance_nano()
    _, lines = seed_snippet(gw.url + "/api/chat-completions/", gw.api_key)
    assert lines[-1] == "data: [DONE]"
    events = [orjson.loads(line[6:]) for line in lines[:-1]]
    assert {e["model"] for e in events} == {"smollm2-135m-instruct"}  # says who really answered
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"])
    assert len(text.split()) >= 3  # a real model wrote words
    usage = events[-1]["usage"]
    assert events[-1]["choices"] == [] and usage["completion_tokens"] > 0
    # billed at the public name's price (gpt-4o-mini), by the engine's own usage
    assert (
        before - gw.balance_nano()
        == usage["prompt_tokens"] * 150 + usage["completion_tokens"] * 600
    )


def test_local_model_under_its_own_name_and_stop_and_limit(local_gateway: Gateway) -> None:
    gw = local_gateway
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key)
    assert "smollm2-135m-instruct" in {m.id for m in client.models.list()}
    before = gw.balance_nano()
    reply = client.chat.completions.create(
        model="smollm2-135m-instruct",
        max_completion_tokens=5,
        seed=1,
        temperature=0,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
    )
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    assert reply.choices[0].finish_reason == "length"
    # a local model without its own price row costs what gpt-4.1-nano costs
    assert before - gw.balance_nano() == reply.usage.prompt_tokens * 100 + 5 * 400
    stopped = client.chat.completions.create(
        model="smollm2-135m-instruct",
        temperature=0,
        seed=1,
        max_completion_tokens=40,
        stop=["e"],
        messages=[{"role": "user", "content": "Say: hello there, general"}],
    )
    assert "e" not in (stopped.choices[0].message.content or "")


def test_local_model_refuses_images_before_any_charge(local_gateway: Gateway) -> None:
    gw = local_gateway
    before = gw.balance_nano()
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
                ],
            }
        ],
    }
    response = requests.post(
        gw.url + "/api/chat-completions/", headers=gw.headers(), json=body, timeout=30
    )
    assert response.status_code == 400
    assert "does not accept image input" in response.json()["error"]["message"]
    assert gw.balance_nano() == before


def test_full_queue_is_429_with_retry_after(local_gateway: Gateway) -> None:
    gw = local_gateway
    body = {
        "model": "smollm2-busy",
        "stream": False,
        "max_completion_tokens": 150,
        "messages": [{"role": "user", "content": "Count from 1 to 1000, one number per line."}],
    }

    def call(_: int) -> requests.Response:
        return requests.post(
            gw.url + "/v1/chat/completions", headers=gw.headers(), json=body, timeout=60
        )

    before = gw.balance_nano()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(call, range(4)))
    statuses = sorted(a.status_code for a in answers)
    assert 200 in statuses and 429 in statuses, statuses
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.headers["Retry-After"] == "1"
        assert refused.json()["error"]["type"] == "rate_limit_error"
    charged = sum(
        a.json()["usage"]["prompt_tokens"] * 100 + a.json()["usage"]["completion_tokens"] * 400
        for a in answers
        if a.status_code == 200
    )
    assert before - gw.balance_nano() == charged  # refused requests cost nothing


def test_openai_sdk_speech_wav(local_gateway: Gateway) -> None:
    gw = local_gateway
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key)
    text = "Hello there. This is the local speech engine talking."
    before = gw.balance_nano()
    audio = client.audio.speech.create(
        model="tts-1", voice="alloy", input=text, response_format="wav"
    )
    with wave.open(io.BytesIO(audio.content)) as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        rate = wav.getframerate()
        frames = len(wav.readframes(10**9)) // 2
    seconds = frames / rate
    words = len(text.split())
    assert 0.2 * words <= seconds <= 1.5 * words
    assert before - gw.balance_nano() == len(text) * 15_000  # US$15 per 1M characters


def test_seed_style_speech_mp3_and_errors(local_gateway: Gateway) -> None:
    gw = local_gateway
    response = requests.post(
        gw.url + "/api/texttospeech/",
        headers=gw.headers(),
        timeout=60,
        json={"input": "Good morning.", "voice": "nova", "responseFormat": "mp3"},
    )
    assert response.status_code == 200 and response.headers["content-type"] == "audio/mpeg"
    assert response.content[:3] == b"ID3" or response.content[:2] in (b"\xff\xfb", b"\xff\xf3")
    before = gw.balance_nano()
    bad = requests.post(
        gw.url + "/v1/audio/speech",
        headers=gw.headers(),
        timeout=30,
        json={"model": "tts-1", "input": "x" * 4097, "voice": "alloy"},
    )
    assert bad.status_code == 400
    unknown = requests.post(
        gw.url + "/v1/audio/speech",
        headers=gw.headers(),
        timeout=30,
        json={"model": "tts-1", "input": "hi", "voice": "nobody"},
    )
    assert unknown.status_code == 400 and "voice" in unknown.json()["error"]["message"]
    assert unknown.json()["error"]["param"] == "voice"
    assert gw.balance_nano() == before


def test_all_seed_models_are_served_locally(local_gateway: Gateway) -> None:
    client = openai.OpenAI(base_url=local_gateway.url + "/v1", api_key=local_gateway.api_key)
    ids = {m.id for m in client.models.list()}
    assert {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"} <= ids


def test_token_counts_are_tiktoken_o200k(tmp_path: Path) -> None:
    from minitoolai.chat.tokens import count_text, encoding

    assert encoding("o200k_base").encode("hello world") == [24912, 2375]  # tiktoken's own ids
    assert encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert count_text("Hello, world!", "gpt-4o") == 4
