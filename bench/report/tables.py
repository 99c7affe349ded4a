"""Number and table formatting shared by every section of the report."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def pair(stats: dict[str, Any] | None, a: str = "p50", b: str = "p99") -> str:
    stats = stats or {}
    return f"{fmt(stats.get(a))} / {fmt(stats.get(b))}"


def plus_db(cpu: float | None, db: float | None) -> str:
    return fmt(cpu, 2) + (f" (+DB {fmt(db, 2)})" if db is not None else "")


def each_run(runs: list[dict[str, Any]], key: str, digits: int = 1) -> str:
    return ", ".join(fmt(r.get(key), digits) for r in runs)
