"""The contract of a limiter's store, and the rule both stores apply.

A request names the scopes it counts against (its key's and its account's, each with the
rates that apply) and what it asks for (``Demand``). The store checks every rate of every
scope and, only if all pass, counts the request in all of them: one atomic step, so N
processes sharing a store can never admit more than a limit between them.

The window of a scope opens with the first request counted after the previous window closed
and lasts a minute (``WINDOW_MS``); requests, tokens and images are counted in it. A request in
flight holds a lease (for ``max_concurrent``) until it ends, or until the lease runs out if its
process died without saying so (``lease_ms``; a live process renews its leases).

``InProcess`` keeps the counters in this process (the embedded default); ``limits.redis``
keeps them in Redis, one Lua script per admission.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from minitoolai.limits.rates import WINDOW_MS, Rates

#: a lease not renewed for this long is given back (its process is gone)
LEASE_MS: Final = 60_000
#: what a refusal names, in OpenAI's words where OpenAI has them
REQUESTS, TOKENS, IMAGES, CONCURRENT = "requests", "tokens", "images", "concurrent"
#: the refusals in the order the scripts number them (1-based)
REFUSALS: Final = (REQUESTS, TOKENS, IMAGES, CONCURRENT)


class LimiterUnavailable(Exception):
    """The shared store cannot be reached (Redis is down)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """One thing counted: ``kind`` is ``key`` or ``account``; ``ident`` names its counters."""

    kind: str
    ident: str
    rates: Rates

    @property
    def windowed(self) -> bool:
        """Whether any per-minute rate applies (else no window is kept for it)."""
        return bool(self.rates.rpm or self.rates.tpm or self.rates.ipm)


@dataclass(frozen=True, slots=True)
class Demand:
    requests: int = 1
    tokens: int = 0
    images: int = 0
    concurrent: bool = True  # the request holds a lease while it runs


@dataclass(frozen=True, slots=True)
class Counts:
    """One scope's window: after the admission (admitted) or as it was (refused)."""

    start_ms: int
    requests: int
    tokens: int
    images: int
    in_flight: int


@dataclass(frozen=True, slots=True)
class Outcome:
    refused: str | None  # None: admitted; else one of ``REFUSALS``
    at: int  # the index of the scope that refused
    counts: tuple[Counts, ...]
    now_ms: int


class Backend(Protocol):
    async def acquire(
        self, scopes: Sequence[Scope], demand: Demand, lease: str, now_ms: int
    ) -> Outcome:
        """Check every rate of every scope; count the demand in all of them only if all pass.
        A ``demand.concurrent`` request takes ``lease`` in the scopes with ``max_concurrent``."""
        ...

    async def finish(
        self, scopes: Sequence[Scope], starts: Sequence[int], token_delta: int, lease: str
    ) -> None:
        """The request ended: add ``token_delta`` (the real usage less the estimate) to the
        windows it was counted in, if they are still open (``starts``), and give the lease
        back."""
        ...

    async def renew(self, leases: Sequence[tuple[str, Sequence[Scope]]], now_ms: int) -> None:
        """Push back the expiry of these live leases."""
        ...


def refusal(rates: Rates, counts: Counts, demand: Demand) -> str | None:
    """The first rate ``demand`` would break in a scope counted at ``counts`` (the rule the
    Lua script applies, too)."""
    if rates.rpm and counts.requests + demand.requests > rates.rpm:
        return REQUESTS
    if rates.tpm and demand.tokens and counts.tokens + demand.tokens > rates.tpm:
        return TOKENS
    if rates.ipm and demand.images and counts.images + demand.images > rates.ipm:
        return IMAGES
    if rates.max_concurrent and demand.concurrent and counts.in_flight >= rates.max_concurrent:
        return CONCURRENT
    return None


class InProcess:
    """Counters in this process's memory: exact for one process, and the fallback when the
    shared store is away. The event loop runs one step at a time, so each step is atomic."""

    def __init__(self, lease_ms: int = LEASE_MS) -> None:
        self.lease_ms = lease_ms
        self._windows: dict[str, list[int]] = {}  # ident -> [start, requests, tokens, images]
        self._leases: dict[str, dict[str, int]] = {}  # ident -> {lease: expiry}
        self._steps = 0

    async def acquire(
        self, scopes: Sequence[Scope], demand: Demand, lease: str, now_ms: int
    ) -> Outcome:
        self._steps += 1
        if self._steps % 4096 == 0:
            self._forget_closed(now_ms)
        counts = [self._counts(scope, now_ms) for scope in scopes]
        for index, (scope, seen) in enumerate(zip(scopes, counts, strict=True)):
            refused = refusal(scope.rates, seen, demand)
            if refused is not None:
                return Outcome(refused, index, tuple(counts), now_ms)
        after = []
        for scope, seen in zip(scopes, counts, strict=True):
            in_flight = seen.in_flight
            if scope.windowed:
                self._windows[scope.ident] = window = [
                    seen.start_ms,
                    seen.requests + demand.requests,
                    seen.tokens + demand.tokens,
                    seen.images + demand.images,
                ]
            else:
                window = [seen.start_ms, 0, 0, 0]
            if scope.rates.max_concurrent and demand.concurrent:
                self._leases.setdefault(scope.ident, {})[lease] = now_ms + self.lease_ms
                in_flight += 1
            after.append(Counts(window[0], window[1], window[2], window[3], in_flight))
        return Outcome(None, 0, tuple(after), now_ms)

    async def finish(
        self, scopes: Sequence[Scope], starts: Sequence[int], token_delta: int, lease: str
    ) -> None:
        for scope, start in zip(scopes, starts, strict=True):
            window = self._windows.get(scope.ident)
            if token_delta and window is not None and window[0] == start:
                window[2] = max(0, window[2] + token_delta)
            held = self._leases.get(scope.ident)
            if held is not None:
                held.pop(lease, None)
                if not held:
                    del self._leases[scope.ident]

    async def renew(self, leases: Sequence[tuple[str, Sequence[Scope]]], now_ms: int) -> None:
        for lease, scopes in leases:
            for scope in scopes:
                held = self._leases.get(scope.ident)
                if held is not None and lease in held:
                    held[lease] = now_ms + self.lease_ms

    def _counts(self, scope: Scope, now_ms: int) -> Counts:
        in_flight = 0
        if scope.rates.max_concurrent:
            held = self._leases.get(scope.ident)
            if held:
                for lease in [lease for lease, until in held.items() if until <= now_ms]:
                    del held[lease]
                in_flight = len(held)
        window = self._windows.get(scope.ident) if scope.windowed else None
        if window is None or now_ms >= window[0] + WINDOW_MS:
            return Counts(now_ms, 0, 0, 0, in_flight)
        return Counts(window[0], window[1], window[2], window[3], in_flight)

    def _forget_closed(self, now_ms: int) -> None:
        """Drop windows that have closed, so memory follows the keys in use, not all keys."""
        closed = [ident for ident, w in self._windows.items() if now_ms >= w[0] + WINDOW_MS]
        for ident in closed:
            del self._windows[ident]
