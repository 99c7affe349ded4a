"""gpt-4o-mini-tts, ``instructions`` and ``stream_format: "sse"`` through the real openai SDK."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import openai
import orjson
import pytest
import requests

from minitoolai.chat.tokens import count_text
from tests.chat.conftest import database_url
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import Gateway, running_gateway

AUDIO = b"audio-part-0;audio-part-1;audio-part-2;"
PER_CHAR = 15_000  # gpt-4o-mini-tts: US$15 per 1M characters, in nano-dollars


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream()


@pytest.fixture
def gw(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Gateway]:
    deployments: list[dict[str, object]] = [{"model": "gpt-4o-mini-tts", "provider": "up"}]
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {"up": upstream}, deployments
    ) as gateway:
        yield gateway


def _client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=gw.api_key, max_retries=0)


def test_gpt_4o_mini_tts_with_instructions(gw: Gateway, upstream: FakeUpstream) -> None:
    text = "Good morning, and welcome aboard."
    before = gw.balance_nano()
    audio = _client(gw).audio.speech.create(
        model="gpt-4o-mini-tts", voice="coral", input=text, instructions="Speak cheerfully."
    )
    assert audio.content == AUDIO
    assert upstream.requests[-1]["model"] == "gpt-4o-mini-tts"
    assert before - gw.balance_nano() == len(text) * PER_CHAR


def test_sse_stream_format_carries_the_audio_in_openais_events(gw: Gateway) -> None:
    text = "Stream this as events, please."
    before = gw.balance_nano()
    with _client(gw).audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input=text, stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            orjson.loads(line.removeprefix("data: "))
            for line in response.iter_lines()
            if line.startswith("data: ")
        ]
    *deltas, done = events
    # one delta per piece of audio as it arrived (the upstream's pieces may arrive together)
    assert deltas and {e["type"] for e in deltas} == {"speech.audio.delta"}
    assert b"".join(base64.b64decode(e["audio"]) for e in deltas) == AUDIO
    tokens = count_text(text)
    assert done == {
        "type": "speech.audio.done",
        "usage": {"input_tokens": tokens, "output_tokens": 0, "total_tokens": tokens},
    }
    assert before - gw.balance_nano() == len(text) * PER_CHAR


def test_unknown_speech_model_is_not_found_and_costs_nothing(gw: Gateway) -> None:
    before = gw.balance_nano()
    with pytest.raises(openai.NotFoundError) as caught:
        _client(gw).audio.speech.create(model="tts-9", voice="alloy", input="hi")
    assert caught.value.code == "model_not_found"
    seed = requests.post(  # the seed-style path keeps the schema's 400
        gw.url + "/api/texttospeech/",
        headers=gw.headers(),
        json={"model": "tts-9", "input": "hi"},
        timeout=10,
    )
    assert seed.status_code == 400
    assert gw.balance_nano() == before


def test_the_local_engine_serves_gpt_4o_mini_tts_and_ignores_instructions(
    tmp_path: Path,
) -> None:
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {}, [], local_speech=True
    ) as gw:
        client = _client(gw)
        assert "gpt-4o-mini-tts" in {m.id for m in client.models.list()}
        text = "Hello there."
        before = gw.balance_nano()
        plain = client.audio.speech.create(
            model="gpt-4o-mini-tts", voice="alloy", input=text, response_format="wav"
        )
        directed = client.audio.speech.create(
            model="gpt-4o-mini-tts",
            voice="alloy",
            input=text,
            response_format="wav",
            instructions="Whisper, slowly.",
        )
        # Piper samples its noise: the same text is not the same bytes twice, so only the form
        assert plain.content[:4] == directed.content[:4] == b"RIFF"
        # accepted, not acted on, not charged for
        assert before - gw.balance_nano() == 2 * len(text) * PER_CHAR
