"""Instructions PostgreSQL executes per charged request (valgrind's callgrind on the server).

The database's side of ``bench.instructions``: a CPU figure for the ledger's statements that a
busy machine cannot move (the bench's "+DB" CPU seconds swing with the machine's load, and its
profile needs a server built for it). A throwaway cluster (``initdb`` in a temporary folder,
the PostgreSQL binaries of this machine) runs under ``valgrind --tool=callgrind
--trace-children=yes``; the ledger (``minitoolai.ledger.service.Ledger``, what ``serve`` runs,
without HTTP) makes and settles chat holds on one account, ``--concurrency`` at a time: held
together, then settled together, so the group-commit writer's batches are the same from run to
run. Counted: the instructions of the ledger's own connection (``store/lane.py``: every batch
of settles when one is in flight at a time, as under load), the difference between a run of
``--requests`` and one of 96, so start-up and warm-up cancel out. Lease growths (a pool
connection's, every few hundred requests) are not counted.

Run as root (the server runs as ``postgres``) or as a user that may run it:
``python -m bench.pg_instructions [--concurrency 1 16] [--requests 496] [--keep DIR]``.
``--keep DIR`` keeps the lane's dumps, for ``callgrind_annotate --inclusive=yes``.
Another commit: ``PYTHONPATH=/its/worktree/src python -m bench.pg_instructions``.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

_TOTALS = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.MULTILINE)
_WARM = 96  # the shorter run: start-up, migrations and warm-up, subtracted


def _bindir() -> Path:
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=True)
        if (Path(out.stdout.strip()) / "initdb").exists():
            return Path(out.stdout.strip())
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        return Path(candidate)
    raise SystemExit("no PostgreSQL binaries (initdb, postgres) found")


def _as_server(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as ``postgres`` then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Server:
    """A cluster of its own under callgrind, on ``port``, its dumps in ``folder``."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        bindir = _bindir()
        data = folder / "data"
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres")
        subprocess.run(
            _as_server([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
            check=True,
            capture_output=True,
        )
        self.proc = subprocess.Popen(
            _as_server(
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--trace-children=yes",
                    f"--callgrind-out-file={folder}/cg.%p",
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(folder),
                    "-c",
                    "listen_addresses=127.0.0.1",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/ledger"

    async def ready(self, timeout_s: float = 120.0) -> None:
        import asyncpg

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                conn = await asyncpg.connect(
                    host="127.0.0.1", port=self.port, user="postgres", database="postgres"
                )
                break
            except (OSError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        await conn.execute("CREATE DATABASE ledger")
        await conn.close()

    def instructions(self, pid: int) -> int:
        """A backend's instructions, from the dump it wrote when it exited."""
        path = self.folder / f"cg.{pid}"
        for _ in range(100):
            if path.exists() and (m := _TOTALS.search(path.read_bytes())):
                return int(m.group(1))
            time.sleep(0.1)
        raise RuntimeError(f"no callgrind dump from backend {pid}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _run(server: Server, requests: int, concurrency: int, fresh: bool) -> int:
    """The lane backend's pid, after one run of ``requests`` holds and settles."""
    from sqlalchemy import text

    from minitoolai.accounts.service import AccountService
    from minitoolai.infra.db import Database
    from minitoolai.infra.migrate import upgrade
    from minitoolai.ledger.service import Ledger, UsageRecord

    db = Database(server.url)
    if fresh:
        async with db.engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await upgrade(db.engine)
    ledger = Ledger(db)
    account, _ = await AccountService(db, ledger).create(f"bench-{time.time_ns()}", 10**12)
    usage = UsageRecord(prompt_tokens=10, completion_tokens=5, served_by="bench")

    async def hold() -> str:
        h = await ledger.hold(account.id, 1_000, kind="chat", model="m", durable=False)
        return h.charge_id

    for _ in range(requests // concurrency):
        held = await asyncio.gather(*(hold() for _ in range(concurrency)))
        await asyncio.gather(*(ledger.settle(c, 37, usage) for c in held))
    lane = ledger.finisher.writer.store._lane._conn  # type: ignore[attr-defined]
    pid = int(lane.get_server_pid())
    await ledger.close()
    await db.dispose()
    return pid


def measure(server: Server, requests: int, concurrency: int, keep: Path | None) -> float:
    """Instructions per request in the lane's backend (the long run less the short one)."""
    counts, done = [], []
    for n in (_WARM, requests):
        n -= n % concurrency  # whole rounds
        pid = asyncio.run(_run(server, n, concurrency, fresh=n == _WARM))
        counts.append(server.instructions(pid))
        done.append(n)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(server.folder / f"cg.{pid}", keep / f"lane-c{concurrency}-n{n}")
    return (counts[1] - counts[0]) / (done[1] - done[0])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_instructions", description=__doc__)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--requests", type=int, default=496)
    parser.add_argument("--port", type=int, default=5499)
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.requests <= _WARM:
        parser.error(f"--requests must be more than {_WARM}")
    with tempfile.TemporaryDirectory(prefix="bench-pg-instructions-") as tmp:
        server = Server(Path(tmp), args.port)
        try:
            asyncio.run(server.ready())
            rows = [(c, measure(server, args.requests, c, args.keep)) for c in args.concurrency]
        finally:
            server.stop()
    print("| concurrency | PostgreSQL instructions per hold + settle (the ledger's connection) |")
    print("|---|---|")
    for concurrency, per_request in rows:
        print(f"| {concurrency} | {per_request / 1e3:,.0f} K |")


if __name__ == "__main__":
    main()
