"""Throughput with 1 and 2 ``minitoolai serve`` replicas on one PostgreSQL.

The same parts as ``python -m bench``: the fake upstream (``bench.upstream``), the request
bodies of ``bench.workload``, the closed-loop keep-alive clients of ``bench.loadgen``. What
differs: ``--concurrency`` connections are spread round-robin over the replicas' URLs (as a
load balancer would), driven from one process of their own (``python -m bench.replicas_bench
load``), and the replicas are not pinned: a second replica is only worth something with a
second core to run on, so the figure this bench exists for is the ratio between the rows on
the machine it ran on. Each replica count gets a wiped database (``--postgres-url``, a
``bench*`` database: see ``bench.pg``) and one account made with the CLI; every replica has
the hold, the settle and the usage row of every request on the one database.

    python -m bench.replicas_bench --duration 5 --concurrency 32

prints, per replica count and scenario: requests/s, latency p50 and p99 (ms), errors.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.aio import run
from bench.cli import start_upstream
from bench.contenders import Context
from bench.gateway import Home, create_account, fresh_home, start_serve
from bench.loadgen import Stats, Window, build_request, client, percentiles
from bench.procs import REPO, Cores, Proc
from bench.workload import MODEL, SCENARIOS, Scenario

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench_replicas"


# -- the load: bench.loadgen's clients, spread over several URLs -----------------------------


async def drive(
    urls: list[str], body: bytes, headers: list[tuple[str, str]], opts: Any
) -> dict[str, Any]:
    """``opts.concurrency`` closed-loop clients, client ``i`` on ``urls[i % len(urls)]``."""
    window = Window()
    window.stop = time.perf_counter() + opts.warmup + opts.duration + 60  # a hard bound
    per_url = {url: Stats() for url in urls}
    tasks = []
    for i in range(opts.concurrency):
        url = urls[i % len(urls)]
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        request = build_request(url, body, headers)
        task = client(host, port, request, window, per_url[url], opts.timeout, 10_000_000)
        tasks.append(asyncio.create_task(task))
    await asyncio.sleep(opts.warmup)
    window.start = time.perf_counter()
    window.end = window.start + opts.duration
    window.stop = window.end
    await asyncio.sleep(opts.duration)
    _, pending = await asyncio.wait(tasks, timeout=2.0)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    latencies = [t for stats in per_url.values() for t in stats.latencies]
    errors: Counter[str] = Counter()
    for stats in per_url.values():
        errors.update(stats.errors)
    return {
        "requests": len(latencies),
        "rps": len(latencies) / opts.duration,
        "latency_ms": percentiles(latencies),
        "errors": dict(errors),
        "requests_per_replica": [len(per_url[url].latencies) for url in urls],
    }


def load_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.replicas_bench load")
    ap.add_argument("--url", action="append", required=True, help="repeat: one per replica")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--body-file", required=True)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    opts = ap.parse_args(argv)
    headers = [(k.strip(), v.strip()) for k, v in (h.split(":", 1) for h in opts.header)]
    body = Path(opts.body_file).read_bytes()
    result = run(drive(opts.url, body, headers, opts))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


def measure_cell(
    ctx: Context, urls: list[str], key: str, scenario: Scenario, opts: argparse.Namespace
) -> dict[str, Any]:
    body = scenario.write_body(ctx.work)
    cmd = [ctx.python, "-m", "bench.replicas_bench", "load", "--body-file", str(body)]
    for url in urls:
        cmd += ["--url", url + "/v1/chat/completions"]
    cmd += ["--header", f"Authorization: Bearer {key}"]
    cmd += ["--concurrency", str(opts.concurrency), "--duration", str(opts.duration)]
    cmd += ["--warmup", str(opts.warmup)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO, timeout=opts.duration + opts.warmup + 120
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load driver failed:\n{done.stderr[-2000:]}")
    result: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the replicas --------------------------------------------------------------------------


def start_replicas(ctx: Context, home: Home, count: int) -> tuple[list[Proc], list[str]]:
    procs, urls = [], []
    try:
        for i in range(count):
            proc, url = start_serve(ctx, home, f"serve-{count}-{i}")
            procs.append(proc)
            urls.append(url)
    except BaseException:
        for proc in procs:
            proc.stop()
        raise
    return procs, urls


def config(ctx: Context, folder: Path) -> Path:
    path = folder / "config.toml"
    path.write_text(
        f'[providers.fake]\nbase_url = "{ctx.upstream}/v1"\napi_key = "sk-upstream-fake"\n'
        f'timeout_s = 60\n\n[[deployments]]\nmodel = "{MODEL}"\nprovider = "fake"\n'
    )
    return path


def measure(opts: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    cores = Cores()  # nothing pinned: replicas, database, clients share the machine
    upstream, upstream_url = start_upstream(work, cores, opts.chunks, 0.0)
    ctx = Context(work=work, upstream=upstream_url, cores=cores, postgres_url=opts.postgres_url)
    rows: list[dict[str, Any]] = []
    try:
        for count in opts.replicas:
            settings = {
                "MINITOOLAI_LOCAL_DEFAULT": "false",
                "MINITOOLAI_LOCAL_SPEECH": "false",
                "MINITOOLAI_IMAGE_WORKERS": "0",
            }
            home = fresh_home(ctx, f"replicas-{count}", settings, "postgres")
            home.env["MINITOOLAI_CONFIG"] = str(config(ctx, home.path))
            key = create_account(ctx, home, "bench", "1000000")
            procs, urls = start_replicas(ctx, home, count)
            try:
                for name in opts.scenarios:
                    cell = measure_cell(ctx, urls, key, SCENARIOS[name], opts)
                    rows.append({"replicas": count, "scenario": name, **cell})
            finally:
                for proc in procs:
                    proc.stop()
    finally:
        upstream.stop()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| replicas | scenario | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lat = r["latency_ms"] or {"p50": float("nan"), "p99": float("nan")}
        errors = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
        lines.append(
            f"| {r['replicas']} | {r['scenario']} | {r['rps']:.0f} | {lat['p50']:.2f} "
            f"| {lat['p99']:.2f} | {errors} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["load"]:
        load_main(argv[1:])
        return []
    ap = argparse.ArgumentParser(prog="python -m bench.replicas_bench", description=__doc__)
    ap.add_argument("--replicas", default="1,2", help="comma list of replica counts")
    ap.add_argument("--scenarios", default="nonstream,stream", help="nonstream, stream")
    ap.add_argument("--concurrency", type=int, default=32, help="connections, over all replicas")
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per cell")
    ap.add_argument("--chunks", type=int, default=50, help="content events per upstream answer")
    ap.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="a bench* database: wiped")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    opts = ap.parse_args(argv)
    opts.replicas = [int(n) for n in opts.replicas.split(",")]
    opts.scenarios = opts.scenarios.split(",")
    with tempfile.TemporaryDirectory(prefix="replicas-bench-") as tmp:
        try:
            rows = measure(opts, Path(tmp))
        except Exception:
            logs = Path(tmp) / "logs"
            for log in sorted(logs.glob("*.log")) if logs.exists() else []:
                sys.stderr.write(f"--- {log.name}\n{log.read_text()[-2000:]}\n")
            raise
    sys.stdout.write(
        f"c={opts.concurrency} over all replicas, {opts.duration:g} s per cell, PostgreSQL, "
        "nothing pinned\n\n" + table(rows) + "\n"
    )
    if opts.json:
        opts.json.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
    return rows


if __name__ == "__main__":
    main()
