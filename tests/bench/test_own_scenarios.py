"""The local-engine and speech parts of the harness still run end to end.

A ``--quick`` run of the ``local`` and ``speech`` scenarios only: the packaged SmolLM2 model and
Piper voice, bare and through ``minitoolai serve``, one short run per side (8 tokens; ``wav``
only). Nothing is timed: every figure must exist and be positive, and both sides must have
produced the same tokens, whatever the machine is doing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import parse_args, run

pytestmark = pytest.mark.slow  # runs real models (small ones: about 15 s in all)


def test_quick_local_and_speech_report_every_figure(tmp_path: Path) -> None:
    opts = parse_args(
        [
            "--quick",
            "--scenarios",
            "local,speech",
            "--local-max-tokens",
            "8",
            "--speech-formats",
            "wav",
            "--no-ledger",
            "--no-breakdown",
            "--out",
            str(tmp_path),
        ]
    )
    results = run(opts)

    assert results["failed"] == {} and results["skipped"] == {}, results
    local = results["local"]
    for side in ("bare", "api"):
        figures = local[side]
        assert figures["decode_tok_s"] > 0 and figures["ttft_ms"] > 0, figures
        assert figures["tokens"] == 8 and figures["cpu_ms_per_token"] > 0, figures
    assert local["ratio"] > 0 and local["notes"] == [], local
    assert local["served_as"] == ["smollm2-135m-instruct"], local

    [wav] = results["speech"]["formats"]
    for side in ("bare", "api"):
        figures = wav[side]
        assert figures["x_realtime"] > 0 and figures["first_audio_ms"] > 0, figures
        assert figures["audio_s"] > 1 and figures["bytes"] > 44, figures

    text = (tmp_path / "report.md").read_text()
    assert "## Local engine tokens/s" in text and "## Speech" in text
