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

Run: ``python -m bench.instructions [--database sqlite postgres] [--requests 200] [--stream]
[--per-event] [--chunks 50] [--chunk-delay-ms 5]``.
``--keep DIR`` keeps the dumps, for ``callgrind_annotate --inclusive=yes``.
Another commit: ``PYTHONPATH=/its/worktree/src python -m bench.instructions ...``.
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import subprocess
import tempfile
import time
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
) -> float:
    """Instructions per request of one ``serve`` process."""
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        work = Path(tmp)
        upstream, upstream_url = start_upstream(work, Cores(), chunks, delay_ms)
        out = work / "callgrind.out"
        ctx = Context(work=work, upstream=upstream_url, cores=Cores(), postgres_url=postgres_url)
        prefix = (
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={out}.%p",
        )
        running = start_minitoolai(ctx, database, prefix=prefix, start_timeout=600)
        try:
            assert running.proc is not None
            body = SCENARIOS["stream" if stream else "nonstream"].body()
            _requests(running.url, running.headers, body, warmup)
            pid = running.proc.pid
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
    args = ap.parse_args(argv)
    if args.per_event:
        _per_event(args)
        return
    kind = "streamed" if args.stream else "non-streamed"
    print(f"| database | instructions per {kind} request (c=1, {args.requests} requests) |")
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
        )
        print(f"| {database} | {per / 1e6:.3f} M |", flush=True)


def _per_event(args: argparse.Namespace) -> None:
    few = 10
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
            )
            for chunks in (few, args.chunks)
        ]
        per = (counts[1] - counts[0]) / (args.chunks - few)
        print(
            f"| {database} | {per / 1e3:.1f} k | {counts[0] / 1e6:.3f} M "
            f"| {counts[1] / 1e6:.3f} M |",
            flush=True,
        )


if __name__ == "__main__":
    main()
