"""The rate limiter's cost per request at c=1: admit + finish, one request after another.

Cells: a caller with no limits (no limiter step at all), the in-process counters, and Redis
(``--redis``; keys under a prefix of their own, deleted after) with an rpm limit only (one
round trip: the admission) and with rpm + tpm + max_concurrent (two: the admission, and the
finish that corrects the tokens and gives the lease back). The figure is microseconds per
request, the median over ``--rounds`` rounds of ``--requests`` requests. The goal (issue 15):
<= 100 us added at c=1 with Redis on one machine.

    python -m bench.limits_bench --requests 5000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from redis.asyncio import Redis

from minitoolai.accounts.auth import Principal
from minitoolai.limits.backend import InProcess
from minitoolai.limits.rates import Overrides, Rates
from minitoolai.limits.redis_backend import RedisBackend
from minitoolai.limits.service import RateLimits

BIG = 2**31 - 1  # limits that are never reached: the cost of counting, not of refusing


def _caller(key: Rates) -> Principal:
    return Principal(1, 1, "bench", "mtai-bench", None, None, limits=Overrides(key=key))


async def _round(limits: RateLimits, caller: Principal, requests: int, tokens: int) -> float:
    began = time.perf_counter()
    for _ in range(requests):
        admission = await limits.admit(caller, tokens=tokens)
        admission.settled(tokens // 2)
        await admission.release()
    return (time.perf_counter() - began) / requests * 1e6


async def run(redis_url: str, requests: int, rounds: int) -> list[dict[str, Any]]:
    client = Redis.from_url(redis_url)
    prefix = f"mtai-bench-limits:{uuid.uuid4().hex[:8]}:"
    rpm_only = Rates(rpm=BIG)
    everything = Rates(rpm=BIG, tpm=BIG, max_concurrent=BIG)
    cells = [
        ("no limits", RateLimits(InProcess()), Rates(), 0),
        ("in-process, rpm", RateLimits(InProcess()), rpm_only, 0),
        ("in-process, rpm+tpm+concurrency", RateLimits(InProcess()), everything, 100),
        ("redis, rpm", RateLimits(RedisBackend(client, prefix)), rpm_only, 0),
        ("redis, rpm+tpm+concurrency", RateLimits(RedisBackend(client, prefix)), everything, 100),
    ]
    rows = []
    try:
        for name, limits, rates, tokens in cells:
            caller = _caller(rates)
            await _round(limits, caller, min(200, requests), tokens)  # warm: scripts loaded
            figures = [await _round(limits, caller, requests, tokens) for _ in range(rounds)]
            rows.append({"cell": name, "us_per_request": statistics.median(figures)})
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.redis, args.requests, args.rounds))
    base = rows[0]["us_per_request"]
    print("| limiter | us per request | added vs. no limits |")
    print("|---|---:|---:|")
    for row in rows:
        row["added_us"] = row["us_per_request"] - base
        print(f"| {row['cell']} | {row['us_per_request']:.1f} | {row['added_us']:.1f} |")
    return rows


if __name__ == "__main__":
    main()
