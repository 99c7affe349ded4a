"""The chat comparison: contenders' cells, the summary, the goals and the per-cell tables.

- req/s at saturation: the most requests/s over the concurrencies tried;
- added latency: the contender's latency percentile minus the direct call's same percentile in
  the same scenario and concurrency (a difference of percentiles, not a percentile of
  differences);
- TTFT overhead: the same for the time to the first content token of a stream;
- CPU s / 1k req: CPU seconds (user + system) of the gateway's process tree per 1,000 answered
  requests, at the cell with the most requests/s;
- peak RSS: the largest resident memory of the process tree seen over all its cells.
"""

from __future__ import annotations

from typing import Any

from bench.report.tables import fmt, table

Cells = list[dict[str, Any]]

GOALS = (
    ("added latency p50 <= 1 ms (c=1, non-streaming)", "p50", 1.0),
    ("added latency p99 <= 5 ms (c=1, non-streaming)", "p99", 5.0),
    ("requests/s >= 10x LiteLLM's (non-streaming)", "rps", 10.0),
    ("streaming adds <= 1 ms to time to first token (c=1, p50)", "ttft", 1.0),
)


def cells_of(results: dict[str, Any], contender: str, scenario: str) -> Cells:
    return [
        c
        for c in results["cells"]
        if c["contender"] == contender and c["scenario"] == scenario and c["requests"] > 0
    ]


def cell_of(
    results: dict[str, Any], contender: str, scenario: str, conc: int
) -> dict[str, Any] | None:
    return next(
        (c for c in cells_of(results, contender, scenario) if c["concurrency"] == conc), None
    )


def busiest(cells: Cells) -> dict[str, Any] | None:
    return max(cells, key=lambda c: c["rps"], default=None)


def added(
    results: dict[str, Any], contender: str, scenario: str, conc: int, key: str, pct: str
) -> float | None:
    """``contender``'s percentile ``pct`` of ``key`` minus the direct call's, in ms."""
    mine, floor = (
        cell_of(results, contender, scenario, conc),
        cell_of(results, "direct", scenario, conc),
    )
    if not mine or not floor or not mine.get(key) or not floor.get(key):
        return None
    return float(mine[key][pct] - floor[key][pct])


def max_rps(results: dict[str, Any], contender: str, scenario: str) -> float | None:
    best = busiest(cells_of(results, contender, scenario))
    return float(best["rps"]) if best else None


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    litellm = max_rps(results, "litellm", "nonstream")
    for name in results["contenders_run"]:
        best = busiest(cells_of(results, name, "nonstream"))
        rss = [c["peak_rss_mb"] for c in results["cells"] if c["contender"] == name]
        rss = [r for r in rss if r is not None]
        rps = max_rps(results, name, "nonstream")
        rows.append(
            {
                "contender": name,
                "rps_nonstream": rps,
                "x_litellm": rps / litellm if rps and litellm and name != "direct" else None,
                "rps_stream": max_rps(results, name, "stream"),
                "added_c1": [
                    added(results, name, "nonstream", 1, "latency_ms", p)
                    for p in ("p50", "p90", "p99")
                ],
                "added_c16": [
                    added(results, name, "nonstream", 16, "latency_ms", p) for p in ("p50", "p99")
                ],
                "ttft_c1": added(results, name, "stream", 1, "ttft_ms", "p50"),
                "cpu_per_1k": best["cpu_s_per_1k"] if best else None,
                "db_cpu_per_1k": best.get("database_cpu_s_per_1k") if best else None,
                "peak_rss_mb": max(rss) if rss else None,
            }
        )
    return rows


LOCAL_GOAL = "local engine decode tokens/s through the API >= 95% of bare llama.cpp"


