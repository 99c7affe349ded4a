"""Turn a run's raw results into the Markdown report and the PNG chart.

Definitions used throughout (also in bench/README.md):

- req/s at saturation: the most requests/s over the concurrencies tried;
- added latency: the contender's latency percentile minus the direct call's same percentile in
  the same scenario and concurrency (a difference of percentiles, not a percentile of
  differences);
- TTFT overhead: the same for the time to the first content token of a stream;
- CPU s / 1k req: CPU seconds (user + system) of the gateway's process tree per 1,000 answered
  requests, at the cell with the most requests/s;
- peak RSS: the largest resident memory of the process tree seen over all its cells.

This project's own scenarios (images, local, speech) have a section each; their figures are
defined in ``bench.images_bench``, ``bench.local_bench`` and ``bench.speech_bench``.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Cells = list[dict[str, Any]]

GOALS = (
    ("added latency p50 <= 1 ms (c=1, non-streaming)", "p50", 1.0),
    ("added latency p99 <= 5 ms (c=1, non-streaming)", "p99", 5.0),
    ("requests/s >= 10x LiteLLM's (non-streaming)", "rps", 10.0),
    ("streaming adds <= 1 ms to time to first token (c=1, p50)", "ttft", 1.0),
)


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def _cells(results: dict[str, Any], contender: str, scenario: str) -> Cells:
    return [
        c
        for c in results["cells"]
        if c["contender"] == contender and c["scenario"] == scenario and c["requests"] > 0
    ]


def _cell(
    results: dict[str, Any], contender: str, scenario: str, conc: int
) -> dict[str, Any] | None:
    return next((c for c in _cells(results, contender, scenario) if c["concurrency"] == conc), None)


def _best(cells: Cells) -> dict[str, Any] | None:
    return max(cells, key=lambda c: c["rps"], default=None)


def added(
    results: dict[str, Any], contender: str, scenario: str, conc: int, key: str, pct: str
) -> float | None:
    """``contender``'s percentile ``pct`` of ``key`` minus the direct call's, in ms."""
    mine, floor = (
        _cell(results, contender, scenario, conc),
        _cell(results, "direct", scenario, conc),
    )
    if not mine or not floor or not mine.get(key) or not floor.get(key):
        return None
    return float(mine[key][pct] - floor[key][pct])


def max_rps(results: dict[str, Any], contender: str, scenario: str) -> float | None:
    best = _best(_cells(results, contender, scenario))
    return float(best["rps"]) if best else None


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    litellm = max_rps(results, "litellm", "nonstream")
    for name in results["contenders_run"]:
        best = _best(_cells(results, name, "nonstream"))
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


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _summary_md(results: dict[str, Any]) -> str:
    rows = []
    for r in summary_rows(results):
        rows.append(
            [
                r["contender"],
                _fmt(r["rps_nonstream"]),
                _fmt(r["x_litellm"], 1) if r["x_litellm"] else "-",
                _fmt(r["rps_stream"]),
                " / ".join(_fmt(v) for v in r["added_c1"]),
                " / ".join(_fmt(v) for v in r["added_c16"]),
                _fmt(r["ttft_c1"]),
                _fmt(r["cpu_per_1k"], 3)
                + (f" (+DB {_fmt(r['db_cpu_per_1k'], 3)})" if r["db_cpu_per_1k"] else ""),
                _fmt(r["peak_rss_mb"], 0),
            ]
        )
    return _table(
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


def _rps_cell(cell: dict[str, Any]) -> str:
    if not cell["requests"]:
        return "0 (no answer within the window: lengthen --duration)"
    return _fmt(cell["rps"]) + (" (client-bound)" if cell.get("client_bound") else "")


def _detail_md(results: dict[str, Any], scenario: str) -> str:
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
                _rps_cell(c),
                _fmt(lat.get("p50")),
                _fmt(lat.get("p90")),
                _fmt(lat.get("p99")),
                _fmt(added(results, name, scenario, conc, "latency_ms", "p50")),
                _fmt(added(results, name, scenario, conc, "latency_ms", "p99")),
                _fmt(ttft.get("p50")) if scenario == "stream" else "-",
                _fmt(added(results, name, scenario, conc, "ttft_ms", "p50"))
                if scenario == "stream"
                else "-",
                _fmt(c.get("cpu_s_per_1k"), 3),
                _fmt(c.get("gateway_cpu_pct"), 0),
                _fmt(c.get("peak_rss_mb"), 0),
                _fmt(c.get("upstream_cpu_pct"), 0) + " / " + _fmt(c.get("loadgen_cpu_pct"), 0),
                str(errors) if errors else "0",
            ]
        )
    return _table(
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


def _ledger_md(rows: list[dict[str, Any]]) -> str:
    body = []
    for r in rows:
        if "error" in r:
            body.append(
                [r["database"], r["shape"], "-", "-", "failed: " + r["error"], "-", "-", "-"]
            )
            continue
        lat = r.get("latency_ms") or {}
        body.append(
            [
                r["database"],
                r["shape"],
                str(r["accounts"]),
                str(r["concurrency"]),
                _fmt(r["pairs_per_s"]),
                _fmt(r.get("cpu_ms_per_pair"), 3),
                _fmt(lat.get("p50")),
                _fmt(lat.get("p99")),
                ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0",
            ]
        )
    return _table(
        [
            "database",
            "shape",
            "accounts",
            "tasks",
            "hold+settle /s",
            "CPU ms / pair",
            "p50 ms",
            "p99 ms",
            "errors",
        ],
        body,
    )


def _pair(stats: dict[str, Any] | None, a: str = "p50", b: str = "p99") -> str:
    stats = stats or {}
    return f"{_fmt(stats.get(a))} / {_fmt(stats.get(b))}"


def _plus_db(cpu: float | None, db: float | None) -> str:
    return _fmt(cpu, 2) + (f" (+DB {_fmt(db, 2)})" if db is not None else "")


def _images_md(images: dict[str, Any]) -> str:
    from bench.images_bench import SETUP_TITLES

    rows = []
    for c in images["cells"]:
        split = c["split_ms"]
        errors = sum(c["errors"].values())
        rows.append(
            [
                c["setup"],
                str(c["concurrency"])
                + (
                    f" + {c['pollers']} pollers ({c.get('poller_polls_per_s', 0):.0f} polls/s)"
                    if c.get("pollers")
                    else ""
                ),
                str(c["jobs"]),
                _fmt(c["jobs_per_s"]),
                _pair(c["submit_ms"]),
                _pair(c["seen_ms"]),
                _fmt(c["polls_per_job"], 1),
                " / ".join(
                    _fmt((split.get(k) or {}).get("p50"))
                    for k in ("to_row", "queued", "working", "to_seen")
                ),
                _plus_db(c["gateway_cpu_ms_per_job"], c["database_cpu_ms_per_job"]),
                ", ".join(f"{k}: {v}" for k, v in c["errors"].items()) if errors else "0",
            ]
        )
    parts = [
        _table(
            [
                "setup",
                "c",
                "jobs",
                "jobs/s",
                "submit ms p50 / p99",
                "submit -> success seen ms p50 / p99",
                "polls / job",
                "split ms p50: submit -> row / queued -> claimed / claimed -> finished / "
                "finished -> seen",
                "CPU ms / job",
                "errors",
            ],
            rows,
        ),
        "",
        "Polls alone (one client polling one finished job back to back):",
        "",
        _table(
            ["setup", "polls/s", "poll ms p50 / p99", "CPU ms / poll"],
            [
                [
                    p["setup"],
                    _fmt(p["polls_per_s"]),
                    _pair(p["poll_ms"]),
                    _plus_db(p["gateway_cpu_ms_per_poll"], p["database_cpu_ms_per_poll"]),
                ]
                for p in images["polls"]
            ],
        ),
        "",
        "Setups: "
        + "; ".join(f"`{k}` = {v}" for k, v in SETUP_TITLES.items())
        + ". CPU is the gateway's process tree (the API, and the worker process when "
        "separate), user + system, over the measured window, per job answered in it; +DB is "
        "the PostgreSQL server's. " + images.get("settings", ""),
    ]
    return "\n".join(parts)


def _runs(runs: list[dict[str, Any]], key: str, digits: int = 1) -> str:
    return ", ".join(_fmt(r.get(key), digits) for r in runs)


def _local_md(local: dict[str, Any]) -> str:
    rows = []
    for side, title in (("bare", "bare LlamaCppEngine"), ("api", "through the API")):
        s = local[side]
        rows.append(
            [
                title,
                _fmt(s["decode_tok_s"], 1),
                _runs(s["runs"], "decode_tok_s"),
                _fmt(s["ttft_ms"], 1),
                _fmt(s["head_ms"], 2),
                _fmt(s["cpu_ms_per_token"], 2),
                _fmt(s["tokens"], 0),
            ]
        )
    ratio = local.get("ratio")
    lines = [
        _table(
            [
                "side",
                "decode tok/s (median)",
                "each run",
                "TTFT ms",
                "first chunk / headers ms",
                "CPU ms / token",
                "tokens",
            ],
            rows,
        ),
        "",
        f"- API / bare decode tokens/s: **{'-' if ratio is None else f'{ratio:.1%}'}** "
        f"(goal >= 95%); TTFT added by the API: {_fmt(local.get('ttft_added_ms'), 1)} ms.",
        f"- Model: {local['model']}, {local['threads']} thread(s) on each side; served as "
        f"{', '.join(local['served_as']) or '?'} through the API.",
    ]
    lines += [f"- Note: {n}" for n in local.get("notes", [])]
    lines += [
        "",
        "Decode tok/s = (completion tokens - 1) / (last content token - first content token); "
        "TTFT from the call (bare) or the request (API) to the first content token; first "
        "chunk = the engine's role chunk (bare) or the response headers (API): the gateway's "
        "work before the engine starts. CPU ms / token: CPU of the bare process, or of the "
        "server, over the whole run, per completion token. " + local.get("settings", ""),
    ]
    return "\n".join(lines)


def _speech_md(speech: dict[str, Any]) -> str:
    rows = []
    for row in speech["formats"]:
        for side, title in (("bare", "bare engine"), ("api", "through the API")):
            s = row[side]
            rows.append(
                [
                    row["format"],
                    title,
                    _fmt(s["x_realtime"], 1),
                    _runs(s["runs"], "x_realtime"),
                    _fmt(s["first_audio_ms"], 0),
                    _fmt(s["wall_s"], 2),
                    _fmt(s["audio_s"], 2),
                    _fmt(s["cpu_s_per_audio_s"], 3),
                ]
            )
    ratios = ", ".join(
        f"{r['format']} {'-' if r['ratio'] is None else format(r['ratio'], '.1%')}"
        for r in speech["formats"]
    )
    return "\n".join(
        [
            _table(
                [
                    "format",
                    "side",
                    "x real time (median)",
                    "each run",
                    "first audio ms",
                    "wall s",
                    "audio s",
                    "CPU s / audio s",
                ],
                rows,
            ),
            "",
            f"- API / bare x real time: {ratios}.",
            f"- Engine: {speech['engine']} ({speech['model_id']}), voice {speech['voice']}, "
            f'text of {speech["words"]} words: "{speech["text"]}"',
            "",
            "x real time = seconds of audio / wall seconds from the call or request to the last "
            "byte (higher is faster). CPU s / audio s: CPU of the bare process or the server, "
            "with the ffmpeg children it waited for. " + speech.get("settings", ""),
        ]
    )


def markdown(results: dict[str, Any]) -> str:
    meta = results["meta"]
    parts = [
        "# MiniToolAI gateway benchmark",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        f"- load average at start: {meta['loadavg']}",
        f"- pinning: {meta['cores']}",
    ]
    if results["scenarios"]:  # the chat comparison ran
        parts += [f"- load: {meta['load']}", f"- upstream: {meta['upstream']}"]
    if meta.get("minitoolai"):
        parts.append(f"- MiniToolAI: {meta['minitoolai']}")
    if meta.get("note"):
        parts += ["", f"> **{meta['note']}**"]
    parts.append("")
    if results["contenders_run"]:
        parts += ["## Summary", "", _summary_md(results), ""]
    goals = goal_rows(results)
    if goals:
        parts += ["## Goals (this project)", ""]
        parts.append(_table(["contender", "goal", "measured", "verdict"], goals))
        parts.append("")
    for scenario, title in results["scenarios"].items():
        parts += [f"## Cells: {title}", "", _detail_md(results, scenario), ""]
    if results.get("images", {}).get("cells"):
        parts += ["## Image-job overhead (test-pattern engine: no generation time)", ""]
        parts += [_images_md(results["images"]), ""]
    if results.get("local"):
        parts += ["## Local engine tokens/s: through the API vs. bare llama.cpp", ""]
        parts += [_local_md(results["local"]), ""]
    if results.get("speech"):
        parts += ["## Speech: real-time factor and first audio, API vs. bare engine", ""]
        parts += [_speech_md(results["speech"]), ""]
    if results.get("ledger"):
        parts += ["## Ledger throughput (Ledger.hold + Ledger.settle, no HTTP)", ""]
        parts += [_ledger_md(results["ledger"]), ""]
    if results.get("breakdown"):
        parts += ["## Where a request's CPU goes (each part alone, CPU ms per call)", ""]
        parts.append(
            _table(
                ["part of a request", "CPU ms per call"],
                [[r["part"], f"{r['cpu_ms']:.3f}"] for r in results["breakdown"]],
            )
        )
        parts += [
            "",
            "Compare with the gateway's CPU s / 1k requests above (= CPU ms per request): "
            "what the parts do not add up to is the HTTP server, routing, middleware and "
            "pipeline glue.",
            "",
        ]
    if results.get("skipped") or results.get("failed"):
        parts += ["## Contenders and scenarios that did not run", ""]
        for name, why in results.get("skipped", {}).items():
            parts.append(f"- {name}: skipped, {why}")
        for name, why in results.get("failed", {}).items():
            parts.append(f"- {name}: failed, {why}")
        parts.append("")
    if results.get("profiles"):
        parts += ["## Profiles (py-spy, gateway under load)", ""]
        for prof in results["profiles"]:
            parts += [f"### {prof['contender']}, {prof['scenario']}, c={prof['concurrency']}", ""]
            parts += ["```", prof["summary"], "```", ""]
    if results["settings"]:
        parts += ["## Settings", ""]
    for name, info in results["settings"].items():
        version = f" (version {info['version']})" if info.get("version") else ""
        parts.append(f"- **{name}**{version}: {info['settings']}")
        for note in info.get("answer_notes") or []:
            parts.append(f"  - its answer differs: {note}")
    parts.append("")
    return "\n".join(parts)


def chart(results: dict[str, Any], path: Path) -> str | None:
    """Write the PNG; returns why not when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib)"
    names = results["contenders_run"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    for ax, scenario in zip(axes[0], ("nonstream", "stream"), strict=True):
        for name in names:
            cells = sorted(_cells(results, name, scenario), key=lambda c: c["concurrency"])
            if cells:
                ax.plot(
                    [c["concurrency"] for c in cells],
                    [c["rps"] for c in cells],
                    marker="o",
                    label=name,
                )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrency")
        ax.set_ylabel("requests/s")
        ax.set_title(f"throughput, {results['scenarios'].get(scenario, scenario)}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    gateways = [n for n in names if n != "direct"]
    rows = summary_rows(results)
    by_name = {r["contender"]: r for r in rows}
    ax = axes[1][0]
    width = 0.25
    for i, (label, idx) in enumerate((("p50", 0), ("p90", 1), ("p99", 2))):
        values = [by_name[n]["added_c1"][idx] or 0 for n in gateways]
        ax.bar([x + i * width for x in range(len(gateways))], values, width, label=label)
    ttft = [by_name[n]["ttft_c1"] or 0 for n in gateways]
    ax.scatter(
        [x + width for x in range(len(gateways))], ttft, color="k", zorder=3, label="TTFT p50"
    )
    ax.set_xticks([x + width for x in range(len(gateways))], gateways, rotation=15, fontsize=8)
    ax.set_ylabel("ms added over direct (c=1)")
    ax.set_title("added latency at c=1 (lower is better)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[1][1]
    cpu = [by_name[n]["cpu_per_1k"] or 0 for n in gateways]
    ax.bar(gateways, cpu, color="tab:purple")
    ax.set_ylabel("CPU seconds per 1k requests")
    ax.set_title("gateway CPU per 1k non-streaming requests (lower is better)")
    ax.tick_params(axis="x", labelrotation=15, labelsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    title = (
        f"MiniToolAI gateway bench, {results['meta']['date']}. {results['meta'].get('note', '')}"
    )
    fig.suptitle("\n".join(textwrap.wrap(title, 150)), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
