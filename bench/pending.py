"""Figures the harness will measure once the parts they measure exist. Not measured yet.

Each function returns a ``Pending`` record (what, why not yet, how it will be measured) and the
report prints it as such: no number is ever made up for a part that is not built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib.util import find_spec
from typing import Any


@dataclass(frozen=True)
class Pending:
    figure: str
    status: str
    plan: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def image_job_overhead() -> Pending:
    """Submit -> worker start -> stored -> a poll sees success, with a zero-time engine."""
    built = find_spec("minitoolai.images") is not None
    return Pending(
        "image-job overhead",
        "not measured: the image job API, queue and worker are "
        + ("present but not wired into the bench yet" if built else "not built yet"),
        "Run the API and one worker with an engine that returns a fixed 64x64 PNG at once; "
        "submit N jobs at concurrency 1/16/64 and record submit->claimed, claimed->stored, "
        "stored->first poll that sees success (p50/p99), jobs/s, and ledger holds settled.",
    )


def local_engine_tokens_per_s() -> Pending:
    """Tokens/s of the in-process llama.cpp engine through the gateway vs. llama.cpp alone."""
    return Pending(
        "local engine tokens/s",
        "not measured: the local engine is not part of the gateway's chat path yet",
        "Load one small GGUF that a package ships; stream a fixed prompt through "
        "`/v1/chat/completions` and through llama-cpp-python directly; report tokens/s "
        "(single stream and 4 concurrent) and time to first token, gateway vs. direct.",
    )


def all_pending() -> list[Pending]:
    return [image_job_overhead(), local_engine_tokens_per_s()]