def goal_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(contender, goal, measured, verdict) for each of this project's contenders."""
    out = []
    local = results.get("local")
    if local:
        ratio = local.get("ratio")
        shown = "-" if ratio is None else f"{ratio:.1%} of bare"
        verdict = "not measured" if ratio is None else ("met" if ratio >= 0.95 else "**MISSED**")
        out.append(("minitoolai (local engine)", LOCAL_GOAL, shown, verdict))
    litellm = max_rps(results, "litellm", "nonstream")
    for name in results["contenders_run"]:
        if not name.startswith("minitoolai"):
            continue
        for goal, key, limit in GOALS:
            if key in ("p50", "p99"):
                value = added(results, name, "nonstream", 1, "latency_ms", key)
                shown = None if value is None else f"{value:.2f} ms"
                ok = None if value is None else value <= limit
            elif key == "ttft":
                value = added(results, name, "stream", 1, "ttft_ms", "p50")
                shown = None if value is None else f"{value:.2f} ms"
                ok = None if value is None else value <= limit
            else:
                rps = max_rps(results, name, "nonstream")
                value = rps / litellm if rps and litellm else None
                shown = None if value is None else f"{value:.1f}x ({rps:,.0f} vs {litellm:,.0f})"
                ok = None if value is None else value >= limit
            verdict = "not measured" if ok is None else ("met" if ok else "**MISSED**")
            out.append((name, goal, shown or "-", verdict))
    return out


def summary_md(results: dict[str, Any]) -> str:
    rows = []
    for r in summary_rows(results):
        rows.append(
            [
                r["contender"],
                fmt(r["rps_nonstream"]),
                fmt(r["x_litellm"], 1) if r["x_litellm"] else "-",
                fmt(r["rps_stream"]),
                " / ".join(fmt(v) for v in r["added_c1"]),
                " / ".join(fmt(v) for v in r["added_c16"]),
                fmt(r["ttft_c1"]),
                fmt(r["cpu_per_1k"], 3)
                + (f" (+DB {fmt(r['db_cpu_per_1k'], 3)})" if r["db_cpu_per_1k"] else ""),
                fmt(r["peak_rss_mb"], 0),
            ]
        )
    return table(
        [
            "contender",
            "req/s max (non-stream)",
            "x LiteLLM",
            "req/s max (stream)",
            "added ms p50 / p90 / p99 (c=1)",
            "added ms p50 / p99 (c=16)",
            "TTFT added ms p50 (c=1)",
            "CPU s / 1k req",
            "peak RSS MiB",
        ],
        rows,
    )


def rps_cell(cell: dict[str, Any]) -> str:
    if not cell["requests"]:
        return "0 (no answer within the window: lengthen --duration)"
    return fmt(cell["rps"]) + (" (client-bound)" if cell.get("client_bound") else "")


def detail_md(results: dict[str, Any], scenario: str) -> str:
    rows = []
    for c in results["cells"]:
        if c["scenario"] != scenario:
            continue
        name, conc = c["contender"], c["concurrency"]
        lat = (c.get("latency_ms") or {}) if c["requests"] else {}
        ttft = c.get("ttft_ms") or {}
        errors = sum(c["errors"].values())
        rows.append(
            [
                name,
                str(conc),
                c["loadgen"],
                rps_cell(c),
                fmt(lat.get("p50")),
                fmt(lat.get("p90")),
                fmt(lat.get("p99")),
                fmt(added(results, name, scenario, conc, "latency_ms", "p50")),
                fmt(added(results, name, scenario, conc, "latency_ms", "p99")),
                fmt(ttft.get("p50")) if scenario == "stream" else "-",
                fmt(added(results, name, scenario, conc, "ttft_ms", "p50"))
                if scenario == "stream"
                else "-",
                fmt(c.get("cpu_s_per_1k"), 3),
                fmt(c.get("gateway_cpu_pct"), 0),
                fmt(c.get("peak_rss_mb"), 0),
                fmt(c.get("upstream_cpu_pct"), 0) + " / " + fmt(c.get("loadgen_cpu_pct"), 0),
                str(errors) if errors else "0",
            ]
        )
    return table(
        [
            "contender",
            "c",
            "load gen",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "added p50",
            "added p99",
            "TTFT p50",
            "TTFT added",
            "CPU s/1k",
            "gateway CPU %",
            "RSS MiB",
            "upstream / load gen CPU %",
            "errors",
        ],
        rows,
    )
