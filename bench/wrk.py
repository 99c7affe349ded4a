"""wrk as the load generator: C, one thread, a Lua script for the POST body and headers.

wrk cannot see inside a response, so it gives no time to first token; the harness uses it for
non-streaming cells when it is installed (``--loadgen auto``) and the Python generator for
streams. Its ``done`` hook prints one ``WRKJSON {...}`` line with counts and latency
percentiles in microseconds, which ``parse`` turns into the same shape the Python generator
reports.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import orjson

_SAFE = re.compile(r"^[\w\-./:;=, ]*$")

_DONE = r"""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50":%.1f,"p90":%.1f,"p99":%.1f,"p999":%.1f,' ..
    '"max":%.1f,"mean":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def script(path: Path, body_file: Path, headers: dict[str, str]) -> Path:
    """Write the Lua script that makes wrk POST ``body_file`` with ``headers``."""
    lines = [
        f'local f = assert(io.open("{body_file}", "rb"))',
        "wrk.body = f:read('*a')",
        "f:close()",
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    for name, value in headers.items():
        if not (_SAFE.match(name) and _SAFE.match(value)) or not _SAFE.match(str(body_file)):
            raise ValueError(f"header {name!r} has characters the Lua script does not quote")
        lines.append(f'wrk.headers["{name}"] = "{value}"')
    path.write_text("\n".join(lines) + "\n" + _DONE)
    return path


def command(url: str, lua: Path, concurrency: int, seconds: float, timeout: float) -> list[str]:
    return [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout))}s",
        "-s",
        str(lua),
        url,
    ]


def parse(output: str, concurrency: int) -> dict[str, Any]:
    """wrk's output -> the Python generator's result shape (``ttft_ms`` is None)."""
    line = next((ln for ln in output.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{output[-2000:]}")
    raw = orjson.loads(line[len("WRKJSON ") :])
    seconds = raw["duration_us"] / 1e6
    ok = raw["requests"] - raw["status"]
    errors = {k: raw[k] for k in ("connect", "read", "write", "timeout") if raw[k]}
    if raw["status"]:
        errors["http_non_2xx"] = raw["status"]
    return {
        "concurrency": concurrency,
        "duration_s": seconds,
        "requests": ok,
        "rps": ok / seconds if seconds else 0.0,
        "latency_ms": {k: raw[k] / 1000 for k in ("p50", "p90", "p99", "p999", "max", "mean")},
        "ttft_ms": None,
        "errors": errors,
        "statuses": {},
    }
