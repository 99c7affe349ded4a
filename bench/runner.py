"""One cell = one contender x one scenario x one concurrency, measured the same way for all.

For each cell the load generator runs in its own process on the client core(s), next to the
fake upstream; the contender has the gateway core to itself. While the generator measures,
meters read the CPU seconds and peak RSS of the contender's process tree, the upstream's and
the generator's own CPU (to show whether the client side, not the gateway, was the limit), and
for PostgreSQL the database server's CPU.
"""

from __future__ import annotations

import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench import wrk
from bench.contenders import Context, Running
from bench.procs import REPO, TreeMeter, cpu_seconds, pinned, postgres_pids, tree_pids
from bench.workload import Scenario


@dataclass(frozen=True)
class Load:
    """How hard and how long each cell pushes."""

    concurrency: tuple[int, ...] = (1, 16, 64, 256)
    duration: float = 10.0
    warmup: float = 2.0
    timeout: float = 30.0
    loadgen: str = "auto"  # auto | python | wrk

    def tool(self, scenario: Scenario) -> str:
        """wrk for non-streaming cells when installed and allowed; Python otherwise."""
        if self.loadgen == "wrk" or (self.loadgen == "auto" and not scenario.stream):
            if wrk.available():
                return "wrk"
            if self.loadgen == "wrk":
                raise RuntimeError("--loadgen wrk, but wrk is not installed")
        return "python"


@dataclass
class Meters:
    """CPU seconds of the gateway, the upstream and the database over the measured window."""

    gateway: TreeMeter | None
    upstream: TreeMeter
    database: TreeMeter | None
    wall: float = 0.0
    gateway_cpu: float | None = None
    upstream_cpu: float = 0.0
    database_cpu: float | None = None
    _t0: float = 0.0

    def begin(self) -> None:
        for m in (self.gateway, self.upstream, self.database):
            if m is not None:
                m.begin()
        self._t0 = time.perf_counter()

    def end(self) -> None:
        """Called the moment the load generator's window closes."""
        self.wall = time.perf_counter() - self._t0
        self.gateway_cpu = self.gateway.end() if self.gateway else None
        self.database_cpu = self.database.end() if self.database else None
        self.upstream_cpu = self.upstream.end()


def meters_for(running: Running, upstream_pid: int, database: bool) -> Meters:
    gateway = None
    if running.proc is not None:
        pid = running.proc.pid
        gateway = TreeMeter(lambda: tree_pids(pid))
    return Meters(
        gateway,
        TreeMeter(lambda: tree_pids(upstream_pid)),
        TreeMeter(postgres_pids) if database else None,
    )


def wait_idle(running: Running, limit: float = 20.0, quiet: float = 0.1) -> float:
    """Wait until the contender's tree uses under ``quiet`` of a core; returns seconds waited.

    A gateway keeps working on requests a load generator abandoned at the end of a cell (a
    slow one has seconds of backlog at c=256): the next cell must not start behind them.
    """
    start = time.perf_counter()
    if running.proc is None:
        time.sleep(0.2)
        return 0.0
    step = 0.25
    while time.perf_counter() - start < limit:
        before = cpu_seconds(tree_pids(running.proc.pid))
        time.sleep(step)
        if cpu_seconds(tree_pids(running.proc.pid)) - before < quiet * step:
            break
    return time.perf_counter() - start


