"""Ledger throughput: hold + settle pairs per second, straight on ``Ledger``, no HTTP.

A chat request costs the ledger one ``hold`` and one ``settle``; this measures how many such
pairs one process can do, which bounds the gateway's requests/s whatever the HTTP side does.
Two shapes:

- ``hot``: every pair on one account (one key hammered by many clients: every hold and settle
  updates the same ``accounts`` row, so on PostgreSQL they queue on its row lock);
- ``spread``: pairs spread over ``--accounts`` accounts (many customers at once).

It reports pairs/s, their latency, and the CPU milliseconds each pair cost this process: on a
shared machine pairs/s falls with the CPU left over, CPU per pair does not.

``--concurrency`` tasks loop hold -> settle for ``--duration`` seconds on one event loop
(uvloop), as the gateway's requests would. Prints one JSON line.

Run: ``python -m bench.ledger_bench --url sqlite+aiosqlite:///x.db --accounts 1``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
import uuid
from array import array
from typing import Any

import orjson

from bench.aio import run
from bench.loadgen import percentiles
from minitoolai.accounts.service import AccountService
from minitoolai.infra.db import Database
from minitoolai.infra.migrate import upgrade
from minitoolai.ledger.service import Ledger, UsageRecord

HOLD = 20_000  # nano-dollars: about a gpt-4o-mini request with max_tokens 64
COST = 9_000


async def measure(url: str, accounts: int, concurrency: int, duration: float) -> dict[str, Any]:
    db = Database(url)
    try:
        await upgrade(db.engine)
        ledger = Ledger(db)
        service = AccountService(db, ledger)
        ids = []
        for _ in range(accounts):
            account, _key = await service.create(f"ledger-{uuid.uuid4().hex[:12]}", 10**15)
            ids.append(account.id)
        picks = itertools.cycle(ids)
        latencies: array[float] = array("d")
        errors: dict[str, int] = {}
        deadline = 0.0

        async def worker() -> None:
            while time.perf_counter() < deadline:
                account_id = next(picks)
                t0 = time.perf_counter()
                try:
                    hold = await ledger.hold(account_id, HOLD, kind="chat", model="gpt-4o-mini")
                    await ledger.settle(
                        hold.charge_id, COST, UsageRecord(prompt_tokens=24, completion_tokens=50)
                    )
                except Exception as exc:  # counted and shown: a failing ledger is a result too
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - t0)

        deadline = time.perf_counter() + min(1.0, duration / 4)  # warm the pool and caches
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        latencies = array("d")
        start, cpu0 = time.perf_counter(), time.process_time()
        deadline = start + duration
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
        for account_id in ids:  # the books must still balance after the storm
            balance, held = await ledger.balances(account_id)
            if (balance, held) != await ledger.entry_sums(account_id) or held != 0:
                errors["books_do_not_balance"] = errors.get("books_do_not_balance", 0) + 1
    finally:
        await db.dispose()
    return {
        "dialect": db.dialect,
        "accounts": accounts,
        "concurrency": concurrency,
        "duration_s": elapsed,
        "pairs": len(latencies),
        "pairs_per_s": len(latencies) / elapsed,
        # all threads of this process (aiosqlite's included); robust on a busy machine
        "cpu_ms_per_pair": cpu / max(1, len(latencies)) * 1000,
        "latency_ms": percentiles(latencies),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.ledger_bench", description=__doc__)
    ap.add_argument("--url", required=True, help="SQLAlchemy URL of a fresh database")
    ap.add_argument("--accounts", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--duration", type=float, default=5.0)
    args = ap.parse_args(argv)
    result = run(measure(args.url, args.accounts, args.concurrency, args.duration))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
