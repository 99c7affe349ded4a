"""Processes under test: start them pinned to a core, wait until they answer, measure, stop.

CPU and memory are read from the whole process tree (a gateway may fork workers), with psutil
when it is installed and from ``/proc`` otherwise, so the smoke test runs on a bare checkout.
Every process started here is stopped by its own id: SIGTERM, then SIGKILL after a grace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

try:
    import psutil
except ImportError:  # the /proc fallback below covers Linux
    psutil = None

#: the repository root: the working directory of every process started here, so that
#: ``python -m bench.*`` resolves whatever directory the harness was launched from
REPO = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Cores:
    """Which CPUs the gateway gets and which the client side (load generator, upstream) gets."""

    gateway: tuple[int, ...] = ()
    client: tuple[int, ...] = ()

    @classmethod
    def split(cls, pin: bool = True) -> Cores:
        """First allowed CPU for the gateway, the rest for the client side; no pinning on 1."""
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if not pin or len(allowed) < 2 or shutil.which("taskset") is None:
            return cls()
        return cls((allowed[0],), tuple(allowed[1:]))

    def describe(self) -> str:
        if not self.gateway:
            return "not pinned"
        return f"gateway on CPU {_cpus(self.gateway)}; load generator + upstream on CPU " + _cpus(
            self.client
        )


def _cpus(cpus: Sequence[int]) -> str:
    return ",".join(str(c) for c in cpus)


def pinned(cmd: Sequence[str], cpus: Sequence[int]) -> list[str]:
    """``cmd`` under ``taskset`` when CPUs are given (children inherit the affinity)."""
    return ["taskset", "-c", _cpus(cpus), *cmd] if cpus else list(cmd)


@dataclass
class Proc:
    """A started process whose output goes to a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process and its children, SIGKILL whatever is left after ``grace``."""
        if not self.alive():
            return
        family = [self.pid, *tree_pids(self.pid)[1:]]
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(grace)
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def start(
    name: str,
    cmd: Sequence[str],
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdout: int | None = None,
) -> Proc:
    """Start ``cmd`` with stderr (and stdout unless piped) appended to ``log_dir/name.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    fh = open(log, "ab")  # noqa: SIM115 - the child owns it for its whole life
    popen = subprocess.Popen(
        list(cmd),
        stdout=fh if stdout is None else stdout,
        stderr=fh,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd or REPO,
        start_new_session=True,  # a Ctrl-C in the terminal reaches us, not the servers
    )
    fh.close()
    return Proc(name, popen, log)


def wait_http(
    proc: Proc | None,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> None:
    """Poll ``url`` until it answers 200; otherwise stop ``proc`` (no orphan) and raise."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.tail()}")
        req = urllib.request.Request(url, data=body, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                resp.read()
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}: {exc.read()[:300]!r}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    tail = proc.tail() if proc else ""
    if proc is not None:
        proc.stop()
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f}s ({last})\n{tail}")


# -- measuring a process tree -------------------------------------------------------------------


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (those alive now)."""
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            return [pid, *(c.pid for c in root.children(recursive=True))]
        except psutil.Error:
            return []
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None:
                children.setdefault(int(stat[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def cpu_by_pid(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds each of these processes has used so far."""
    out = {}
    for pid in pids:
        if psutil is not None:
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            out[pid] = t.user + t.system
        else:
            stat = _proc_stat(pid)
            if stat is not None:
                out[pid] = (int(stat[11]) + int(stat[12])) / _TICK
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    return sum(cpu_by_pid(pids).values())


def rss_bytes(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        if psutil is not None:
            try:
                total += psutil.Process(pid).memory_info().rss
            except psutil.Error:
                continue
        else:
            stat = _proc_stat(pid)
            if stat is not None:
                total += int(stat[21]) * _PAGE
    return total


@dataclass
class TreeMeter:
    """CPU seconds between ``begin`` and ``end``, and the peak RSS sampled meanwhile.

    The process list is re-read every ``interval``: a process that appears mid-window counts
    from zero, one that exits counts up to its last sample (pooled database connections come
    and go; losing their last 100 ms is the error bound).
    """

    pids: Callable[[], list[int]]  # re-read on each sample
    interval: float = 0.1
    peak_rss: int = 0
    _first: dict[int, float] = field(default_factory=dict)
    _last: dict[int, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _read(self) -> None:
        pids = sorted(set(self.pids()))
        cpu = cpu_by_pid(pids)
        rss = rss_bytes(pids)
        with self._lock:
            self._last.update(cpu)
            self.peak_rss = max(self.peak_rss, rss)

    def begin(self) -> None:
        pids = sorted(set(self.pids()))
        self._first = cpu_by_pid(pids)
        self._last = dict(self._first)
        self.peak_rss = rss_bytes(pids)
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._read()

    def end(self) -> float:
        """CPU seconds used by the tree since ``begin``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self._read()
        with self._lock:
            return sum(max(0.0, cpu - self._first.get(pid, 0.0)) for pid, cpu in self._last.items())


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes (read only: to report the database's CPU apart)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("postgres"):
            out.append(int(entry.name))
    return out


@contextlib.contextmanager
def postgres_pinned(cpus: Sequence[int]) -> Iterator[None]:
    """PostgreSQL on the gateway's cores while a PostgreSQL contender runs, then as before.

    The database is part of that contender's stack: left free, its backends land on the load
    generator's core and every round trip waits for a busy CPU, which measures the pinning,
    not the gateway. New backends inherit the postmaster's affinity.
    """
    saved: dict[int, set[int]] = {}
    if cpus:
        for pid in postgres_pids():
            try:
                saved[pid] = os.sched_getaffinity(pid)
                os.sched_setaffinity(pid, set(cpus))
            except OSError:
                continue
    try:
        yield
    finally:
        for pid, before in saved.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, before)
