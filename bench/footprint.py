"""The gateway's footprint (issue 16): start-up time, memory at idle and under load, and what
holds that memory.

``minitoolai serve`` is started as a real process, as the chat bench starts it: in front of the
fake upstream (``bench.upstream``), no local engine, no image workers, an account made with the
CLI first (which also migrates the database). For each database it prints:

- start -> first chat answer: from ``exec`` to the first 200 of a chat completion, polled every
  10 ms (a fresh process for this alone, so no other request warms it), and the CPU seconds the
  process used until then (what a busy machine cannot inflate much);
- RSS at idle: a second fresh process, 2 s after ``/healthz`` first answers, no chat yet;
- RSS after the first chat answer;
- peak RSS under load: ``bench.loadgen``, non-streamed, ``--concurrency`` connections for
  ``--duration`` seconds, sampled every 50 ms; and the RSS once the load stopped.

``--breakdown`` prints what holds the memory, each part in a fresh interpreter: RSS after
importing each top-level package in the order the gateway imports them, the RSS of each
start-up stage, and tracemalloc's Python allocations at idle grouped by package (Python
objects only: the tokenizer's tables live in Rust, the stage table shows them).

RSS and start time hold up on a busy machine far better than throughput does; the figures of a
shared machine are still within a few MB and ~100 ms. Run:
``python -m bench.footprint [--database sqlite postgres] [--rounds 3] [--breakdown]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench import pg
from bench.contenders import ADMIN_KEY, UPSTREAM_KEY, base_env
from bench.procs import (
    REPO,
    Proc,
    TreeMeter,
    cpu_seconds,
    free_port,
    rss_bytes,
    start,
    tree_pids,
    wait_http,
)
from bench.workload import MODEL, SCENARIOS

MB = 2**20


@dataclass
class Round:
    first_answer_s: float
    first_answer_cpu_s: float  # the server's CPU seconds until then: holds up on a busy machine
    idle_mb: float
    after_first_mb: float
    peak_load_mb: float
    after_load_mb: float
    rps: float


def _config(upstream: str) -> str:
    return (
        "[providers.fake]\n"
        f'base_url = "{upstream}/v1"\n'
        f'api_key = "{UPSTREAM_KEY}"\n'
        "timeout_s = 60\n\n"
        "[[deployments]]\n"
        f'model = "{MODEL}"\n'
        'provider = "fake"\n'
    )


def gateway_env(home: Path, upstream: str, postgres_url: str | None) -> dict[str, str]:
    """The environment of a chat-only gateway: no local engine, no image workers."""
    config = home / "config.toml"
    config.write_text(_config(upstream))
    env = base_env() | {
        "MINITOOLAI_CONFIG": str(config),
        "MINITOOLAI_DATA_DIR": str(home / "data"),
        "MINITOOLAI_ADMIN_KEY": ADMIN_KEY,
        "MINITOOLAI_LOCAL_DEFAULT": "false",
        "MINITOOLAI_LOCAL_SPEECH": "false",
        "MINITOOLAI_IMAGE_WORKERS": "0",
    }
    if postgres_url:
        env["MINITOOLAI_DATABASE_URL"] = postgres_url
    return env


def _account(env: dict[str, str]) -> str:
    cmd = [sys.executable, "-m", "minitoolai", "accounts", "create", "fp", "--credit", "100000"]
    done = subprocess.run(
        [*cmd, "--json"], env=env, capture_output=True, timeout=180, check=False, cwd=REPO
    )
    if done.returncode != 0:
        raise RuntimeError(f"accounts create failed:\n{done.stderr.decode()[-2000:]}")
    return str(orjson.loads(done.stdout)["api_key"])


def _serve(env: dict[str, str], logs: Path, name: str) -> tuple[Proc, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "minitoolai", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return start(name, cmd, logs, env=env), f"http://127.0.0.1:{port}"


def _chat(base: str, key: str, timeout: float = 5.0) -> bool:
    req = urllib.request.Request(
        base + "/v1/chat/completions",
        data=SCENARIOS["nonstream"].body(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _rss_mb(proc: Proc) -> float:
    return rss_bytes(tree_pids(proc.pid)) / MB


def time_to_first_answer(env: dict[str, str], key: str, logs: Path) -> tuple[float, float]:
    """Wall seconds from exec to the first chat answer, and the CPU seconds serve used."""
    started = time.monotonic()
    proc, base = _serve(env, logs, "first-answer")
    try:
        while time.monotonic() - started < 60:
            if not proc.alive():
                raise RuntimeError(f"serve exited:\n{proc.tail()}")
            if _chat(base, key, timeout=2.0):
                return time.monotonic() - started, cpu_seconds(tree_pids(proc.pid))
            time.sleep(0.01)
        raise RuntimeError("no chat answer within 60 s")
    finally:
        proc.stop()


def one_round(env: dict[str, str], key: str, work: Path, args: argparse.Namespace) -> Round:
    logs = work / "logs"
    first, first_cpu = time_to_first_answer(env, key, logs)
    proc, base = _serve(env, logs, "serve")
    try:
        wait_http(proc, base + "/healthz", timeout=60)
        time.sleep(2.0)
        idle = _rss_mb(proc)
        if not _chat(base, key):
            raise RuntimeError(f"the first chat failed:\n{proc.tail()}")
        time.sleep(0.5)
        after_first = _rss_mb(proc)
        body = SCENARIOS["nonstream"].write_body(work)
        meter = TreeMeter(lambda: tree_pids(proc.pid), interval=0.05)
        meter.begin()
        load = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.loadgen",
                "--url",
                base + "/v1/chat/completions",
                "--header",
                f"Authorization: Bearer {key}",
                "--body-file",
                str(body),
                "--concurrency",
                str(args.concurrency),
                "--duration",
                str(args.duration),
                "--warmup",
                "0.5",
            ],
            capture_output=True,
            timeout=args.duration + 60,
            check=False,
            cwd=REPO,
        )
        meter.end()
        if load.returncode != 0:
            raise RuntimeError(f"loadgen failed:\n{load.stderr.decode()[-2000:]}")
        result = orjson.loads(load.stdout.splitlines()[-1])
        if result["errors"] or set(result["statuses"]) - {"200"}:
            raise RuntimeError(f"requests failed under load: {result}\n{proc.tail()}")
        time.sleep(0.5)
        return Round(
            first_answer_s=first,
            first_answer_cpu_s=first_cpu,
            idle_mb=idle,
            after_first_mb=after_first,
            peak_load_mb=meter.peak_rss / MB,
            after_load_mb=_rss_mb(proc),
            rps=float(result["rps"]),
        )
    finally:
        proc.stop()


def _postgres_url(args: argparse.Namespace) -> str:
    """The bench database, wiped; another (one the caller owns) only with ``--wipe``."""
    url: str = args.postgres_url
    if url.rsplit("/", 1)[-1].startswith("bench"):
        pg.reset(url)
    elif args.wipe:
        _wipe(url)
    else:
        raise SystemExit(f"{url}: not a bench database; pass --wipe if it is yours to empty")
    return url


def _wipe(url: str) -> None:
    code = (
        "import asyncio, asyncpg, sys\n"
        "async def main(dsn):\n"
        "    c = await asyncpg.connect(dsn)\n"
        "    await c.execute('DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public')\n"
        "    await c.close()\n"
        "asyncio.run(main(sys.argv[1]))\n"
    )
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    subprocess.run([sys.executable, "-c", code, dsn], check=True, timeout=60)


def run_database(database: str, upstream: str, args: argparse.Namespace, work: Path) -> list[Round]:
    rounds = []
    for i in range(args.rounds):
        home = work / f"{database}-{i}"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        url = _postgres_url(args) if database == "postgres" else None
        env = gateway_env(home, upstream, url)
        key = _account(env)
        rounds.append(one_round(env, key, home, args))
        r = rounds[-1]
        print(
            f"  {database} round {i + 1}: first answer {r.first_answer_s:.2f} s "
            f"({r.first_answer_cpu_s:.2f} CPU s), idle "
            f"{r.idle_mb:.0f} MB, after first {r.after_first_mb:.0f} MB, peak "
            f"{r.peak_load_mb:.0f} MB ({r.rps:.0f} req/s)",
            file=sys.stderr,
            flush=True,
        )
    return rounds


def print_table(results: dict[str, list[Round]], args: argparse.Namespace) -> None:
    print(
        f"\nminitoolai serve, chat only (fake upstream), median of {args.rounds} rounds; "
        f"load: non-streamed, c={args.concurrency}, {args.duration:.0f} s"
    )
    print(
        f"{'database':10} {'start->answer':>14} {'(CPU s)':>8} {'idle RSS':>9} {'after 1st':>10} "
        f"{'peak load':>10} {'after load':>11} {'req/s':>7}"
    )
    for database, rounds in results.items():

        def med(field: str, rounds: list[Round] = rounds) -> float:
            return statistics.median(getattr(r, field) for r in rounds)

        print(
            f"{database:10} {med('first_answer_s'):>12.2f} s {med('first_answer_cpu_s'):>8.2f} "
            f"{med('idle_mb'):>6.0f} MB "
            f"{med('after_first_mb'):>7.0f} MB {med('peak_load_mb'):>7.0f} MB "
            f"{med('after_load_mb'):>8.0f} MB {med('rps'):>7.0f}"
        )


# -- what holds the memory ------------------------------------------------------------------------

#: runs in a fresh interpreter: RSS after each top-level package, in the order the gateway's
#: serve factory imports them (read from ``-X importtime``)
_BY_PACKAGE = """
import os, sys, importlib
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
start = rss()
print(f'{"(interpreter)":28} {start:7.1f}')
for name in sys.argv[1:]:
    before = rss()
    try:
        importlib.import_module(name)
    except ImportError:  # an optional import some package tried (msvcrt, winreg)
        continue
    print(f'{name:28} {rss() - before:+7.1f}')
