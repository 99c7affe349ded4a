"""``python -m bench``: one run, one machine, every contender behind the same upstream and load.

The run: start the fake upstream (client core), then for each contender in turn start it
(gateway core), check it answers both chat scenarios correctly, drive every scenario x
concurrency cell, optionally profile it, stop it. Then this project's own scenarios beyond
chat (image-job overhead, the local engine's tokens/s, speech), then the ledger throughput,
then the report. Every process started is stopped by its own id, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import traceback
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import images_bench, local_bench, pg, profiling, report, speech_bench
from bench.contenders import CONTENDERS, Context, Running, minitoolai_version
from bench.images_bench import ImageLoad
from bench.local_bench import LocalLoad
from bench.procs import REPO, Cores, Proc, pinned, postgres_pinned, start
from bench.runner import Load, run_cell, wait_idle
from bench.speech_bench import SpeechLoad
from bench.workload import SCENARIOS, Scenario

BENCH = Path(__file__).resolve().parent
QUICK_NOTE = "Quick smoke run (seconds per cell): checks the harness, not a measurement."
#: this project's scenarios beyond the chat comparison (each its own section of the report)
OWN_SCENARIOS = ("images", "local", "speech")
ALL_SCENARIOS = (*SCENARIOS, *OWN_SCENARIOS)


@dataclass
class Options:
    contenders: list[str]
    scenarios: list[str]
    load: Load
    chunks: int = 50
    chunk_delay_ms: float = 0.0
    postgres_url: str = pg.DEFAULT_URL
    out: Path = BENCH / "results"
    note: str = ""
    pin: bool = True
    chart: bool = True
    ledger: bool = True
    ledger_databases: tuple[str, ...] = ("sqlite", "postgres")
    ledger_duration: float = 5.0
    ledger_concurrency: int = 32
    ledger_accounts: int = 64
    profile: bool = False
    profile_concurrency: int = 64
    breakdown: bool = True
    breakdown_calls: int = 500
    images: ImageLoad = field(default_factory=ImageLoad)
    local: LocalLoad = field(default_factory=LocalLoad)
    speech: SpeechLoad = field(default_factory=SpeechLoad)

    @property
    def chat_scenarios(self) -> list[str]:
        return [s for s in self.scenarios if s in SCENARIOS]


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse_args(argv: list[str] | None) -> Options:
    ap = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the MiniToolAI gateway against direct calls, LiteLLM and Portkey, "
        "all in front of the same fake upstream, under the same load. See bench/README.md.",
    )
    ap.add_argument("--quick", action="store_true", help="seconds-long smoke run (c=1,16; 1 s)")
    ap.add_argument("--duration", type=float, help="measured seconds per cell (default 10)")
    ap.add_argument("--warmup", type=float, help="unmeasured seconds before each cell (2)")
    ap.add_argument("--concurrency", help="comma list (default 1,16,64,256)")
    ap.add_argument(
        "--contenders",
        default=",".join(name for name, c in CONTENDERS.items() if c.default),
        help=f"comma list of {', '.join(CONTENDERS)} (default: all but variants)",
    )
    ap.add_argument(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help="comma list of nonstream, stream (the chat comparison), images (image-job "
        "overhead), local (local engine tokens/s), speech (speech real-time factor); "
        "default: all",
    )
    ap.add_argument(
        "--loadgen",
        choices=("auto", "python", "wrk"),
        default="auto",
        help="auto: wrk for non-streaming cells when installed, Python for streams (TTFT)",
    )
    ap.add_argument("--chunks", type=int, default=50, help="content events per upstream answer")
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0, help="upstream gap per event")
    ap.add_argument("--postgres-url", default=pg.DEFAULT_URL, help="its database is wiped")
    ap.add_argument("--out", type=Path, default=BENCH / "results", help="report folder")
    ap.add_argument("--note", default="", help="a line printed at the top of the report")
    ap.add_argument("--no-pin", action="store_true", help="do not taskset the processes")
    ap.add_argument("--no-chart", action="store_true", help="skip the PNG")
    ap.add_argument("--no-ledger", action="store_true", help="skip the ledger throughput")
    ap.add_argument("--ledger-databases", default="sqlite,postgres")
    ap.add_argument("--ledger-duration", type=float, help="seconds per ledger cell (default 5)")
    ap.add_argument(
        "--no-breakdown", action="store_true", help="skip the per-component CPU breakdown"
    )
    ap.add_argument("--breakdown-calls", type=int, help="calls per breakdown part (500)")
    ap.add_argument("--profile", action="store_true", help="py-spy this project under load")
    ap.add_argument("--profile-concurrency", type=int, default=64)
    ap.add_argument(
        "--image-setups",
        default=",".join(images_bench.SETUPS),
        help="images: comma list of sqlite, postgres, postgres-worker (default: all)",
    )
    ap.add_argument("--image-concurrency", default="1,16", help="images: jobs in flight")
    ap.add_argument("--image-duration", type=float, help="images: seconds per cell (10)")
    ap.add_argument("--image-poll-ms", type=float, default=10.0, help="images: poll interval")
    ap.add_argument(
        "--image-pollers",
        type=int,
        default=32,
        help="images: keyless pollers flooding one extra cell per setup, at the highest "
        "concurrency (0: no such cell)",
    )
    ap.add_argument("--local-max-tokens", type=int, help="local: tokens per answer (128)")
    ap.add_argument("--local-runs", type=int, help="local: measured runs per side (3)")
    ap.add_argument("--speech-formats", default="wav,mp3", help="speech: response formats")
    ap.add_argument("--speech-runs", type=int, help="speech: measured runs per side (3)")
    args = ap.parse_args(argv)

    unknown = set(_csv(args.contenders)) - set(CONTENDERS)
    if unknown:
        ap.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    bad = set(_csv(args.scenarios)) - set(ALL_SCENARIOS)
    if bad:
        ap.error(f"unknown scenarios: {', '.join(sorted(bad))}")
    bad = set(_csv(args.image_setups)) - set(images_bench.SETUPS)
    if bad:
        ap.error(f"unknown image setups: {', '.join(sorted(bad))}")
    quick = args.quick
    conc = args.concurrency or ("1,16" if quick else "1,16,64,256")
    load = Load(
        concurrency=tuple(int(c) for c in _csv(conc)),
        duration=args.duration or (1.0 if quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (0.3 if quick else 2.0),
        loadgen=args.loadgen,
    )
    return Options(
        contenders=_csv(args.contenders),
        scenarios=_csv(args.scenarios),
        load=load,
        chunks=args.chunks,
        chunk_delay_ms=args.chunk_delay_ms,
        postgres_url=args.postgres_url,
        out=args.out,
        note=args.note or (QUICK_NOTE if quick else ""),
        pin=not args.no_pin,
        chart=not args.no_chart,
        ledger=not args.no_ledger,
        ledger_databases=tuple(_csv(args.ledger_databases)),
        ledger_duration=args.ledger_duration or (1.0 if quick else 5.0),
        profile=args.profile,
        profile_concurrency=args.profile_concurrency,
        breakdown=not args.no_breakdown,
        breakdown_calls=args.breakdown_calls or (100 if quick else 500),
        images=ImageLoad(
            setups=tuple(_csv(args.image_setups)),
            concurrency=tuple(int(c) for c in _csv(args.image_concurrency)),
            duration=args.image_duration or (1.0 if quick else 10.0),
            poll_ms=args.image_poll_ms,
            pollers=args.image_pollers,
            warmup_jobs=1 if quick else 3,
        ),
        local=LocalLoad(
            max_tokens=args.local_max_tokens or (16 if quick else 128),
            runs=args.local_runs or (1 if quick else 3),
        ),
        speech=SpeechLoad(
            formats=tuple(_csv(args.speech_formats)),
            runs=args.speech_runs or (1 if quick else 3),
        ),
    )


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (OSError, ValueError):
        mem = float("nan")
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem:.0f} GiB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def start_upstream(ctx_work: Path, cores: Cores, chunks: int, delay_ms: float) -> tuple[Proc, str]:
    cmd = [sys.executable, "-m", "bench.upstream", "--port", "0", "--chunks", str(chunks)]
    cmd += ["--chunk-delay-ms", str(delay_ms)]
    proc = start("upstream", pinned(cmd, cores.client), ctx_work / "logs", stdout=subprocess.PIPE)
    assert proc.popen.stdout is not None
    line = proc.popen.stdout.readline().decode().strip()
    if not line.startswith("READY "):
        proc.stop()
        raise RuntimeError(f"the fake upstream did not start:\n{proc.tail()}")
    return proc, f"http://127.0.0.1:{line.split()[1]}"


def check_answers(running: Running, scenarios: list[Scenario], chunks: int) -> list[str]:
    """One request per scenario: fail on an error; note any answer that differs in shape."""
    notes = []
    last_word = f"w{chunks - 1}".encode()
    for scenario in scenarios:
        req = urllib.request.Request(
            running.url,
            data=scenario.body(),
            headers=running.headers | {"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        if last_word not in body:
            notes.append(f"{scenario.name}: the answer lacks the upstream's last word")
        if scenario.stream and b"[DONE]" not in body:
            notes.append(f"{scenario.name}: the stream has no [DONE]")
        if scenario.stream and b'"usage"' not in body:
            notes.append(f"{scenario.name}: the stream has no usage chunk")
    return notes


def _profile(
    ctx: Context, running: Running, scenario: Scenario, opts: Options, upstream_pid: int
) -> dict[str, Any]:
    assert running.proc is not None
    raw = ctx.work / f"profile-{running.proc.name}-{scenario.name}.txt"
    load = opts.load
    seconds = load.warmup + load.duration
    spy = profiling.start_record(running.proc.pid, seconds, raw, ctx.cores.client)
    cell = run_cell(ctx, running, scenario, opts.profile_concurrency, load, upstream_pid, False)
    _, err = spy.communicate(timeout=seconds + 60)
    summary = profiling.summarise(raw) if raw.exists() else f"py-spy failed: {err.decode()[-500:]}"
    return {
        "contender": running.proc.name,
        "scenario": scenario.name,
        "concurrency": opts.profile_concurrency,
        "rps_while_profiled": cell["rps"],
        "raw": str(raw),
        "summary": summary,
    }


def run_contender(
    name: str, ctx: Context, opts: Options, upstream: Proc, results: dict[str, Any]
) -> None:
    contender = CONTENDERS[name]
    why = contender.missing(ctx)
    if why:
        _say(f"{name}: skipped ({why})")
        results["skipped"][name] = why
        return
    _say(f"{name}: starting")
    running = contender.start(ctx)
    try:
        with postgres_pinned(ctx.cores.gateway if contender.database_cpu else ()):
            scenarios = [SCENARIOS[s] for s in opts.chat_scenarios]
            notes = check_answers(running, scenarios, opts.chunks)
            results["settings"][name] = {
                "settings": contender.settings,
                "version": running.version,
                "answer_notes": notes,
            }
            results["contenders_run"].append(name)
            for scenario in scenarios:
                for conc in opts.load.concurrency:
                    waited = wait_idle(running)
                    cell = run_cell(
                        ctx,
                        running,
                        scenario,
                        conc,
                        opts.load,
                        upstream.pid,
                        contender.database_cpu,
                    )
                    cell.update(contender=name, scenario=scenario.name, idle_wait_s=waited)
                    results["cells"].append(cell)
                    _say(_cell_line(cell))
            if opts.profile and "ours" in contender.tags:
                for scenario in scenarios:
                    wait_idle(running)
                    _say(f"{name}: profiling {scenario.name} at c={opts.profile_concurrency}")
                    results["profiles"].append(_profile(ctx, running, scenario, opts, upstream.pid))
    finally:
        running.stop()


def _cell_line(cell: dict[str, Any]) -> str:
    lat = cell["latency_ms"] or {}
    nan = float("nan")
    return (
        f"{cell['contender']:20s} {cell['scenario']:9s} c={cell['concurrency']:<4d} "
        f"{cell['rps']:9.1f} req/s  p50 {lat.get('p50', nan):7.2f} ms  "
        f"p99 {lat.get('p99', nan):7.2f} ms  errors {sum(cell['errors'].values())}"
    )


def run_ledger(ctx: Context, opts: Options) -> list[dict[str, Any]]:
    rows = []
    for database in opts.ledger_databases:
        for shape, accounts in (("hot", 1), ("spread", opts.ledger_accounts)):
            row: dict[str, Any] = {"database": database, "shape": shape}
            if database == "postgres":
                why = pg.unreachable(opts.postgres_url)
                if why:
                    rows.append(row | {"error": why})
                    continue
                pg.reset(opts.postgres_url)
                url = opts.postgres_url
            else:
                path = ctx.work / f"ledger-{shape}.db"
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
                url = f"sqlite+aiosqlite:///{path}"
            cmd = [ctx.python, "-m", "bench.ledger_bench", "--url", url]
            cmd += ["--accounts", str(accounts), "--concurrency", str(opts.ledger_concurrency)]
            cmd += ["--duration", str(opts.ledger_duration)]
            done = subprocess.run(
                pinned(cmd, ctx.cores.gateway),
                capture_output=True,
                text=True,
                timeout=opts.ledger_duration + 120,
                check=False,
                cwd=REPO,
            )
            if done.returncode != 0:
                rows.append(row | {"error": done.stderr.strip().splitlines()[-1][:300]})
                continue
            rows.append(row | orjson.loads(done.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            _say(f"ledger {database:8s} {shape:6s} {r['pairs_per_s']:8.1f} hold+settle/s")
    return rows


def run_breakdown(ctx: Context, opts: Options) -> list[dict[str, Any]]:
    """CPU per call of each part of a request (``bench.breakdown``), on the gateway core."""
    cmd = [ctx.python, "-m", "bench.breakdown", "--json", "--calls", str(opts.breakdown_calls)]
    cmd += ["--postgres-url", opts.postgres_url]
    if "postgres" not in opts.ledger_databases:
        cmd.append("--no-postgres")
    done = subprocess.run(
        pinned(cmd, ctx.cores.gateway),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )
    if done.returncode != 0:
        _say(f"breakdown failed: {done.stderr.strip().splitlines()[-1:]}")
        return []
    rows: list[dict[str, Any]] = orjson.loads(done.stdout.strip().splitlines()[-1])
    for row in rows:
        _say(f"breakdown {row['part']:40s} {row['cpu_ms']:.3f} CPU ms")
    return rows


def run(opts: Options) -> dict[str, Any]:
    """Run everything ``opts`` asks for; write the report; return the raw results."""
    out = opts.out.resolve()
    work = out / "work"
    (work / "logs").mkdir(parents=True, exist_ok=True)
    cores = Cores.split(opts.pin)
    load = opts.load
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": _machine(),
            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "cores": cores.describe(),
            "load": f"concurrency {list(load.concurrency)}, {load.duration:g} s per cell after "
            f"{load.warmup:g} s warm-up, load generator: {load.loadgen} (auto = wrk for "
            "non-streaming cells when installed, Python for streams)",
            "upstream": f"bench.upstream, {opts.chunks} content events per answer, "
            f"{opts.chunk_delay_ms:g} ms between events",
            "minitoolai": minitoolai_version(),
            "note": opts.note,
        },
        "scenarios": {s: SCENARIOS[s].title for s in opts.chat_scenarios},
        "contenders_run": [],
        "cells": [],
        "settings": {},
        "skipped": {},
        "failed": {},
        "profiles": [],
        "ledger": [],
        "breakdown": [],
    }
    _say(f"pinning: {cores.describe()}")
    chat = bool(opts.chat_scenarios and opts.contenders)
    upstream, upstream_url = (
        start_upstream(work, cores, opts.chunks, opts.chunk_delay_ms) if chat else (None, "")
    )
    try:
        ctx = Context(work=work, upstream=upstream_url, cores=cores, postgres_url=opts.postgres_url)
        for name in opts.contenders if upstream is not None else []:
            assert upstream is not None
            try:
                run_contender(name, ctx, opts, upstream, results)
            except Exception as exc:  # one broken peer must not sink the others' figures
                _say(f"{name}: failed: {exc}")
                results["failed"][name] = str(exc).splitlines()[0][:300]
                (work / "logs" / f"{name}-failure.txt").write_text(traceback.format_exc())
        run_own_scenarios(ctx, opts, results)
        if opts.ledger:
            results["ledger"] = run_ledger(ctx, opts)
        if opts.breakdown:
            results["breakdown"] = run_breakdown(ctx, opts)
    finally:
        if upstream is not None:
            upstream.stop()
    write(results, out, opts.chart)
    return results


def run_own_scenarios(ctx: Context, opts: Options, results: dict[str, Any]) -> None:
    """Image-job overhead, local engine tokens/s, speech: each into its own results key.

    A part that cannot start (PostgreSQL unreachable, the model not installed) is recorded
    under ``skipped``; one that breaks, under ``failed`` (with its traceback in the logs).
    """
    if "images" in opts.scenarios:
        images = images_bench.run_all(ctx, opts.images, _say)
        images["settings"] = images_bench.settings_note(opts.images)
        results["images"] = images
        for setup, why in images.pop("failed").items():
            key = "skipped" if why.startswith("skipped") else "failed"
            results[key][f"images:{setup}"] = why
    for name, module, load in (
        ("local", local_bench, opts.local),
        ("speech", speech_bench, opts.speech),
    ):
        if name not in opts.scenarios:
            continue
        _say(f"{name}: starting")
        try:
            figures = module.run(ctx, load, _say)
        except Exception as exc:
            _say(f"{name}: failed: {exc}")
            results["failed"][name] = str(exc).splitlines()[0][:300]
            (ctx.logs / f"{name}-failure.txt").write_text(traceback.format_exc())
            continue
        if "error" in figures:
            results["skipped"][name] = figures["error"]
            continue
        figures["settings"] = module.settings_note(load)
        results[name] = figures


def write(results: dict[str, Any], out: Path, with_chart: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    if with_chart and results["cells"]:
        why = report.chart(results, out / "chart.png")
        if why:
            results["meta"]["chart"] = f"no chart: {why}"
    (out / "report.md").write_text(report.markdown(results))
    _say(f"wrote {out / 'report.md'}")


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    results = run(opts)
    print(report.markdown(results).split("## Cells")[0])
    return 1 if results["failed"] else 0
