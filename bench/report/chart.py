"""The PNG chart of the chat comparison (matplotlib, when installed)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from bench.report.chat import cells_of, summary_rows


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
            series = sorted(cells_of(results, name, scenario), key=lambda c: c["concurrency"])
            if series:
                ax.plot(
                    [c["concurrency"] for c in series],
                    [c["rps"] for c in series],
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
