"""Two ``serve`` processes on one database: one runs the singletons; kill it, the other does.

The singletons (hold sweeper, image job reaper, low-balance alerts) run where the election
(``minitoolai.infra.leader``) put them; the winner says so in its log.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.processes import Server, minitoolai_env

LINE = "runs the singletons"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    url: str = request.getfixturevalue("fresh_postgres")
    return url


def _leaders(servers: list[Server]) -> list[Server]:
    return [s for s in servers if s.alive() and LINE in s.log_tail(100_000)]


def test_one_process_runs_the_singletons_and_another_takes_over(
    tmp_path: Path, database_url: str
) -> None:
    env = minitoolai_env(tmp_path / "data", database_url)
    servers = [Server(env, tmp_path / f"serve{i}.log") for i in range(2)]
    try:
        for s in servers:
            s.start()
        time.sleep(3)  # past one retry: the loser has tried again, and must still have lost
        leaders = _leaders(servers)
        assert len(leaders) == 1, [s.log_tail() for s in servers]
        other = next(s for s in servers if s is not leaders[0])
        leaders[0].kill9()
        killed = time.monotonic()
        while LINE not in other.log_tail(100_000):
            assert time.monotonic() - killed < 10, other.log_tail()
            time.sleep(0.1)
        print(f"\ntook over {time.monotonic() - killed:.2f} s after kill -9")
        assert other.alive()
    finally:
        for s in servers:
            s.stop()
