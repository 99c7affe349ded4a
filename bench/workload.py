"""What every contender is asked, identically: the request bodies and the scenarios.

One prompt, one model name, one ``max_tokens`` for all. The streaming body asks for the usage
chunk (``stream_options.include_usage``) as a billing client would, so every contender relays
the same events. The fake upstream's answer is ``--chunks`` words whatever it is asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import orjson

MODEL = "gpt-4o-mini"
PROMPT = (
    "You are a helpful assistant. Summarise, in one short sentence, why a gateway in front of "
    "a language model should add as little latency as possible."
)
MAX_TOKENS = 64


@dataclass(frozen=True)
class Scenario:
    name: str
    stream: bool
    title: str

    def body(self) -> bytes:
        body: dict[str, object] = {
            "model": MODEL,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": MAX_TOKENS,
        }
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return orjson.dumps(body)

    def write_body(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"body-{self.name}.json"
        path.write_bytes(self.body())
        return path


SCENARIOS = {
    "nonstream": Scenario("nonstream", False, "non-streaming (one JSON answer)"),
    "stream": Scenario("stream", True, "streaming (SSE, usage chunk)"),
}
