"""The settlement journal: each settle and release, written down before it goes to the database.

A step is one line of JSON appended (one ``os.write`` to an ``O_APPEND`` file) to a segment file
of this process, under ``<data_dir>/journal/``, before the group-commit writer takes it; the
process holds an exclusive ``flock`` on each of its segments for as long as it lives. The write
is in the kernel's page cache when ``os.write`` returns, so it outlives the process (``kill -9``,
a crash, the OOM killer); there is no fsync, so it does not outlive the machine (docs/billing.md).

A segment is rotated after ``SEGMENT_BYTES`` and deleted once every step in it was applied (or
found already finished). A segment whose ``flock`` can be taken belongs to a dead process: the
ledger replays its steps through the normal finish path (each idempotent: a step applied before
changes nothing) and then deletes it, so a settle lost with its process is charged from here,
never dropped to zero by the sweeper.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from minitoolai.ledger.store.base import Finish, NewCharge

log = logging.getLogger("minitoolai.ledger")

#: a segment is closed for new steps past this size (and deleted once all of them committed)
SEGMENT_BYTES = 1 << 20
SUFFIX = ".jsonl"


def encode(step: Finish, hold: NewCharge | None = None) -> bytes:
    """A step's line; ``hold``: the charge's hold when a database crash could have lost it
    (``Ledger.hold(durable=False)``), so a replay can re-create it."""
    return orjson.dumps(
        {
            "hold": None if hold is None else _hold_fields(hold),
            "id": step.charge_id,
            "kind": step.kind,
            "cost": step.cost,
            "prompt": step.prompt_tokens,
            "completion": step.completion_tokens,
            "units": step.units,
            "estimated": step.estimated,
            "served_by": step.served_by,
            "result": step.result,
            "note": step.note,
            "now": step.now,
            "lease": step.lease,
        }
    )


def _hold_fields(c: NewCharge) -> dict[str, Any]:
    return {
        "account": c.account_id,
        "key": c.api_key_id,
        "kind": c.kind,
        "model": c.model,
        "amount": c.amount,
        "at": c.now,
        "expires": c.expires_at,
        "request_id": c.request_id,
    }


def decode(line: bytes) -> Finish:
    """A journal line as its step; ``ValueError``, ``KeyError`` or ``TypeError`` if not one."""
    return decode_entry(line)[0]


def decode_entry(line: bytes) -> tuple[Finish, NewCharge | None]:
    """A journal line as its step and the hold it carries (None: none, or a line of before
    holds were kept); ``ValueError``, ``KeyError`` or ``TypeError`` if not a step."""
    d: dict[str, Any] = orjson.loads(line)
    step = _step(d)
    h = d.get("hold")
    lease = d.get("lease")
    if lease is not None and (h is None or not isinstance(lease, str)):
        raise ValueError("a leased step needs its lease and its hold")
    if h is None:
        return step, None
    account, amount = _count(h["account"]), _count(h["amount"])
    if account is None or amount is None:
        raise ValueError("a hold needs its account and amount")
    hold = NewCharge(
        id=step.charge_id,
        account_id=account,
        api_key_id=_count(h["key"]),
        kind=_text(h["kind"]),
        model=_text(h["model"]),
        amount=amount,
        idempotency_key=None,
        request_hash=None,
        now=datetime.fromisoformat(h["at"]),
        expires_at=datetime.fromisoformat(h["expires"]),
        request_id=None if h["request_id"] is None else _text(h["request_id"]),
    )
    if lease is not None:  # held on a lease: the step writes the charge row itself
        step.lease, step.charge = lease, hold
    return step, hold


def _step(d: dict[str, Any]) -> Finish:
    kind = d["kind"]
    if kind not in ("settle", "release") or not isinstance(d["id"], str):
        raise ValueError(f"not a step: {kind!r}")
    return Finish(
        charge_id=d["id"],
        kind=kind,
        cost=_count(d["cost"]) or 0,
        prompt_tokens=_count(d["prompt"]),
        completion_tokens=_count(d["completion"]),
        units=_count(d["units"]),
        estimated=bool(d["estimated"]),
        served_by=d["served_by"],
        result=d["result"],
        note=d["note"],
        now=datetime.fromisoformat(d["now"]),
    )


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not a text: {value!r}")
    return value


@dataclass
class _Segment:
    fd: int
    size: int = 0
    pending: int = 0  # steps written and not yet applied


@dataclass
class DeadSegment:
    """A dead process's segment, locked by us until ``Journal.forget`` or ``Journal.drop``."""

    path: Path
    fd: int

    def steps(self) -> Iterator[Finish]:
        """Its steps in order; a line that is not one is logged and skipped."""
        return (step for step, _ in self.entries())

    def entries(self) -> Iterator[tuple[Finish, NewCharge | None]]:
        """Its steps in order, each with the hold its line carries (``decode_entry``)."""
        with os.fdopen(os.dup(self.fd), "rb") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield decode_entry(line)
                except (ValueError, KeyError, TypeError) as exc:
                    log.error(
                        "journal %s line %d is not a step (%s); skipped", self.path, number, exc
                    )