def _python_cell(
    ctx: Context, running: Running, body: Path, concurrency: int, load: Load, meters: Meters
) -> tuple[dict[str, Any], float]:
    """Run the load; returns its result and the load generator's own CPU seconds."""
    cmd = [ctx.python, "-m", "bench.loadgen", "--url", running.url, "--body-file", str(body)]
    for name, value in running.headers.items():
        cmd += ["--header", f"{name}: {value}"]
    cmd += ["--concurrency", str(concurrency), "--duration", str(load.duration)]
    cmd += ["--warmup", str(load.warmup), "--timeout", str(load.timeout)]
    with open(ctx.logs / "loadgen.log", "ab") as err:
        proc = subprocess.Popen(
            pinned(cmd, ctx.cores.client),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=REPO,
        )
        assert proc.stdout is not None
        try:
            if proc.stdout.readline().strip() != "START":
                raise RuntimeError("the load generator failed to start; see logs/loadgen.log")
            meters.begin()
            own0 = cpu_seconds([proc.pid])
            if proc.stdout.readline().strip() != "END":
                raise RuntimeError("the load generator stopped early; see logs/loadgen.log")
            meters.end()
            own = cpu_seconds([proc.pid]) - own0
            # read() and not communicate(): communicate(timeout=...) reads the raw pipe and
            # would lose what readline() has already buffered (the result line, often).
            out = proc.stdout.read()
            proc.wait(timeout=load.timeout + 30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = out.strip().splitlines()
    if not lines:
        raise RuntimeError(
            f"the load generator exited ({proc.returncode}) without results; see logs/loadgen.log"
        )
    return orjson.loads(lines[-1]), own


def _wrk_cell(
    ctx: Context, running: Running, body: Path, concurrency: int, load: Load, meters: Meters
) -> tuple[dict[str, Any], float]:
    """Run the load; returns its result and the load generator's own CPU seconds."""
    lua = wrk.script(ctx.work / f"wrk-{body.stem}.lua", body, running.headers)
    if load.warmup > 0:
        warm = wrk.command(running.url, lua, concurrency, load.warmup, load.timeout)
        subprocess.run(
            pinned(warm, ctx.cores.client), capture_output=True, timeout=load.warmup + 60
        )
    cmd = wrk.command(running.url, lua, concurrency, load.duration, load.timeout)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    meters.begin()
    proc = subprocess.Popen(
        pinned(cmd, ctx.cores.client), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        out, _ = proc.communicate(timeout=load.duration + load.timeout + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    meters.end()
    # wrk's CPU, read once it has exited: the only child that ends in this window.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wrk.parse(out, concurrency), own


def run_cell(
    ctx: Context,
    running: Running,
    scenario: Scenario,
    concurrency: int,
    load: Load,
    upstream_pid: int,
    database_cpu: bool,
) -> dict[str, Any]:
    """Drive one cell and return its figures (see ``report`` for what each one means)."""
    body = scenario.write_body(ctx.work)
    meters = meters_for(running, upstream_pid, database_cpu)
    tool = load.tool(scenario)
    drive = _wrk_cell if tool == "wrk" else _python_cell
    result, loadgen_cpu = drive(ctx, running, body, concurrency, load, meters)
    wall, gateway_cpu, upstream_cpu = meters.wall, meters.gateway_cpu, meters.upstream_cpu
    database_cpu_s = meters.database_cpu
    per_k = result["requests"] / 1000 or float("nan")  # no answer in the window: no figure
    client_busy = (upstream_cpu + loadgen_cpu) / wall
    cores = len(ctx.cores.client) or 2
    result.update(
        loadgen=tool,
        wall_s=wall,
        gateway_cpu_s=gateway_cpu,
        cpu_s_per_1k=None if gateway_cpu is None or not result["requests"] else gateway_cpu / per_k,
        gateway_cpu_pct=None if gateway_cpu is None else 100 * gateway_cpu / wall,
        peak_rss_mb=meters.gateway.peak_rss / 2**20 if meters.gateway else None,
        upstream_cpu_pct=100 * upstream_cpu / wall,
        loadgen_cpu_pct=100 * loadgen_cpu / wall,
        database_cpu_s_per_1k=(
            None if database_cpu_s is None or not result["requests"] else database_cpu_s / per_k
        ),
        # the client side (load generator + upstream) had no CPU to spare: a lower bound
        client_bound=client_busy > 0.9 * cores,
    )
    return result
