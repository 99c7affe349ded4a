"""Instructions per chat request (valgrind's callgrind): a CPU figure a busy machine cannot move.

On a shared 2-core machine the same commit's req/s and CPU seconds per request swing by 30-50%
from run to run (another tenant's load, the clock, the caches). Callgrind counts the
instructions the gateway executes, which depend on the code and its inputs only, so an A/B of
two commits is a few percent apart reliably where their throughput is not. It is a proxy for
CPU per request, not a latency: Python runs ~50x slower under valgrind.

``minitoolai serve`` starts as the chat bench starts it (``bench.contenders``: fresh data dir,
one account, in front of ``bench.upstream``), under ``valgrind --tool=callgrind
--instr-atstart=no``, so start-up is not counted. After ``--warmup`` requests, counting is
switched on for ``--requests`` sequential chat requests (c=1: nothing to batch) on one
keep-alive connection, then dumped; the instructions are divided by the requests.

Per relayed event: ``--per-event`` counts streamed requests of ``--chunks`` events and of 10,
and divides the difference by the events between (what one more event costs, the request's own
cost taken out). ``--chunk-delay-ms`` spaces the upstream's events out (5 ms: each arrives in a
network read of its own and leaves in a write of its own, as a real model's tokens do; 0: a
stream arrives in one read and its events leave batched).

``--cpu`` measures the same in CPU time instead (user + system, from ``/proc/<pid>/stat``,
without valgrind, ``--concurrency`` connections at once): the figure the goals are stated in,
which a busy machine moves; compare commits by instructions.

Run: ``python -m bench.instructions [--database sqlite postgres] [--requests 200] [--stream]
[--per-event] [--chunks 50] [--chunk-delay-ms 5] [--cpu --concurrency 8]``.
``--keep DIR`` keeps the dumps, for ``callgrind_annotate --inclusive=yes``.
Another commit: ``PYTHONPATH=/its/worktree/src python -m bench.instructions ...``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from bench import pg
from bench.cli import start_upstream
from bench.contenders import Context, start_minitoolai
from bench.procs import Cores
from bench.workload import SCENARIOS

_TOTALS = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def _requests(url: str, headers: dict[str, str], body: bytes, n: int) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=600)
    try:
        for _ in range(n):
            conn.request("POST", parts.path, body, {**headers, "Content-Type": "application/json"})
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {answer[:300]!r}")
    finally:
        conn.close()


def _cpu_s(pid: int) -> float:
    """The process's user + system CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def measure(
    database: str,
    requests: int,
    warmup: int,
    stream: bool,
    postgres_url: str,
    chunks: int = 50,
    delay_ms: float = 0.0,
    keep: Path | None = None,
    cpu_concurrency: int = 0,
) -> float:
    """Instructions per request of one ``serve`` process; with ``cpu_concurrency``, its CPU
    seconds per request instead, that many connections at once, without valgrind."""
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        work = Path(tmp)
        upstream, upstream_url = start_upstream(work, Cores(), chunks, delay_ms)
        out = work / "callgrind.out"
        ctx = Context(work=work, upstream=upstream_url, cores=Cores(), postgres_url=postgres_url)
        valgrind = (
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}.%p",
        )
        prefix: tuple[str, ...] = () if cpu_concurrency else valgrind
        running = start_minitoolai(ctx, database, prefix=prefix, start_timeout=600)
        try:
            assert running.proc is not None
            body = SCENARIOS["stream" if stream else "nonstream"].body()
            _requests(running.url, running.headers, body, warmup)
            pid = running.proc.pid
            if cpu_concurrency:
                each = [requests // cpu_concurrency] * cpu_concurrency
                before = _cpu_s(pid)
                with ThreadPoolExecutor(cpu_concurrency) as pool:
                    done = [
                        pool.submit(_requests, running.url, running.headers, body, n) for n in each
                    ]
                    for one in done:
                        one.result()
                return (_cpu_s(pid) - before) / sum(each)
            _control(pid, "--instr=on")
            _requests(running.url, running.headers, body, requests)
            _control(pid, "--dump")
            _control(pid, "--instr=off")
            time.sleep(0.5)
            dumps = sorted(work.glob("callgrind.out.*"))
            counted = sum(
                int(m.group(1)) for d in dumps for m in [_TOTALS.search(d.read_bytes())] if m
            )
            if keep is not None:  # for callgrind_annotate
                keep.mkdir(parents=True, exist_ok=True)
                for d in dumps:
                    shutil.copy(d, keep / f"{database}-{chunks}-{d.name}")
        finally:
            running.stop()
            upstream.stop()
        return counted / requests


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    ap.add_argument("--database", nargs="+", default=["sqlite"], choices=["sqlite", "postgres"])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--stream", action="store_true", help="streamed requests")
    ap.add_argument("--chunks", type=int, default=50, help="content events per streamed answer")
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0, help="between upstream events")
    ap.add_argument("--per-event", action="store_true", help="instructions per relayed event")
    ap.add_argument("--postgres-url", default=pg.DEFAULT_URL, help="its database is wiped")
    ap.add_argument("--keep", type=Path, help="a folder to keep the dumps in (callgrind_annotate)")
    ap.add_argument("--cpu", action="store_true", help="CPU time, not instructions (no valgrind)")
    ap.add_argument("--concurrency", type=int, default=8, help="connections at once, with --cpu")
    args = ap.parse_args(argv)
    if args.per_event:
        _per_event(args)
        return
    cpu = args.concurrency if args.cpu else 0
    kind = "streamed" if args.stream else "non-streamed"
    what = f"CPU time (c={cpu})" if cpu else "instructions (c=1)"
    print(f"| database | {what} per {kind} request ({args.requests} requests) |")
    print("|---|---|")
    for database in args.database:
        per = measure(
            database,
            args.requests,
            args.warmup,
            args.stream,
            args.postgres_url,
            args.chunks,
            args.chunk_delay_ms,
            args.keep,
            cpu,
        )
        shown = f"{per * 1e3:.3f} CPU ms" if cpu else f"{per / 1e6:.3f} M"
        print(f"| {database} | {shown} |", flush=True)


def _per_event(args: argparse.Namespace) -> None:
    few = 10
    cpu = args.concurrency if args.cpu else 0
    if args.chunks <= few:
        raise SystemExit(f"--per-event needs --chunks above {few}")
    print(
        f"| database | per relayed event ({args.chunk_delay_ms:g} ms apart) | {few} events "
        f"| {args.chunks} events |"
    )
    print("|---|---|---|---|")
    for database in args.database:
        counts = [
            measure(
                database,
                args.requests,
                args.warmup,
                True,
                args.postgres_url,
                chunks,
                args.chunk_delay_ms,
                args.keep,
                cpu,
            )
            for chunks in (few, args.chunks)
        ]
        per = (counts[1] - counts[0]) / (args.chunks - few)
        if cpu:
            shown = f"{per * 1e6:.1f} us | {counts[0] * 1e3:.3f} ms | {counts[1] * 1e3:.3f} ms"
        else:
            shown = f"{per / 1e3:.1f} k | {counts[0] / 1e6:.3f} M | {counts[1] / 1e6:.3f} M"
        print(f"| {database} | {shown} |", flush=True)


if __name__ == "__main__":
    main()
