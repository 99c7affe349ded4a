"""The settlement journal: what a process writes down before its settles commit, and the replay
of a dead process's segments (a real subprocess, killed with SIGKILL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from minitoolai.accounts.service import AccountService
from minitoolai.infra.db import Database
from minitoolai.ledger import journal as journal_module
from minitoolai.ledger.journal import Journal, decode, encode
from minitoolai.ledger.service import Ledger, Settlement, UsageRecord
from minitoolai.ledger.store import Finish
from tests.conftest import unique
from tests.support.ledgers import OPEN as _open
from tests.support.ledgers import close_ledgers as close_ledgers  # autouse


def _step(charge_id: str, cost: int = 5) -> Finish:
    return Finish(
        charge_id=charge_id,
        kind="settle",
        cost=cost,
        prompt_tokens=3,
        completion_tokens=4,
        units=None,
        estimated=True,
        served_by="dep",
        result={"answer": [1, "two"]},
        note=None,
        now=datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC),
    )


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl"))


def test_a_step_reads_back_as_it_was_written() -> None:
    step = _step("req_1")
    assert decode(encode(step)) == step


def test_segments_rotate_and_go_once_their_steps_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "SEGMENT_BYTES", 300)
    journal = Journal(tmp_path / "journal")
    written = [journal.append(_step(f"req_{i}")) for i in range(8)]
    first = written[0]
    assert len(set(written)) > 2  # rotated
    assert _segments(tmp_path / "journal") == sorted(set(written))
    for i, segment in enumerate(written):
        if segment == first:
            journal.committed(segment)
            if i < len(written) - 1 and written[i + 1] == first:
                assert first.exists()  # one step of it is still on its way
    assert not first.exists()  # every step of it committed, and it is closed for appends
    last = written[-1]
    for segment in written[1:]:
        journal.committed(segment)
    assert _segments(tmp_path / "journal") == [last]  # the open one stays until close
    journal.close()
    assert _segments(tmp_path / "journal") == []


def test_a_live_process_segments_are_not_taken_for_dead_ones(tmp_path: Path) -> None:
    mine, theirs = Journal(tmp_path), Journal(tmp_path)
    mine.append(_step("req_a"))
    assert list(theirs.dead()) == []  # locked by a journal that is alive (even in this process)
    mine.close()


def test_close_leaves_unapplied_steps_for_the_next_process(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append(_step("req_a"))
    journal.close()
    (dead,) = Journal(tmp_path).dead()
    assert [s.charge_id for s in dead.steps()] == ["req_a"]
    Journal.drop(dead)
    assert _segments(tmp_path) == []


CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from datetime import UTC, datetime
    from minitoolai.ledger.journal import Journal
    from minitoolai.ledger.store import Finish

    journal = Journal(Path(sys.argv[1]))
    for i, charge_id in enumerate(sys.argv[2:]):
        journal.append(Finish(charge_id=charge_id, kind="settle", cost=100 + i,
            prompt_tokens=1, completion_tokens=2, units=None, estimated=False,
            served_by="child", result=None, note=None, now=datetime.now(UTC)))
    print("written", flush=True)
    time.sleep(60)
    """
)


async def _ledger_with_holds(
    db: Database, directory: Path, n: int
) -> tuple[Ledger, int, list[str]]:
    ledger = Ledger(db, journal=Journal(directory))
    _open.append(ledger)
    account, _ = await AccountService(db, ledger).create(unique("jr"), 10_000)
    holds = [await ledger.hold(account.id, 1_000, kind="chat", model="m") for _ in range(n)]
    return ledger, account.id, [h.charge_id for h in holds]


async def test_a_killed_process_settles_are_replayed_from_its_journal(
    db: Database, tmp_path: Path
) -> None:
    """A process journals three settles and is killed -9 before any commits: the next
    process's replay charges each exactly once (once more changes nothing), and deletes the
    segment; a line that is not a step is logged and skipped."""
    directory = tmp_path / "journal"
    ledger, acct, ids = await _ledger_with_holds(db, directory, 4)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(directory), *ids[:3]], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "written\n"
        assert list(ledger.journal.dead()) == []  # type: ignore[union-attr]  # alive: locked
        (segment,) = _segments(directory)
        with segment.open("ab") as fh:  # a torn or foreign line
            fh.write(b'{"id": "req_x", "kind": "settle", "cost": \n')
            fh.write(b"not json at all\n")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert await ledger.balances(acct) == (10_000, 4_000)  # nothing committed
    assert await ledger.replay_journals() == 3
    assert await ledger.balances(acct) == (10_000 - 100 - 101 - 102, 1_000)
    assert await ledger.balances(acct) == await ledger.entry_sums(acct)
    assert _segments(directory) == []
    assert await ledger.replay_journals() == 0


