"""``EspeakEngine``: formant speech from the espeak-ng program, the always-available fallback.

Robotic but tiny, instant and dependency-light (one Debian package), so the server can still
speak when Piper or its voice is missing. espeak-ng writes a WAV stream to stdout as it
synthesises; we parse its header and pass the samples on as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
from collections.abc import AsyncGenerator, Mapping

from minitoolai.engines.base import SpeechParams
from minitoolai.engines.errors import EngineError, EngineUnavailable
from minitoolai.engines.speech.ffmpeg import find_ffmpeg
from minitoolai.engines.speech.formats import RAW_FORMATS, validate
from minitoolai.engines.speech.gate import Gate
from minitoolai.engines.speech.render import render
from minitoolai.engines.speech.voices import resolve_voice, voice_map

#: espeak-ng's own default rate, which we call speed 1.0
BASE_WPM = 175
#: espeak-ng's limits: it ignores slower settings; 700 (4x) still works with its sonic speed-up
MIN_WPM, MAX_WPM = 80, 700
READ_SIZE = 8 * 1024


def find_espeak(executable: str = "espeak-ng") -> str:
    found = shutil.which(executable)
    if found is None:
        raise EngineUnavailable(
            f"{executable!r} was not found; the fallback speech engine needs espeak-ng "
            "(Debian/Ubuntu: `apt-get install espeak-ng`)"
        )
    return found


def words_per_minute(speed: float) -> int:
    return max(MIN_WPM, min(MAX_WPM, round(BASE_WPM * speed)))


async def read_wav_header(stream: asyncio.StreamReader) -> int:
    """Consume a WAV header up to the start of the samples; return the sample rate. Only 16-bit
    mono PCM is accepted (what espeak-ng writes).
    """
    riff = await stream.readexactly(12)
    if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise EngineError("espeak-ng did not write a WAV stream")
    rate = 0
    while True:
        kind, size = struct.unpack("<4sI", await stream.readexactly(8))
        if kind == b"data":
            if not rate:
                raise EngineError("espeak-ng's WAV stream has no format chunk")
            return rate
        body = await stream.readexactly(size)
        if kind == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if (fmt, channels, bits) != (1, 1, 16):
                raise EngineError(f"espeak-ng wrote unexpected audio ({fmt}, {channels}, {bits})")


class EspeakEngine:
    """Speech from espeak-ng; every OpenAI voice maps to ``default_voice`` unless overridden."""

    def __init__(
        self,
        *,
        default_voice: str = "en-us",
        voice_overrides: Mapping[str, str] | None = None,
        executable: str = "espeak-ng",
        model_id: str = "espeak-ng",
        ffmpeg: str = "ffmpeg",
        max_active: int = 2,
        queue_size: int = 4,
    ) -> None:
        self.model_id = model_id
        self._executable = find_espeak(executable)
        self._map = voice_map(default_voice, voice_overrides)
        self._ffmpeg = ffmpeg
        self._gate = Gate(model_id, max_active, queue_size)

    @property
    def voices(self) -> dict[str, str]:
        return dict(self._map)

    async def _pcm(self, proc: asyncio.subprocess.Process) -> AsyncGenerator[bytes, None]:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(READ_SIZE):
            yield chunk
        if await proc.wait() != 0:
            raise EngineError(f"espeak-ng failed with exit code {proc.returncode}")

    async def synthesize(self, params: SpeechParams) -> AsyncGenerator[bytes, None]:
        """Audio in ``params.response_format`` (24 kHz mono), streamed as espeak-ng speaks."""
        validate(params)
        if params.response_format not in RAW_FORMATS:
            find_ffmpeg(self._ffmpeg)
        voice = resolve_voice(params.voice, self._map, self._map.values())
        async with self._gate.admit():
            # text on stdin, never argv: it cannot be mistaken for an option, nor hit ARG_MAX
            proc = await asyncio.create_subprocess_exec(
                self._executable,
                "--stdout",
                "-b",
                "1",
                "-v",
                voice,
                "-s",
                str(words_per_minute(params.speed)),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(params.input.encode("utf-8") + b"\n")
                await proc.stdin.drain()
                proc.stdin.close()
                try:
                    rate = await read_wav_header(proc.stdout)
                except asyncio.IncompleteReadError as exc:
                    await proc.wait()
                    raise EngineError(
                        f"espeak-ng produced no audio (exit {proc.returncode}); "
                        f"is voice {voice!r} installed?"
                    ) from exc
                pcm = self._pcm(proc)
                audio = render(pcm, rate, params.response_format, self._ffmpeg)
                try:
                    async for chunk in audio:
                        yield chunk
                finally:
                    await audio.aclose()
                    await pcm.aclose()
            finally:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                await proc.wait()

    async def aclose(self) -> None:
        return None
