"""Speech routed to an OpenAI-compatible upstream: relayed as it arrives, billed per character."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.chat.conftest import database_url
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import running_gateway


def test_upstream_speech_is_relayed_and_billed(tmp_path: Path) -> None:
    up, down = FakeUpstream(), FakeUpstream(status=503)
    deps: list[dict[str, object]] = [
        {"model": "tts-1-hd", "provider": "down", "priority": 0},
        {"model": "tts-1-hd", "provider": "up", "priority": 1, "upstream_model": "tts-1-hd"},
    ]
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {"up": up, "down": down}, deps
    ) as gw:
        before = gw.balance_nano()
        text = "Read this aloud, please."
        response = requests.post(
            gw.url + "/v1/audio/speech",
            headers=gw.headers(),
            timeout=30,
            json={
                "model": "tts-1-hd",
                "input": text,
                "voice": "onyx",
                "response_format": "mp3",
                "speed": 1.25,
            },
        )
        assert response.status_code == 200 and response.headers["content-type"] == "audio/mpeg"
        assert response.content == b"audio-part-0;audio-part-1;audio-part-2;"
        assert up.requests[-1] == {
            "model": "tts-1-hd",
            "input": text,
            "voice": "onyx",
            "response_format": "mp3",
            "speed": 1.25,
        }
        assert down.calls == 1  # tried first, failed before any audio, cost nothing extra
        assert before - gw.balance_nano() == len(text) * 30_000  # US$30 per 1M characters
        down.status = up.status = 503
        failed = requests.post(
            gw.url + "/api/texttospeech/",
            headers=gw.headers(),
            timeout=30,
            json={"model": "tts-1-hd", "input": "x"},
        )
        assert failed.status_code == 502 and gw.idle_held_nano() == 0
