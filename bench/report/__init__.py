"""Turn a run's raw results into the Markdown report and the PNG chart.

One module per section: ``chat`` (the comparison with the other gateways, and the definitions
of its figures), ``images``, ``local``, ``speech``, ``ledger``; ``chart`` draws the PNG and
``tables`` formats numbers. This module puts the sections together in the report's order.
"""

from __future__ import annotations

from typing import Any

from bench.report.chart import chart
from bench.report.chat import detail_md, goal_rows, summary_md
from bench.report.images import images_md
from bench.report.ledger import ledger_md
from bench.report.local import local_md
from bench.report.speech import speech_md
from bench.report.tables import table

__all__ = ["chart", "markdown"]


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
        parts += ["## Summary", "", summary_md(results), ""]
    goals = goal_rows(results)
    if goals:
        parts += ["## Goals (this project)", ""]
        parts.append(table(["contender", "goal", "measured", "verdict"], goals))
        parts.append("")
    for scenario, title in results["scenarios"].items():
        parts += [f"## Cells: {title}", "", detail_md(results, scenario), ""]
    if results.get("images", {}).get("cells"):
        parts += ["## Image-job overhead (test-pattern engine: no generation time)", ""]
        parts += [images_md(results["images"]), ""]
    if results.get("local"):
        parts += ["## Local engine tokens/s: through the API vs. bare llama.cpp", ""]
        parts += [local_md(results["local"]), ""]
    if results.get("speech"):
        parts += ["## Speech: real-time factor and first audio, API vs. bare engine", ""]
        parts += [speech_md(results["speech"]), ""]
    if results.get("ledger"):
        parts += ["## Ledger throughput (Ledger.hold + Ledger.settle, no HTTP)", ""]
        parts += [ledger_md(results["ledger"]), ""]
    if results.get("breakdown"):
        parts += ["## Where a request's CPU goes (each part alone, CPU ms per call)", ""]
        parts.append(
            table(
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
