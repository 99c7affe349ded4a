"""Encoding PCM to mp3/opus/aac/flac with an ffmpeg subprocess, streaming both ways.

PCM is written to ffmpeg's stdin while its stdout is read concurrently, so encoded audio is
yielded while later sentences are still being synthesised (writing everything first could
deadlock once ffmpeg's output pipe fills). If the consumer goes away, ffmpeg is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncGenerator, AsyncIterator

from minitoolai.engines.errors import EngineError, EngineUnavailable
from minitoolai.engines.speech.audio import OUTPUT_RATE
from minitoolai.engines.speech.formats import FFMPEG_OUTPUT_ARGS

READ_SIZE = 16 * 1024


def find_ffmpeg(ffmpeg: str = "ffmpeg") -> str:
    """The ffmpeg executable, or ``EngineUnavailable`` saying how to install it."""
    found = shutil.which(ffmpeg)
    if found is None:
        raise EngineUnavailable(
            f"{ffmpeg!r} was not found; mp3, opus, aac and flac speech need ffmpeg "
            "(Debian/Ubuntu: `apt-get install ffmpeg`). wav and pcm work without it."
        )
    return found


def ffmpeg_command(executable: str, fmt: str, input_rate: int) -> list[str]:
    return [
        executable,
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "s16le",
        "-ar",
        str(input_rate),
        "-ac",
        "1",
        "-i",
        "pipe:0",
        "-ar",
        str(OUTPUT_RATE),
        "-ac",
        "1",
        *FFMPEG_OUTPUT_ARGS[fmt],
        "-flush_packets",
        "1",
        "pipe:1",
    ]


async def _feed(proc: asyncio.subprocess.Process, pcm: AsyncIterator[bytes]) -> None:
    assert proc.stdin is not None
    try:
        async for chunk in pcm:
            proc.stdin.write(chunk)
            await proc.stdin.drain()
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()


async def encode(
    pcm: AsyncIterator[bytes], input_rate: int, fmt: str, ffmpeg: str = "ffmpeg"
) -> AsyncGenerator[bytes, None]:
    """``pcm`` (16-bit mono at ``input_rate``) encoded as ``fmt`` at 24 kHz, as produced."""
    executable = find_ffmpeg(ffmpeg)
    proc = await asyncio.create_subprocess_exec(
        *ffmpeg_command(executable, fmt, input_rate),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    feeder = asyncio.create_task(_feed(proc, pcm))
    errors = asyncio.create_task(proc.stderr.read())
    try:
        while chunk := await proc.stdout.read(READ_SIZE):
            yield chunk
        await feeder  # re-raises a synthesis error
        code = await proc.wait()
        if code != 0:
            message = (await errors).decode(errors="replace").strip()
            raise EngineError(f"ffmpeg failed to encode {fmt} (exit {code}): {message}")
    finally:
        feeder.cancel()
        errors.cancel()
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feeder
