"""From a voice's PCM stream to the bytes of the requested format."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from minitoolai.engines.speech import ffmpeg
from minitoolai.engines.speech.audio import Resampler, wav_header
from minitoolai.engines.speech.formats import RAW_FORMATS


async def _raw(pcm: AsyncIterator[bytes], rate: int, fmt: str) -> AsyncGenerator[bytes, None]:
    if fmt == "wav":
        yield wav_header()
    resampler = Resampler(rate)
    async for chunk in pcm:
        out = resampler.feed(chunk)
        if out:
            yield out


def render(
    pcm: AsyncIterator[bytes], rate: int, fmt: str, ffmpeg_path: str = "ffmpeg"
) -> AsyncGenerator[bytes, None]:
    """``pcm`` (16-bit mono at ``rate``) as ``fmt`` at 24 kHz: ``pcm`` raw, ``wav`` with a
    streaming header, anything else through ffmpeg.
    """
    if fmt in RAW_FORMATS:
        return _raw(pcm, rate, fmt)
    return ffmpeg.encode(pcm, rate, fmt, ffmpeg_path)
