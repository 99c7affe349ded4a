"""Holds from several OS processes on one SQLite file: the conditional UPDATE still holds."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from minitoolai.accounts.service import AccountService
from minitoolai.infra.db import Database
from minitoolai.infra.migrate import upgrade
from minitoolai.ledger.service import Ledger

WORKER = """
import asyncio, sys
from minitoolai.errors import InsufficientCredit
from minitoolai.infra.db import Database
from minitoolai.ledger.service import Ledger

async def main(url, account_id):
    db = Database(url)
    ledger = Ledger(db)
    wins = 0
    async def one():
        nonlocal wins
        try:
            hold = await ledger.hold(account_id, 7, kind="chat", model="m")
        except InsufficientCredit:
            return
        await ledger.settle(hold.charge_id, 7)
        wins += 1
    await asyncio.gather(*(one() for _ in range(60)))
    await ledger.close()
    await db.dispose()
    print(wins)

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def test_four_processes_race_for_one_balance(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"

    async def setup() -> int:
        db = Database(url)
        await upgrade(db.engine)
        account, _ = await AccountService(db, Ledger(db)).create("shared", 1000)
        await db.dispose()
        return account.id

    account_id = asyncio.run(setup())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(account_id)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    wins = sum(int(p.communicate(timeout=120)[0]) for p in procs)
    assert all(p.returncode == 0 for p in procs)

    async def check() -> tuple[tuple[int, int], tuple[int, int]]:
        db = Database(url)
        ledger = Ledger(db)
        try:
            return await ledger.balances(account_id), await ledger.entry_sums(account_id)
        finally:
            await db.dispose()

    balances, sums = asyncio.run(check())
    assert wins == 1000 // 7  # 240 attempts, 142 fit
    assert balances == sums == (1000 - 7 * wins, 0)
