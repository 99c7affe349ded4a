"""The limiter bench runs and prints its table (tiny numbers: a smoke test, not a figure)."""

from __future__ import annotations

import pytest

from bench import limits_bench
from tests.limits.conftest import REDIS_URL


def test_the_limits_bench_reports_every_cell(capsys: pytest.CaptureFixture[str]) -> None:
    rows = limits_bench.main(["--redis", REDIS_URL, "--requests", "20", "--rounds", "1"])
    assert [row["cell"] for row in rows] == [
        "no limits",
        "in-process, rpm",
        "in-process, rpm+tpm+concurrency",
        "redis, rpm",
        "redis, rpm+tpm+concurrency",
    ]
    assert all(row["us_per_request"] > 0 for row in rows)
    assert "| redis, rpm |" in capsys.readouterr().out
