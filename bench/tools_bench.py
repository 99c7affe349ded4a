"""Streamed tool calls: the latency the gateway adds to a tool call vs. to plain text.

The same harness as ``python -m bench``'s ``stream`` scenario (``bench.loadgen`` on the
client core(s), ``minitoolai serve`` on SQLite alone on the gateway core), behind
``bench.tool_upstream``: words when asked without tools, one ``get_weather`` call of the same
number of events and the same usage when asked with them. Two bodies, the same prompt and
``max_tokens``, both streamed with the usage chunk; the tool body adds two function tools and
``tool_choice: "auto"``. Each is sent straight to the upstream (the floor) and through the
gateway, closed loop at ``--concurrency`` (1: the gateway's own cost per request), in
``--rounds`` alternating rounds.

Figures (milliseconds): time to the first token (a non-empty ``content`` delta or the first
``tool_calls`` delta) and to the last byte, p50 and p99; "added" is the gateway's percentile
minus the direct call's, per round, then the median over the rounds; the gateway's CPU
milliseconds per request (its whole process tree, over the measured window: the figure that
holds when other work shares the machine); the last line is what a tool call adds beyond what
text does.

    python -m bench.tools_bench --duration 5 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.contenders import CONTENDERS, Context, Running
from bench.procs import Cores, Proc, pinned, start
from bench.runner import Load, run_cell, wait_idle
from bench.tool_upstream import TOOL_NAME, argument_pieces
from bench.workload import MAX_TOKENS, MODEL, PROMPT, Scenario

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": "The weather in a city now.",
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The local time in a timezone.",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
        },
    },
]


@dataclass(frozen=True)
class ToolScenario(Scenario):
    """The ``stream`` body with two tools: the upstream answers it with a call."""

    def body(self) -> bytes:
        body = orjson.loads(super().body())
        return orjson.dumps(body | {"tools": TOOLS, "tool_choice": "auto"})


TEXT = Scenario("stream-text", True, "streamed text")
CALL = ToolScenario("stream-tool-call", True, "streamed tool call")
GATEWAY = "minitoolai-sqlite"


def start_upstream(work: Path, cores: Cores, chunks: int) -> tuple[Proc, str]:
    cmd = [sys.executable, "-m", "bench.tool_upstream", "--port", "0", "--chunks", str(chunks)]
    proc = start("tool-upstream", pinned(cmd, cores.client), work / "logs", stdout=subprocess.PIPE)
    assert proc.popen.stdout is not None
    line = proc.popen.stdout.readline().decode().strip()
    if not line.startswith("READY "):
        proc.stop()
        raise RuntimeError(f"the tool upstream did not start:\n{proc.tail()}")
    return proc, f"http://127.0.0.1:{line.split()[1]}"


def check_answers(running: Running, chunks: int) -> None:
    """Each body once: the text ends with the last word, the call with its last piece."""
    for scenario, last, finish in (
        (TEXT, f"w{chunks - 1} ", b'"finish_reason":"stop"'),
        (CALL, argument_pieces(chunks)[-1], b'"finish_reason":"tool_calls"'),
    ):
        request = urllib.request.Request(
            running.url,
            data=scenario.body(),
            headers=running.headers | {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
        wanted = [orjson.dumps(last)[1:-1], finish, b'"usage"', b"[DONE]"]
        if scenario is CALL:
            wanted.append(b'"tool_calls"')
        missing = [w.decode() for w in wanted if w not in body]
        if missing:
            raise RuntimeError(f"{running.url}: the {scenario.title} lacks {missing}")


def measure(opts: argparse.Namespace, work: Path) -> dict[str, Any]:
    cores = Cores.split(pin=not opts.no_pin)
    load = Load(concurrency=(opts.concurrency,), duration=opts.duration, warmup=opts.warmup)
    upstream, url = start_upstream(work, cores, opts.chunks)
    ctx = Context(work=work, upstream=url, cores=cores, postgres_url="")
    cells: list[dict[str, Any]] = []
    try:
        for name in ("direct", GATEWAY):
            running = CONTENDERS[name].start(ctx)
            try:
                check_answers(running, opts.chunks)
                for round_ in range(opts.rounds):
                    for scenario in (TEXT, CALL) if round_ % 2 == 0 else (CALL, TEXT):
                        wait_idle(running)
                        cell = run_cell(
                            ctx, running, scenario, opts.concurrency, load, upstream.pid, False
                        )
                        cells.append(
                            {"contender": name, "scenario": scenario.name, "round": round_, **cell}
                        )
            finally:
                running.stop()
    finally:
        upstream.stop()
    return {"cores": cores.describe(), "chunks": opts.chunks, "cells": cells}


def figures(cells: list[dict[str, Any]], rounds: int) -> dict[str, dict[str, float]]:
    """scenario -> figure -> median over rounds (direct, gateway and added, p50 and p99)."""
    out: dict[str, dict[str, float]] = {}
    for scenario in (TEXT.name, CALL.name):
        by_round: dict[str, list[float]] = {}
        for round_ in range(rounds):
            pick = {
                c["contender"]: c
                for c in cells
                if c["scenario"] == scenario and c["round"] == round_
            }
            for metric in ("ttft_ms", "latency_ms"):
                for p in ("p50", "p99"):
                    direct = pick["direct"][metric][p]
                    gateway = pick[GATEWAY][metric][p]
                    for side, value in (
                        ("direct", direct),
                        ("gateway", gateway),
                        ("added", gateway - direct),
                    ):
                        by_round.setdefault(f"{metric} {p} {side}", []).append(value)
            # CPU seconds per 1k requests = CPU ms per request: holds on a busy machine
            by_round.setdefault("cpu_ms gateway", []).append(pick[GATEWAY]["cpu_s_per_1k"])
        out[scenario] = {k: statistics.median(v) for k, v in by_round.items()}
        out[scenario]["requests"] = sum(
            c["requests"] for c in cells if c["scenario"] == scenario and c["contender"] == GATEWAY
        )
    return out


def table(figs: dict[str, dict[str, float]]) -> str:
    head = (
        "| answer | TTFT p50 direct / gateway / added | TTFT p99 added "
        "| total p50 direct / gateway / added | total p99 added | gateway CPU ms / request "
        "| requests |"
    )
    rows = [head, "|---|---|---|---|---|---|---|"]
    for scenario, title in ((TEXT.name, "text"), (CALL.name, "tool call")):
        f = figs[scenario]
        rows.append(
            f"| {title} | {f['ttft_ms p50 direct']:.3f} / {f['ttft_ms p50 gateway']:.3f} / "
            f"**{f['ttft_ms p50 added']:.3f}** | {f['ttft_ms p99 added']:.3f} "
            f"| {f['latency_ms p50 direct']:.3f} / {f['latency_ms p50 gateway']:.3f} / "
            f"**{f['latency_ms p50 added']:.3f}** | {f['latency_ms p99 added']:.3f} "
            f"| {f['cpu_ms gateway']:.3f} | {int(f['requests'])} |"
        )
    text, call = figs[TEXT.name], figs[CALL.name]
    rows.append(
        f"| tool call - text | {call['ttft_ms p50 added'] - text['ttft_ms p50 added']:+.3f} "
        f"| {call['ttft_ms p99 added'] - text['ttft_ms p99 added']:+.3f} "
        f"| {call['latency_ms p50 added'] - text['latency_ms p50 added']:+.3f} "
        f"| {call['latency_ms p99 added'] - text['latency_ms p99 added']:+.3f} "
        f"| {call['cpu_ms gateway'] - text['cpu_ms gateway']:+.3f} | |"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.tools_bench", description=__doc__)
    ap.add_argument("--chunks", type=int, default=50, help="events per upstream answer")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per cell")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per contender")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the gateway to a core")
    ap.add_argument("--json", type=Path, help="also write every cell's figures here")
    opts = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tools-bench-") as tmp:
        try:
            result = measure(opts, Path(tmp))
        except Exception:
            logs = Path(tmp) / "logs"
            for log in sorted(logs.glob("*.log")) if logs.exists() else []:
                sys.stderr.write(f"--- {log.name}\n{log.read_text()[-2000:]}\n")
            raise
    result["figures"] = figures(result["cells"], opts.rounds)
    result["settings"] = {
        "model": MODEL,
        "prompt": PROMPT,
        "max_tokens": MAX_TOKENS,
        "concurrency": opts.concurrency,
        "duration_s": opts.duration,
        "rounds": opts.rounds,
    }
    sys.stdout.write(
        f"{opts.chunks} events per answer, c={opts.concurrency}, {opts.rounds} rounds of "
        f"{opts.duration:g} s, {result['cores']}; milliseconds, medians over rounds\n\n"
    )
    sys.stdout.write(table(result["figures"]) + "\n")
    if opts.json:
        opts.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return result


if __name__ == "__main__":
    main()
