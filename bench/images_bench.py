"""Image-job overhead: what the queue itself costs, with an engine that takes no time.

``minitoolai serve`` runs with ``MINITOOLAI_IMAGE_ENGINE=test-pattern`` (a diagnostic engine
that draws a seeded pattern at once; ``MINITOOLAI_TEST_PATTERN_STEP_S=0``), so everything
measured is the gateway's own work: submit (auth, credit hold, job row, wake-up), a worker's
claim, "generation", PNG encoding, storing the file, the settlement, and the polls.

Three setups: ``sqlite`` and ``postgres`` (the API with ``MINITOOLAI_IMAGE_WORKERS=1``, one
in-process worker) and ``postgres-worker`` (the API with ``MINITOOLAI_IMAGE_WORKERS=0`` and a
separate ``minitoolai worker`` process, woken by PostgreSQL ``LISTEN/NOTIFY``). Both processes
are pinned to the gateway core; the client runs on the other core(s).

The client (this module's ``main``, one process) keeps ``--concurrency`` jobs in flight, closed
loop: ``POST /api/texttoimage/``, then ``POST /api/texttoimage/jobs/`` every ``--poll-ms``
(the sleep between one poll's answer and the next poll) until ``status == "success"``, then
the next job. It records, per job, the submit's latency and submit -> the poll that saw
success; after the run the orchestrator reads the job rows' ``created_at``, ``started_at`` and
``finished_at`` from the database, which splits that time into submit -> row written,
queued -> claimed, claimed -> finished and finished -> seen by a poll. Bounded by
``--duration``, ``--max-jobs`` and ``--job-timeout``.

"Hammered" cells add ``--pollers`` tasks that poll the jobs in flight back to back with no
sleep and no API key (a poll needs only the job id and its signature): what a misbehaving or
hostile client does to the worker sharing the API's event loop. The jobs/s of such a cell next
to the same concurrency without pollers is the figure (the issue: 38.6 -> 5.8 jobs/s).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from bench import pg
from bench.aio import run as aio_run
from bench.contenders import Context
from bench.gateway import Home, create_account, database_url, fresh_home, start_serve, start_worker
from bench.loadgen import percentiles
from bench.procs import REPO, TreeMeter, pinned, postgres_pids, tree_pids

POLL_SECONDS = 3.0
SUBMIT = {"model": "realvision", "prompt": "x", "width": 256, "height": 256, "steps": 1}

#: setup name -> (database, in-process workers, separate ``minitoolai worker``)
SETUPS: dict[str, tuple[str, int, bool]] = {
    "sqlite": ("sqlite", 1, False),
    "postgres": ("postgres", 1, False),
    "postgres-worker": ("postgres", 0, True),
}
SETUP_TITLES = {
    "sqlite": "SQLite, 1 in-process worker",
    "postgres": "PostgreSQL, 1 in-process worker",
    "postgres-worker": "PostgreSQL, API + separate `minitoolai worker` (LISTEN/NOTIFY)",
}


@dataclass(frozen=True)
class ImageLoad:
    setups: tuple[str, ...] = tuple(SETUPS)
    concurrency: tuple[int, ...] = (1, 16)
    duration: float = 10.0
    max_jobs: int = 5000
    poll_ms: float = 10.0
    job_timeout: float = 30.0
    warmup_jobs: int = 3
    #: pollers hammering the jobs in flight in one extra cell per setup (0: no such cell)
    pollers: int = 32


# -- the client (its own process, on the client core) -------------------------------------------


async def _client(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    base = args.url.rstrip("/")
    submit_url, poll_url = f"{base}/api/texttoimage/", f"{base}/api/texttoimage/jobs/"
    auth = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    plain = {"Content-Type": "application/json"}
    body = orjson.dumps(SUBMIT)
    poll_s = args.poll_ms / 1000
    errors: Counter[str] = Counter()
    jobs: list[dict[str, Any]] = []
    finished: list[bytes] = []  # the poll body of the last job seen to succeed
    live: dict[int, bytes] = {}  # the poll bodies of the jobs in flight (for the pollers)
    hammered = [0]  # polls made by the pollers

    async def one(session: aiohttp.ClientSession, record: bool) -> None:
        wall, t0 = time.time(), time.perf_counter()
        async with session.post(submit_url, data=body, headers=auth) as resp:
            raw = await resp.read()
        t1 = time.perf_counter()
        answer = orjson.loads(raw) if raw.startswith(b"{") else {}
        if resp.status != 200 or answer.get("status") != "success":
            errors[f"submit HTTP {resp.status}: {str(answer.get('message'))[:80]}"] += 1
            return
        ref = orjson.dumps({"jobid": answer["jobid"], "signature": answer["signature"]})
        live[int(answer["jobid"])] = ref
        try:
            await follow(session, ref, wall, t0, t1, record)
        finally:
            live.pop(int(answer["jobid"]), None)

    async def follow(
        session: aiohttp.ClientSession,
        ref: bytes,
        wall: float,
        t0: float,
        t1: float,
        record: bool,
    ) -> None:
        polls = 0
        while True:
            await asyncio.sleep(poll_s)
            async with session.post(poll_url, data=ref, headers=plain) as resp:
                state = orjson.loads(await resp.read())
            polls += 1
            status = state.get("status")
            if status == "success":
                break
            if status not in ("pending", "processing"):
                errors[f"job {status}: {str(state.get('message'))[:80]}"] += 1
                return
            if time.perf_counter() - t0 > args.job_timeout:
                errors["job timeout"] += 1
                return
        seen = time.perf_counter()
        finished[:] = [ref]
        if record:
            jobs.append(
                {
                    "id": int(orjson.loads(ref)["jobid"]),
                    "submit_wall": wall,
                    "seen_wall": wall + (seen - t0),
                    "submit_s": t1 - t0,
                    "seen_s": seen - t0,
                    "polls": polls,
                }
            )

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=args.job_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for _ in range(args.warmup_jobs):
            await one(session, record=False)
        warm_errors = sum(errors.values())
        if args.poll_only:
            if not finished:
                raise RuntimeError(f"no warm-up job succeeded: {dict(errors)}")
            return await _polls(session, poll_url, finished[0], plain, args) | {
                "warmup_errors": warm_errors
            }
        print("START", flush=True)
        deadline = time.perf_counter() + args.duration
        started = 0

        async def loop() -> None:
            nonlocal started
            while time.perf_counter() < deadline and started < args.max_jobs:
                started += 1
                try:
                    await one(session, record=True)
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    errors[type(exc).__name__] += 1

        running = True

        async def hammer() -> None:
            """Poll whatever is in flight, back to back, without a key: the attack."""
            index = 0
            while running:
                refs = list(live.values()) or finished
                if not refs:
                    await asyncio.sleep(0.001)
                    continue
                index += 1
                try:
                    async with session.post(
                        poll_url, data=refs[index % len(refs)], headers=plain
                    ) as resp:
                        await resp.read()
                    hammered[0] += 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors[f"poller {type(exc).__name__}"] += 1

        pollers = [asyncio.create_task(hammer()) for _ in range(args.pollers)]
        t0 = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(args.concurrency)))
        wall = time.perf_counter() - t0
        running = False
        await asyncio.gather(*pollers)
        print("END", flush=True)
    return {
        "concurrency": args.concurrency,
        "pollers": args.pollers,
        "poller_polls": hammered[0],
        "wall_s": wall,
        "jobs": jobs,
        "warmup_errors": warm_errors,
        "errors": dict(errors),
    }


async def _polls(
    session: Any, url: str, ref: bytes, headers: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """Poll one finished job back to back, one at a time: the cost of a poll alone."""
    latencies: list[float] = []
    print("START", flush=True)
    t0 = time.perf_counter()
    deadline = t0 + args.duration
    while time.perf_counter() < deadline and len(latencies) < args.max_jobs:
        t = time.perf_counter()
        async with session.post(url, data=ref, headers=headers) as resp:
            state = orjson.loads(await resp.read())
        if state.get("status") != "success":
            raise RuntimeError(f"a finished job polled as {state}")
        latencies.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    print("END", flush=True)
    return {"concurrency": 1, "wall_s": wall, "polls": latencies, "errors": {}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.images_bench", description=__doc__)
    ap.add_argument("--url", required=True, help="the gateway's base URL")
    ap.add_argument("--key", required=True, help="an API key")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds to start new jobs")
    ap.add_argument("--max-jobs", type=int, default=5000)
    ap.add_argument("--poll-ms", type=float, default=10.0)
    ap.add_argument("--job-timeout", type=float, default=30.0)
    ap.add_argument("--warmup-jobs", type=int, default=3)
    ap.add_argument(
        "--pollers", type=int, default=0, help="extra tasks polling the jobs in flight, no sleep"
    )
    ap.add_argument(
        "--poll-only", action="store_true", help="poll one finished job back to back instead"
    )
    result = aio_run(_client(ap.parse_args(argv)))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


# -- the orchestrator side ---------------------------------------------------------------------


def _parse_time(value: Any) -> float | None:
    """A timestamp from either database as epoch seconds (SQLite keeps naive UTC strings)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


