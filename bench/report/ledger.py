"""The ledger section: hold + settle pairs per second, no HTTP."""

from __future__ import annotations

from typing import Any

from bench.report.tables import fmt, table


def ledger_md(rows: list[dict[str, Any]]) -> str:
    body = []
    for r in rows:
        if "error" in r:
            body.append(
                [r["database"], r["shape"], "-", "-", "failed: " + r["error"], "-", "-", "-"]
            )
            continue
        lat = r.get("latency_ms") or {}
        body.append(
            [
                r["database"],
                r["shape"],
                str(r["accounts"]),
                str(r["concurrency"]),
                fmt(r["pairs_per_s"]),
                fmt(r.get("cpu_ms_per_pair"), 3),
                fmt(lat.get("p50")),
                fmt(lat.get("p99")),
                ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "0",
            ]
        )
    return table(
        [
            "database",
            "shape",
            "accounts",
            "tasks",
            "hold+settle /s",
            "CPU ms / pair",
            "p50 ms",
            "p99 ms",
            "errors",
        ],
        body,
    )
