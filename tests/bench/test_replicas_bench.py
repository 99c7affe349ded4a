"""The replica throughput bench still runs end to end: a seconds-long run, nothing timed.

Both replica counts are measured on a database of the bench's own kind (a ``bench*`` name,
which the bench wipes), made for this test and dropped after; every figure must exist, no
request may fail, and with two replicas both must have answered.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import make_url

from bench import replicas_bench
from tests.conftest import POSTGRES_URL, _on_server


@pytest.fixture
def bench_database() -> Iterator[str]:
    if POSTGRES_URL == "off":
        pytest.skip("PostgreSQL disabled with MINITOOLAI_TEST_POSTGRES_URL=off")
    name = "bench_t_" + uuid.uuid4().hex[:12]
    asyncio.run(_on_server(f"CREATE DATABASE {name}"))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_on_server(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def test_the_replicas_bench_measures_one_and_two_replicas(
    tmp_path: Path, bench_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "replicas.json"
    args = ["--duration", "0.5", "--warmup", "0.2", "--concurrency", "4"]
    rows = replicas_bench.main([*args, "--postgres-url", bench_database, "--json", str(out)])

    assert [(r["replicas"], r["scenario"]) for r in rows] == [
        (n, s) for n in (1, 2) for s in ("nonstream", "stream")
    ]
    for row in rows:
        assert row["requests"] > 0 and row["rps"] > 0 and row["errors"] == {}, row
        assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"], row
        assert len(row["requests_per_replica"]) == row["replicas"], row
        assert all(n > 0 for n in row["requests_per_replica"]), row  # the load was spread
        assert sum(row["requests_per_replica"]) == row["requests"], row
    printed = capsys.readouterr().out
    assert "| replicas | scenario | req/s | p50 ms | p99 ms | errors |" in printed
    assert "| 2 | stream |" in printed
    assert orjson.loads(out.read_bytes()) == rows