async def _pg_rows(url: str, ids: list[int]) -> list[tuple[Any, ...]]:
    import asyncpg

    conn = await asyncpg.connect(**pg._connect_args(url))
    try:
        rows = await conn.fetch(
            "SELECT id, created_at, started_at, finished_at, status FROM image_jobs "
            "WHERE id = ANY($1::bigint[])",
            ids,
        )
    finally:
        await conn.close()
    return [tuple(r) for r in rows]


def job_rows(url: str, ids: list[int]) -> dict[int, tuple[float | None, ...]]:
    """id -> (created_at, started_at, finished_at) in epoch seconds, for the jobs measured."""
    if not ids:
        return {}
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        with sqlite3.connect(path) as conn:
            marks = ",".join("?" * len(ids))
            raw = conn.execute(
                "SELECT id, created_at, started_at, finished_at, status FROM image_jobs "
                f"WHERE id IN ({marks})",
                ids,
            ).fetchall()
    else:
        raw = asyncio.run(_pg_rows(url, ids))
    return {int(r[0]): tuple(_parse_time(v) for v in r[1:4]) for r in raw}


def _split(jobs: list[dict[str, Any]], rows: dict[int, tuple[float | None, ...]]) -> dict[str, Any]:
    """The submit -> seen time of each job, cut at the row's own timestamps (percentiles, ms)."""
    parts: dict[str, list[float]] = {"to_row": [], "queued": [], "working": [], "to_seen": []}
    for job in jobs:
        created, started, finished = rows.get(job["id"], (None, None, None))
        if created is None or started is None or finished is None:
            continue
        parts["to_row"].append(created - job["submit_wall"])
        parts["queued"].append(started - created)
        parts["working"].append(finished - started)
        parts["to_seen"].append(job["seen_wall"] - finished)
    return {k: percentiles([max(0.0, x) for x in v]) for k, v in parts.items()}


