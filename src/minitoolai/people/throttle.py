"""Login throttling, in process: failures per (email, client address) in a sliding window; the
same window counts sign-ups per client address (``PeopleService.signups``, an empty email).

Enough for one replica; issue 15 moves limits to Redis so that replicas share them. The table is
bounded: when it is full, the oldest keys are dropped (an attacker flooding it only forgets their
own earlier failures, never unlocks anyone's).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class LoginThrottle:
    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 300.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def retry_after(self, email: str, address: str) -> int | None:
        """Seconds until this email may be tried again from this address; None: go ahead."""
        times = self._recent(_key(email, address))
        if len(times) < self.max_failures:
            return None
        return max(1, int(times[0] + self.window_s - self._clock()) + 1)

    def failed(self, email: str, address: str) -> None:
        self.note(email, address)

    def note(self, email: str, address: str) -> None:
        """Count one event (a failed log-in, a sign-up) for this email and address."""
        key = _key(email, address)
        times = self._recent(key)
        times.append(self._clock())
        self._failures[key] = times
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, email: str, address: str) -> None:
        self._failures.pop(_key(email, address), None)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        times = self._failures.get(key, deque())
        cutoff = self._clock() - self.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times


def _key(email: str, address: str) -> tuple[str, str]:
    return email.strip().lower()[:254], address  # a huge "email" must not grow the table
