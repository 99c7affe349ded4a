"""The benchmark harness still runs end to end, so it does not rot between measurements.

A seconds-long ``--quick`` run against this project (SQLite) and the direct call only: no
peers, no PostgreSQL, wrk if installed and the Python load generator otherwise, plus the
image-job overhead on SQLite (a second of jobs per concurrency). Nothing is timed: the figures
must exist and be positive, whatever the machine is doing.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from bench.cli import parse_args, run


def test_quick_run_reports_every_figure(tmp_path: Path) -> None:
    opts = parse_args(
        [
            "--quick",
            "--contenders",
            "direct,minitoolai-sqlite",
            "--concurrency",
            "1,4",
            "--duration",
            "1",
            "--ledger-databases",
            "sqlite",
            "--scenarios",
            "nonstream,stream,images",
            "--image-setups",
            "sqlite",
            "--out",
            str(tmp_path),
        ]
    )
    results = run(opts)

    assert results["failed"] == {}, results["failed"]
    assert results["contenders_run"] == ["direct", "minitoolai-sqlite"]
    cells = results["cells"]
    assert len(cells) == 2 * 2 * 2  # contenders x scenarios x concurrencies
    for cell in cells:
        assert cell["requests"] > 0 and cell["rps"] > 0, cell
        assert cell["errors"] == {}, cell
        assert cell["latency_ms"]["p50"] > 0 and cell["latency_ms"]["p99"] > 0, cell
        if cell["scenario"] == "stream":
            assert cell["ttft_ms"]["p50"] > 0, cell
        if cell["contender"] == "minitoolai-sqlite":
            assert cell["cpu_s_per_1k"] > 0 and cell["peak_rss_mb"] > 0, cell
    assert [(r["database"], r["shape"]) for r in results["ledger"]] == [
        ("sqlite", "hot"),
        ("sqlite", "spread"),
    ]
    for row in results["ledger"]:
        assert row["pairs_per_s"] > 0 and row["errors"] == {}, row
    parts = {row["part"]: row["cpu_ms"] for row in results["breakdown"]}
    assert "ledger hold + settle (SQLite)" in parts and all(v > 0 for v in parts.values()), parts
    images = results["images"]
    assert [(c["setup"], c["concurrency"], c["pollers"]) for c in images["cells"]] == [
        ("sqlite", 1, 0),
        ("sqlite", 16, 0),
        ("sqlite", 16, 32),  # the same, with 32 keyless pollers flooding the jobs
    ]
    for cell in images["cells"]:
        assert cell["jobs"] > 0 and cell["jobs_per_s"] > 0 and cell["errors"] == {}, cell
        assert cell["submit_ms"]["p50"] > 0 and cell["seen_ms"]["p50"] > 0, cell
        assert cell["rows_found"] == cell["jobs"], cell  # every job's timestamps were read
        assert cell["split_ms"]["working"] is not None, cell
        assert cell["gateway_cpu_ms_per_job"] > 0, cell
    [polls] = images["polls"]
    assert polls["polls"] > 0 and polls["gateway_cpu_ms_per_poll"] > 0, polls

    text = (tmp_path / "report.md").read_text()
    assert "## Summary" in text and "minitoolai-sqlite" in text
    assert "## Image-job overhead" in text
    assert (tmp_path / "results.json").exists()
    if find_spec("matplotlib") is not None:
        assert (tmp_path / "chart.png").stat().st_size > 0