def _drive(
    ctx: Context,
    base: str,
    key: str,
    conc: int,
    load: ImageLoad,
    meters: list[TreeMeter],
    poll_only: bool = False,
    pollers: int = 0,
) -> dict[str, Any]:
    cmd = [ctx.python, "-m", "bench.images_bench", "--url", base, "--key", key]
    # polls alone: a few seconds are plenty (thousands of polls)
    duration = min(load.duration, POLL_SECONDS) if poll_only else load.duration
    cmd += ["--concurrency", str(conc), "--duration", str(duration)]
    cmd += ["--max-jobs", str(load.max_jobs), "--poll-ms", str(load.poll_ms)]
    cmd += ["--job-timeout", str(load.job_timeout), "--warmup-jobs", str(load.warmup_jobs)]
    if poll_only:
        cmd.append("--poll-only")
    if pollers:
        cmd += ["--pollers", str(pollers)]
    with open(ctx.logs / "images-client.log", "ab") as err:
        proc = subprocess.Popen(
            pinned(cmd, ctx.cores.client), stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO
        )
        assert proc.stdout is not None
        limit = load.duration + load.job_timeout * (load.warmup_jobs + 2) + 60
        try:
            if proc.stdout.readline().strip() != "START":
                raise RuntimeError("the image client failed; see logs/images-client.log")
            for m in meters:
                m.begin()
            if proc.stdout.readline().strip() != "END":
                raise RuntimeError("the image client stopped early; see logs/images-client.log")
            cpu = [m.end() for m in meters]
            out = proc.stdout.read()
            proc.wait(timeout=limit)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    result: dict[str, Any] = orjson.loads(out.strip().splitlines()[-1])
    result["cpu_s"] = cpu
    return result


