"""Where one chat request's CPU goes, component by component, in CPU time (not wall time).

The end-to-end cells say how much CPU a request costs the gateway; this says which parts pay
it, by calling each part of the hot path on its own, one at a time, and dividing the process's
CPU seconds (all threads: aiosqlite's worker thread included) by the calls made. CPU time is
charged only while the process runs, so the figures hold on a busy machine where wall-clock
profiles do not. Parts:

- ``parse``: ``ChatRequest.model_validate`` of the bench's request body;
- ``count``: the prompt's token count (tiktoken), done once per request for the hold;
- ``ledger``: ``Ledger.hold`` + ``Ledger.settle`` with its usage row (SQLite, PostgreSQL);
- ``upstream``: ``OpenAICompatEngine.stream`` consumed whole against the fake upstream
  (``infra.http``'s client, one JSON parse and one ``ChatChunk`` per event), and one
  non-streamed answer;
- ``render``: the OpenAI ``chat.completion`` dict and its ``orjson`` encoding.

Run: ``python -m bench.breakdown [--calls 500] [--postgres-url URL]``; prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson

from bench import pg
from bench.aio import run
from bench.procs import REPO
from bench.workload import SCENARIOS

Step = Callable[[], Awaitable[object]]


async def _cpu_per_call(step: Step, calls: int) -> float:
    """Milliseconds of process CPU per call, after a few warm-up calls."""
    for _ in range(min(20, calls)):
        await step()
    t0 = time.process_time()
    for _ in range(calls):
        await step()
    return (time.process_time() - t0) / calls * 1000


async def _ledger_step(url: str) -> tuple[Step, Callable[[], Awaitable[None]]]:
    from minitoolai.accounts.service import AccountService
    from minitoolai.infra.db import Database
    from minitoolai.infra.migrate import upgrade
    from minitoolai.ledger.service import Ledger, UsageRecord

    db = Database(url)
    await upgrade(db.engine)
    ledger = Ledger(db)
    account, _ = await AccountService(db, ledger).create("breakdown", 10**15)

    async def step() -> object:
        hold = await ledger.hold(account.id, 20_000, kind="chat", model="gpt-4o-mini")
        usage = UsageRecord(prompt_tokens=24, completion_tokens=50, served_by="fake:gpt-4o-mini")
        return await ledger.settle(hold.charge_id, 9_000, usage)

    return step, db.dispose


async def measure(calls: int, postgres_url: str | None) -> list[tuple[str, float]]:
    from pydantic import SecretStr

    from minitoolai.chat.schemas import ChatRequest
    from minitoolai.chat.tokens import count_messages
    from minitoolai.chat.wire import completion
    from minitoolai.engines.base import ChatParams, Usage
    from minitoolai.engines.openai_compat import OpenAICompatEngine
    from minitoolai.infra.http import upstream_client
    from minitoolai.settings import ProviderConfig

    body = orjson.loads(SCENARIOS["nonstream"].body())
    rows: list[tuple[str, float]] = []

    async def parse() -> object:
        return ChatRequest.model_validate(body)

    request = ChatRequest.model_validate(body)
    messages = request.messages

    async def count() -> object:
        return count_messages(messages, request.model)

    async def render() -> object:
        text = "".join(f"w{i} " for i in range(50))
        return orjson.dumps(completion("id", 1, "m", "fp", text, "stop", Usage(24, 50)))

    rows.append(("parse (pydantic ChatRequest)", await _cpu_per_call(parse, calls * 4)))
    rows.append(("count prompt tokens (tiktoken)", await _cpu_per_call(count, calls * 4)))
    rows.append(("render chat.completion (orjson)", await _cpu_per_call(render, calls * 4)))

    with tempfile.TemporaryDirectory() as tmp:
        step, close = await _ledger_step(f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}")
        rows.append(("ledger hold + settle (SQLite)", await _cpu_per_call(step, calls)))
        await close()
    if postgres_url and await asyncio.to_thread(pg.unreachable, postgres_url) is None:
        await asyncio.to_thread(pg.reset, postgres_url)
        step, close = await _ledger_step(postgres_url)
        rows.append(("ledger hold + settle (PostgreSQL)", await _cpu_per_call(step, calls)))
        await close()

    upstream = subprocess.Popen(
        [sys.executable, "-m", "bench.upstream", "--port", "0"],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert upstream.stdout is not None
        port = upstream.stdout.readline().decode().split()[1]
        session = upstream_client()
        provider = ProviderConfig(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=SecretStr("sk-upstream-fake")
        )
        engine = OpenAICompatEngine("fake", provider, "gpt-4o-mini", session)
        params = ChatParams(messages=messages, max_tokens=64, temperature=1.0)

        async def stream() -> object:
            return [chunk async for chunk in engine.stream(params)]

        async def whole() -> object:
            return [chunk async for chunk in engine.complete(params)]

        rows.append(("upstream stream, 50 events", await _cpu_per_call(stream, calls)))
        rows.append(("upstream answer, not streamed", await _cpu_per_call(whole, calls)))
        await session.close()
    finally:
        upstream.terminate()
        upstream.wait(10)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--postgres-url", default=pg.DEFAULT_URL, help="its database is wiped")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--json", action="store_true", help="one JSON line instead of a table")
    args = ap.parse_args(argv)
    rows = run(measure(args.calls, None if args.no_postgres else args.postgres_url))
    if args.json:
        print(orjson.dumps([{"part": n, "cpu_ms": ms} for n, ms in rows]).decode())
        return
    print("| part of a request | CPU ms per call |\n|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.3f} |")


if __name__ == "__main__":
    main()