class Journal:
    """This process's segments (one open for appends) and the replay of dead processes' ones."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._segments: dict[Path, _Segment] = {}
        self._current: Path | None = None

    def append(self, step: Finish, hold: NewCharge | None = None) -> Path:
        """Write ``step`` down (with ``hold``: see ``encode``); returns its segment, for
        ``committed`` once it is applied."""
        path = self._current
        if path is None or self._segments[path].size >= SEGMENT_BYTES:
            path = self._rotate()
        segment = self._segments[path]
        line = encode(step, hold) + b"\n"
        os.write(segment.fd, line)
        segment.size += len(line)
        segment.pending += 1
        return path

    def committed(self, path: Path) -> None:
        """One step of ``path`` is in the database (or needed nothing): a segment closed for
        appends with none left is deleted."""
        segment = self._segments.get(path)
        if segment is None:
            return
        segment.pending -= 1
        if segment.pending <= 0 and path != self._current:
            self._delete(path)

    @property
    def pending(self) -> int:
        return sum(s.pending for s in self._segments.values())

    def close(self) -> None:
        """At shutdown: segments whose steps all landed are deleted; one that still has some
        (a settle the database refused) is left, unlocked, for the next process to replay."""
        self._current = None
        for path, segment in list(self._segments.items()):
            if segment.pending <= 0:
                self._delete(path)
            else:
                log.warning("journal %s keeps %d unapplied steps for replay", path, segment.pending)
                os.close(segment.fd)
                del self._segments[path]

    def dead(self) -> Iterator[DeadSegment]:
        """The segments of processes that are gone (their lock can be taken), each locked."""
        try:
            paths = sorted(self.directory.glob("*" + SUFFIX))
        except OSError:
            return
        for path in paths:
            if path in self._segments:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # another process replayed it meanwhile
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                # the replayer before us may have deleted it between our open and our lock
                if os.stat(path).st_ino != os.fstat(fd).st_ino:
                    raise FileNotFoundError(path)
            except (BlockingIOError, FileNotFoundError):  # alive, or already replayed
                os.close(fd)
                continue
            yield DeadSegment(path, fd)

    @staticmethod
    def drop(dead: DeadSegment) -> None:
        """A replayed segment: deleted (while still locked), then unlocked."""
        try:
            dead.path.unlink(missing_ok=True)
        finally:
            os.close(dead.fd)

    @staticmethod
    def forget(dead: DeadSegment) -> None:
        """A replay that failed midway: unlocked, left for the next try."""
        os.close(dead.fd)

    def _rotate(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(6)}"
        # made and locked under a name the replay ignores, then renamed: no other process can
        # take a brand-new segment for a dead one's
        temporary = self.directory / (".new-" + name)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = self.directory / (name + SUFFIX)
        os.rename(temporary, path)
        previous = self._current
        self._segments[path] = _Segment(fd)
        self._current = path
        if previous is not None and self._segments[previous].pending <= 0:
            self._delete(previous)
        return path

    def _delete(self, path: Path) -> None:
        segment = self._segments.pop(path)
        try:
            path.unlink(missing_ok=True)  # while still locked: no one replays it meanwhile
        finally:
            os.close(segment.fd)