def _cell(setup: str, conc: int, home: Home, raw: dict[str, Any], database: str) -> dict[str, Any]:
    jobs = raw["jobs"]
    rows = job_rows(database_url(home), [j["id"] for j in jobs])
    n = len(jobs)
    gateway_cpu = raw["cpu_s"][0]
    db_cpu = raw["cpu_s"][1] if database == "postgres" else None
    return {
        "setup": setup,
        "concurrency": conc,
        "pollers": raw.get("pollers", 0),
        "poller_polls_per_s": raw.get("poller_polls", 0) / raw["wall_s"] if raw["wall_s"] else 0,
        "jobs": n,
        "wall_s": raw["wall_s"],
        "jobs_per_s": n / raw["wall_s"] if raw["wall_s"] > 0 else 0.0,
        "submit_ms": percentiles([j["submit_s"] for j in jobs]),
        "seen_ms": percentiles([j["seen_s"] for j in jobs]),
        "polls_per_job": sum(j["polls"] for j in jobs) / n if n else None,
        "split_ms": _split(jobs, rows),
        "rows_found": len(rows),
        "gateway_cpu_ms_per_job": gateway_cpu / n * 1000 if n else None,
        "database_cpu_ms_per_job": None if db_cpu is None or not n else db_cpu / n * 1000,
        "errors": raw["errors"],
        "warmup_errors": raw["warmup_errors"],
    }


def _poll_cell(setup: str, raw: dict[str, Any], database: str) -> dict[str, Any]:
    polls = raw["polls"]
    n = len(polls)
    db_cpu = raw["cpu_s"][1] if database == "postgres" else None
    return {
        "setup": setup,
        "polls": n,
        "polls_per_s": n / raw["wall_s"] if raw["wall_s"] > 0 else 0.0,
        "poll_ms": percentiles(polls),
        "gateway_cpu_ms_per_poll": raw["cpu_s"][0] / n * 1000 if n else None,
        "database_cpu_ms_per_poll": None if db_cpu is None or not n else db_cpu / n * 1000,
    }


