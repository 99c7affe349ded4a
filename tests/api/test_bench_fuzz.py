"""``python -m bench.fuzz`` still runs end to end: ``minitoolai serve``, a few examples, audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.fuzz import main

pytestmark = pytest.mark.fuzz


def test_bench_fuzz_runs_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--examples", "10", "--workers", "1", "--only", "/api/balance/", "--out", str(tmp_path)]
    assert main(argv) == 0
    report = json.loads((tmp_path / "fuzz.json").read_text())
    [op] = report["operations"]
    assert op["label"] == "GET /api/balance/" and op["examples"] == 10, op
    assert report["audit"]["open_holds"] == 0 and report["problems"] == [], report
    assert "[fuzz] audit:" in capsys.readouterr().out
