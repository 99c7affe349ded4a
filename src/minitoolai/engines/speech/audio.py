"""Raw audio plumbing shared by the speech engines: resampling and streamed WAV headers.

Every format we return is 24 kHz, 16-bit, mono, which is what OpenAI's speech endpoint returns
(its ``pcm`` format is documented as raw 24 kHz 16-bit little-endian mono). Clients written
against OpenAI hard-code that rate for ``pcm``, so voices made at another rate (Piper's
"medium" voices and espeak-ng are 22.05 kHz) are resampled rather than passed through.
"""

from __future__ import annotations

import struct
from typing import Any

#: the sample rate of everything the speech engines return
OUTPUT_RATE = 24_000
SAMPLE_WIDTH = 2  # bytes: signed 16-bit little-endian
#: RIFF/data sizes for a WAV whose length is unknown when its header is sent (streaming)
UNKNOWN_SIZE = 0xFFFFFFFF


def wav_header(rate: int = OUTPUT_RATE, data_size: int | None = None) -> bytes:
    """A 44-byte PCM WAV header for 16-bit mono. ``data_size=None`` writes the "unknown length"
    sizes (0xFFFFFFFF) that streamed WAV uses, as ffmpeg does on a pipe; players and decoders
    (ffmpeg, browsers, Python's ``wave``) then read to the end of the stream.
    """
    riff = UNKNOWN_SIZE if data_size is None else 36 + data_size
    data = UNKNOWN_SIZE if data_size is None else data_size
    block = SAMPLE_WIDTH
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * block, block, 8 * SAMPLE_WIDTH)
        + b"data"
        + struct.pack("<I", data)
    )


class Resampler:
    """Streaming linear-interpolation resampler for 16-bit mono PCM.

    Chunk boundaries (sentences, pipe reads of any size, odd byte counts) change nothing: output
    sample ``k`` is always taken at input position ``k * src / dst``, computed in integers, so
    the same audio gives the same bytes however it was split. Linear interpolation is plenty
    for 22.05 -> 24 kHz speech and needs nothing beyond numpy.
    """

    def __init__(self, src_rate: int, dst_rate: int = OUTPUT_RATE) -> None:
        import numpy as np

        self._np = np
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._next = 0  # index of the next output sample
        self._base = 0  # input index of ``_prev[0]`` (or of the next input sample)
        self._prev: Any = np.zeros(0, dtype=np.float64)
        self._odd = b""

    def feed(self, pcm: bytes) -> bytes:
        data = self._odd + pcm
        whole = len(data) - len(data) % SAMPLE_WIDTH
        self._odd = data[whole:]
        if self.src_rate == self.dst_rate:
            return data[:whole]
        np = self._np
        samples = np.frombuffer(data[:whole], dtype="<i2").astype(np.float64)
        x = np.concatenate([self._prev, samples])
        if len(x) == 0:
            return b""
        last = self._base + len(x) - 1  # input index of the newest sample
        count = max(0, (last * self.dst_rate) // self.src_rate - self._next + 1)
        k = self._next + np.arange(count, dtype=np.int64)
        offset = k * self.src_rate - self._base * self.dst_rate  # position, times dst_rate
        index, remainder = np.divmod(offset, self.dst_rate)
        frac = remainder / self.dst_rate  # the same for sample k however the input was split
        following = np.minimum(index + 1, len(x) - 1)
        out = x[index] + frac * (x[following] - x[index])
        self._next += count
        self._base = last
        self._prev = x[-1:]
        return bytes(np.clip(np.rint(out), -32768, 32767).astype("<i2").tobytes())