def run_setup(
    ctx: Context, setup: str, load: ImageLoad
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every concurrency of one setup, then polls alone: start, measure, stop."""
    database, in_process, separate = SETUPS[setup]
    settings = {
        "MINITOOLAI_IMAGE_ENGINE": "test-pattern",
        "MINITOOLAI_TEST_PATTERN_STEP_S": "0",
        "MINITOOLAI_IMAGE_WORKERS": str(in_process),
        # the chat and speech engines play no part here: not loading them keeps start-up short
        "MINITOOLAI_LOCAL_DEFAULT": "false",
        "MINITOOLAI_LOCAL_SPEECH": "false",
    }
    home = fresh_home(ctx, f"images-{setup}", settings, database)
    key = create_account(ctx, home, "bench-images", "1000")
    procs = []
    try:
        api, base = start_serve(ctx, home, f"images-{setup}")
        procs.append(api)
        if separate:
            procs.append(start_worker(ctx, home, f"images-{setup}-worker"))
        pids = [p.pid for p in procs]

        def meters() -> list[TreeMeter]:
            out = [TreeMeter(lambda: [q for p in pids for q in tree_pids(p)])]
            if database == "postgres":
                out.append(TreeMeter(postgres_pids))
            return out

        cells = []
        for conc in load.concurrency:
            raw = _drive(ctx, base, key, conc, load, meters())
            cells.append(_cell(setup, conc, home, raw, database))
        if load.pollers:  # the highest concurrency again (the worker busiest), under a flood
            conc = max(load.concurrency)
            raw = _drive(ctx, base, key, conc, load, meters(), pollers=load.pollers)
            cells.append(_cell(setup, conc, home, raw, database))
        polls = _drive(ctx, base, key, 1, load, meters(), poll_only=True)
        return cells, _poll_cell(setup, polls, database)
    finally:
        for proc in reversed(procs):
            proc.stop()


def run_all(ctx: Context, load: ImageLoad, say: Any = print) -> dict[str, Any]:
    """Every setup: ``cells`` (one per setup x concurrency), ``polls`` (one per setup), and
    ``failed`` (setup -> why it did not run).
    """
    out: dict[str, Any] = {"cells": [], "polls": [], "failed": {}}
    for setup in load.setups:
        database = SETUPS[setup][0]
        why = pg.unreachable(ctx.postgres_url) if database == "postgres" else None
        if why:
            out["failed"][setup] = f"skipped: {why}"
            say(f"images {setup}: skipped ({why})")
            continue
        say(f"images {setup}: starting")
        try:
            cells, polls = run_setup(ctx, setup, load)
        except Exception as exc:  # one setup failing must not sink the others' figures
            out["failed"][setup] = str(exc).splitlines()[0][:300]
            say(f"images {setup}: failed: {exc}")
            continue
        for c in cells:
            seen = (c["seen_ms"] or {}).get("p50", float("nan"))
            errors = sum(c["errors"].values())
            flood = (
                f"  + {c['pollers']} pollers ({c['poller_polls_per_s']:.0f} polls/s)"
                if c.get("pollers")
                else ""
            )
            say(
                f"images {setup:16s} c={c['concurrency']:<3d} {c['jobs_per_s']:7.1f} jobs/s  "
                f"seen p50 {seen:7.1f} ms  errors {errors}{flood}"
            )
        say(
            f"images {setup:16s} polls alone {polls['polls_per_s']:7.1f} polls/s, "
            f"{polls['gateway_cpu_ms_per_poll'] or 0:.2f} CPU ms/poll"
        )
        out["cells"] += cells
        out["polls"].append(polls)
    return out


def settings_note(load: ImageLoad) -> str:
    return (
        f"`minitoolai serve` with MINITOOLAI_IMAGE_ENGINE=test-pattern, "
        f"MINITOOLAI_TEST_PATTERN_STEP_S=0, MINITOOLAI_LOCAL_DEFAULT=false and "
        f"MINITOOLAI_LOCAL_SPEECH=false (no chat or speech engine loaded), a fresh data dir "
        f"(PNG files stored under it), an account from `minitoolai accounts create`. Jobs: "
        f"`{orjson.dumps(SUBMIT).decode()}`, {load.warmup_jobs} unmeasured jobs first, then "
        f"{load.duration:g} s of new jobs (at most {load.max_jobs}) at each concurrency, "
        f"a poll every {load.poll_ms:g} ms (sleep between one poll's answer and the next "
        f"request), so submit -> seen overstates completion by up to that plus one poll's "
        f"latency: the split's last column says by how much."
        + (
            f" Rows with '+ {load.pollers} pollers': the highest concurrency again while "
            f"{load.pollers} keyless clients poll the jobs in flight back to back."
            if load.pollers
            else ""
        )
    )


if __name__ == "__main__":
    main()