print(f'{"(total)":28} {rss():7.1f}')
"""

#: runs in a fresh interpreter with the gateway's environment: the RSS of each start-up stage,
#: or (``trace``) tracemalloc's idle heap by package: a module's code objects are counted for
#: the module whose ``import`` loaded it, so a package's own submodules count for it
_STAGES = """
import asyncio, collections, os, sys, tracemalloc
trace = sys.argv[1] == 'trace'
if trace:
    tracemalloc.start(10)
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
marks = [('interpreter', rss())]
import minitoolai.cli
marks.append(('import minitoolai.cli (serve runs in it)', rss()))
import minitoolai.app
marks.append(('import minitoolai.app', rss()))
app = minitoolai.app.create_serve_app()
async def main():
    async with app.router.lifespan_context(app):
        marks.append(('lifespan start-up (services, tokenizer, freeze)', rss()))
        if trace:
            snap = tracemalloc.take_snapshot()
            by = collections.Counter()
            for stat in snap.statistics('traceback'):
                # the innermost frame outside importlib: a module's code objects count for
                # the module that imported it (its package, mostly), the rest where made
                frames = [f for f in stat.traceback if not f.filename.startswith('<frozen')]
                path = frames[-1].filename if frames else '(importlib)'
                parts = path.split(os.sep)
                if 'site-packages' in parts:
                    key = parts[parts.index('site-packages') + 1]
                elif 'minitoolai' in parts:
                    i = parts.index('minitoolai')
                    key = 'minitoolai.' + parts[i + 1].removesuffix('.py')
                elif 'python3' in path:
                    key = '(stdlib) ' + parts[-1]
                else:
                    key = path
                by[key.removesuffix('.py')] += stat.size
            total = sum(by.values())
            ours = sum(v for k, v in by.items() if k.startswith('minitoolai'))
            print(f'tracemalloc at idle: {total / 2**20:.1f} MB of Python objects')
            for key, size in by.most_common(20):
                print(f'  {key:40} {size / 2**20:6.2f} MB')
            print(f'  {"minitoolai.* (all its modules)":40} {ours / 2**20:6.2f} MB')
