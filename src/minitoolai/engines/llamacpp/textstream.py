"""Turning a stream of token bytes into text that is safe to send.

Two things must be held back while streaming: bytes of a UTF-8 character split across tokens
(an emoji is often 2-4 byte-level tokens), and text that might be the beginning of a stop
sequence (``"###"`` arriving as ``"#"``, ``"##"``...). Holding back exactly the longest suffix
that is a prefix of some stop sequence guarantees a stop string is never sent, not even in part,
while everything else is sent as soon as it is known.
"""

from __future__ import annotations

import codecs


class StopScanner:
    """Feed token bytes, get back the text that may be sent and whether a stop was hit."""

    def __init__(self, stops: list[str]) -> None:
        self._stops = [s for s in stops if s]
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self.stopped = False

    def feed(self, data: bytes) -> str:
        """Text now safe to send. After a stop sequence is seen ``stopped`` is set and the text
        before it is returned; everything after it is discarded.
        """
        if self.stopped:
            return ""
        self._pending += self._decoder.decode(data)
        return self._release()

    def flush(self) -> str:
        """The held-back rest, at the end of generation (no stop sequence can complete now)."""
        if self.stopped:
            return ""
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return rest

    def _release(self) -> str:
        text = self._pending
        hits = [i for i in (text.find(s) for s in self._stops) if i >= 0]
        if hits:
            self.stopped = True
            self._pending = ""
            return text[: min(hits)]
        hold = self._held_suffix(text)
        self._pending = text[len(text) - hold :]
        return text[: len(text) - hold]

    def _held_suffix(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that begins some stop sequence."""
        best = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best
