"""Where a gateway's CPU goes under load: py-spy samples, summarised as text.

py-spy reads the gateway's Python stacks from outside (no change to the gateway, no restart)
while the load generator drives it; ``--nonblocking`` so it never pauses the process it
measures. Idle samples (the event loop waiting in epoll) are left out by py-spy, so the
percentages are shares of the gateway's busy CPU. The summary lists the functions that hold
the most samples themselves (self) and those most often on the stack (inclusive).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.procs import pinned


def py_spy() -> str | None:
    """The py-spy binary: beside this interpreter first, then on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start_record(
    pid: int, seconds: float, raw: Path, cpus: tuple[int, ...]
) -> subprocess.Popen[bytes]:
    binary = py_spy()
    if binary is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    cmd = [binary, "record", "-p", str(pid), "-d", str(max(1, round(seconds)))]
    cmd += ["-r", "250", "-f", "raw", "--nolineno", "--gil", "--nonblocking", "-o", str(raw)]
    return subprocess.Popen(pinned(cmd, cpus), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _short(frame: str) -> str:
    """'handle (/x/site-packages/starlette/routing.py)' -> 'starlette/routing.py:handle'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{where}:{name}" if where else name


def summarise(raw: Path, top: int = 25) -> str:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";")[1:]]  # [0] is the process
        if not frames:
            continue
        total += n
        self_time[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return "no samples (was the gateway busy?)"
    lines = [f"{total} busy samples", "", "top self time:"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in self_time.most_common(top)]
    lines += ["", "top inclusive time (on the stack):"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top + 15)]
    return "\n".join(lines)
