"""Brute-force throttle: how many failed redemptions an account may make in a window.

Each attempt is counted as a failure while it runs and forgiven if it succeeds, so a burst of
concurrent guesses is bounded as tightly as a sequence of them. Once an account has ``limit``
failures in the last ``window``, every attempt is refused (429, a valid code too) until the
oldest leaves the window. Kept in this process's memory: with N server processes an account
gets N times the limit (issue 15 moves limits to Redis).
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta

from minitoolai.clock import utcnow
from minitoolai.errors import RateLimited

FAILURES_ALLOWED = 10
FAILURE_WINDOW = timedelta(minutes=10)
#: accounts tracked before those whose failures all left the window are dropped
_SWEEP_ABOVE = 10_000


class FailedRedemptions:
    def __init__(
        self,
        limit: int = FAILURES_ALLOWED,
        window: timedelta = FAILURE_WINDOW,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[int, deque[datetime]] = {}  # account -> when, oldest first

    def admit(self, account_id: int) -> datetime:
        """Count an attempt as a failure now (returns its mark for ``forgive``), or raise
        ``RateLimited`` when the account has used up its failures."""
        now = self.clock()
        if len(self._failures) > _SWEEP_ABOVE:
            self._sweep(now)
        failures = self._failures.setdefault(account_id, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) >= self.limit:
            wait = (failures[0] + self.window - now).total_seconds()
            raise RateLimited(
                "Too many failed code redemptions; try again later.",
                retry_after=max(1, math.ceil(wait)),
            )
        failures.append(now)
        return now

    def forgive(self, account_id: int, mark: datetime) -> None:
        """The attempt ``admit`` marked succeeded (or never reached the database)."""
        failures = self._failures.get(account_id)
        if failures is None:
            return
        with contextlib.suppress(ValueError):  # already out of the window
            failures.remove(mark)
        if not failures:
            del self._failures[account_id]

    def _sweep(self, now: datetime) -> None:
        for account_id, failures in list(self._failures.items()):
            if failures[-1] <= now - self.window:
                del self._failures[account_id]
