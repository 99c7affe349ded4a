"""Replicas (``serve --workers N``, or N ``serve`` processes) migrate a fresh database at the same
time: one of them upgrades, the others find it done, on SQLite as on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL

PROCESSES = 4
UPGRADE = (
    "import asyncio, sys\n"
    "from minitoolai.infra.db import Database\n"
    "from minitoolai.infra.migrate import upgrade\n"
    "async def main():\n"
    "    db = Database(sys.argv[1])\n"
    "    await upgrade(db.engine)\n"
    "    await db.dispose()\n"
    "asyncio.run(main())\n"
)


def _upgrade_at_once(url: str) -> list[subprocess.CompletedProcess[str]]:
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADE, url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    done = []
    for run in runs:
        out, err = run.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(run.args, run.returncode, out, err))
    return done


@pytest.mark.parametrize("round_", range(3))
def test_processes_migrating_one_fresh_sqlite_file_at_once_all_succeed(
    tmp_path: Path, round_: int
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    for run in _upgrade_at_once(url):
        assert run.returncode == 0, run.stderr[-2000:]


def test_processes_migrating_one_fresh_postgres_database_at_once_all_succeed(
    fresh_postgres: str,
) -> None:
    if POSTGRES_URL == "off":
        pytest.skip("PostgreSQL disabled")
    for run in _upgrade_at_once(fresh_postgres):
        assert run.returncode == 0, run.stderr[-2000:]