async def test_a_replayed_settle_whose_hold_expired_is_charged_late(
    db: Database, tmp_path: Path
) -> None:
    """The sweeper released the dead process's hold before the replay: the settle is charged
    from the balance after all (a late settle), never dropped to zero."""
    directory = tmp_path / "journal"
    dead = Journal(directory)
    ledger, acct, (charge_id,) = await _ledger_with_holds(db, directory, 1)
    dead.append(_step(charge_id, cost=250))
    dead.close()  # the dead process's lock is gone, its step never committed
    await ledger.sweep_expired(datetime.now(UTC) + timedelta(days=1))
    assert await ledger.balances(acct) == (10_000, 0)
    assert await ledger.replay_journals() == 1
    assert await ledger.balances(acct) == (10_000 - 250, 0)
    assert await ledger.balances(acct) == await ledger.entry_sums(acct)


async def test_journal_mode_answers_before_the_commit_and_commits_after(
    db: Database, tmp_path: Path
) -> None:
    ledger = Ledger(db, journal=Journal(tmp_path), settle_wait="journal", gather_s=0.05)
    _open.append(ledger)
    account, _ = await AccountService(db, ledger).create(unique("jm"), 10_000)
    hold = await ledger.hold(account.id, 1_000, kind="chat", model="m")
    got = await ledger.settle(hold.charge_id, 300, UsageRecord(1, 1))
    assert got == Settlement(hold.charge_id, 300, True, pending=True)
    assert len(_segments(tmp_path)) == 1
    assert await ledger.balances(account.id) == (10_000, 1_000)  # not committed yet
    await ledger.flush()
    assert await ledger.balances(account.id) == (10_000 - 300, 0)
    # an idempotent request's stored answer waits for its commit, whatever the mode
    keyed = await ledger.hold(account.id, 1_000, kind="chat", model="m")
    got = await ledger.settle(keyed.charge_id, 200, UsageRecord(1, 1, result={"a": 1}))
    assert got == Settlement(keyed.charge_id, 200, True)
    assert await ledger.balances(account.id) == (10_000 - 500, 0)


def test_journal_mode_needs_a_journal(db: Database) -> None:
    with pytest.raises(ValueError):
        Ledger(db, settle_wait="journal")


async def test_a_writer_stopped_midway_leaves_its_settles_for_replay(
    db: Database, tmp_path: Path
) -> None:
    """Shutdown before the batch ran (the writer's task cancelled): the settle is deferred and
    stays in the journal, which the next process replays."""
    directory = tmp_path / "journal"
    ledger = Ledger(db, journal=Journal(directory), gather_s=10)
    account, _ = await AccountService(db, ledger).create(unique("js"), 10_000)
    hold = await ledger.hold(account.id, 1_000, kind="chat", model="m")
    settling = asyncio.ensure_future(ledger.settle(hold.charge_id, 400))
    await asyncio.sleep(0.05)
    (writer,) = ledger.writer._tasks
    writer.cancel()
    assert (await settling).deferred
    assert ledger.journal is not None
    ledger.journal.close()
    await ledger.store.close()
    successor = Ledger(db, journal=Journal(directory))
    _open.append(successor)
    assert await successor.replay_journals() == 1
    assert await successor.balances(account.id) == (10_000 - 400, 0)


async def test_a_journal_that_cannot_be_written_still_commits(db: Database, tmp_path: Path) -> None:
    """A full disk or a bad data dir costs the step its crash safety, not its settle: it
    commits, and the settle waits for that even in journal mode."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    ledger = Ledger(db, journal=Journal(not_a_dir), settle_wait="journal")
    _open.append(ledger)
    account, _ = await AccountService(db, ledger).create(unique("jf"), 10_000)
    hold = await ledger.hold(account.id, 1_000, kind="chat", model="m")
    got = await ledger.settle(hold.charge_id, 300)
    assert got == Settlement(hold.charge_id, 300, True)  # committed, not pending
    assert await ledger.balances(account.id) == (10_000 - 300, 0)