asyncio.run(main())
if not trace:
    prev = 0.0
    for name, value in marks:
        print(f'{name:50} {value:7.1f} MB {value - prev:+7.1f}')
        prev = value
"""


def _import_order(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import minitoolai.cli, minitoolai.app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=REPO,
    )
    order: list[str] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        name = line.rsplit("|", 1)[1].strip()
        if name in ("package", "imported package") or not name:
            continue
        top = name.split(".")[0]
        if top == "minitoolai":
            top = ".".join(name.split(".")[:2])
        # children print before their parents: the first leaf seen is the first loaded
        if top not in order and not top.startswith("_"):
            order.append(top)
    return order


def breakdown(upstream: str, work: Path) -> None:
    home = work / "breakdown"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = gateway_env(home, upstream, None)
    _account(env)  # migrate, as serve's restart would find it
    order = _import_order(env)
    print("\nRSS added by each top-level package, imported in the gateway's order (MB):")
    out = subprocess.run(
        [sys.executable, "-c", _BY_PACKAGE, *order],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=REPO,
    ).stdout
    rows = [line for line in out.splitlines() if line.strip()]
    head, tail, body = rows[0], rows[-1], rows[1:-1]
    body.sort(key=lambda line: -float(line.split()[-1]))
    print(head)
    for line in body[:25]:
        print(line)
    print(f"  ... {max(0, len(body) - 25)} more")
    print(tail)
    for mode in ("stages", "trace"):
        done = subprocess.run(
            [sys.executable, "-c", _STAGES, mode],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=REPO,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        if mode == "stages":
            print("\nRSS of each start-up stage (one process, serve's factory):")
        print(done.stdout)


def _start_upstream(logs: Path) -> tuple[Proc, str]:
    proc = start(
        "upstream",
        [sys.executable, "-m", "bench.upstream", "--port", "0"],
        logs,
        env=base_env(),
        stdout=subprocess.PIPE,
    )
    assert proc.popen.stdout is not None
    line = proc.popen.stdout.readline().decode()
    if not line.startswith("READY"):
        proc.stop()
        raise RuntimeError(f"the upstream did not start:\n{proc.tail()}")
    return proc, f"http://127.0.0.1:{line.split()[1]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.footprint", description=__doc__)
    ap.add_argument("--database", nargs="+", choices=["sqlite", "postgres"], default=["sqlite"])
    ap.add_argument("--postgres-url", default=pg.DEFAULT_URL)
    ap.add_argument("--wipe", action="store_true", help="empty a non-bench --postgres-url")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--breakdown", action="store_true", help="also: what holds the memory")
    ap.add_argument("--only-breakdown", action="store_true")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="minitoolai-footprint-"))
    upstream, url = _start_upstream(work / "logs")
    try:
        if not args.only_breakdown:
            results = {db: run_database(db, url, args, work) for db in args.database}
            print_table(results, args)
        if args.breakdown or args.only_breakdown:
            breakdown(url, work)
    finally:
        upstream.stop()
        if not os.environ.get("FOOTPRINT_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
