"""The streaming resampler behind wav/pcm output."""

from __future__ import annotations

import math
import struct

import pytest

from minitoolai.engines.speech.audio import Resampler, wav_header

pytest.importorskip("numpy")


def tone(n: int, rate: int = 22050, hz: float = 440.0) -> bytes:
    return struct.pack(
        f"<{n}h", *(round(12000 * math.sin(2 * math.pi * hz * i / rate)) for i in range(n))
    )


def feed_in(pieces: list[int], pcm: bytes) -> bytes:
    r = Resampler(22050)
    out, at = [], 0
    for size in pieces:
        out.append(r.feed(pcm[at : at + size]))
        at += size
    out.append(r.feed(pcm[at:]))
    return b"".join(out)


def test_output_does_not_depend_on_how_input_was_split() -> None:
    pcm = tone(22050)
    whole = feed_in([], pcm)
    assert feed_in([1, 3, 4097, 2, 0, 999, 10001], pcm) == whole
    assert feed_in([2] * 500, pcm) == whole


def test_rate_ratio_and_waveform_are_kept() -> None:
    pcm = tone(22050)
    out = feed_in([], pcm)
    n = len(out) // 2
    assert abs(n - 24000) <= 1
    samples = struct.unpack(f"<{n}h", out)
    expected = [12000 * math.sin(2 * math.pi * 440 * i / 24000) for i in range(n)]
    assert max(abs(a - b) for a, b in zip(samples, expected, strict=True)) < 200


def test_same_rate_passes_through() -> None:
    r = Resampler(24000)
    assert r.feed(b"\x01\x02\x03") == b"\x01\x02"
    assert r.feed(b"\x04") == b"\x03\x04"


def test_streaming_wav_header_declares_unknown_length() -> None:
    header = wav_header()
    assert len(header) == 44 and header[:4] == b"RIFF" and header[36:40] == b"data"
    assert struct.unpack("<I", header[40:44])[0] == 0xFFFFFFFF
    assert struct.unpack("<I", wav_header(data_size=480)[40:44])[0] == 480
