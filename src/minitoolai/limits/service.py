"""Rate limits on a request: admit it (or refuse it with OpenAI's 429), then finish it.

``RateLimits.admit`` runs where a request is admitted, before its hold (a refusal moves no
money). A caller with no limits at all (no default, no override) pays nothing: no store is
asked. One with limits pays one step of the store (one Redis round trip); the ``Admission`` it
gets carries OpenAI's ``x-ratelimit-*`` headers for the answer, and is finished when the
answer ends: the lease given back, the tokens counted at admission (the hold's estimate)
corrected to the usage settled (``settled``, told by ``chat.billing`` through ``CURRENT``).

When the shared store (Redis) is away, ``on_store_error`` decides: ``closed`` refuses with a
503, ``local`` counts in this process instead (each process then applies the limits on its
own), with a warning logged at most once a minute and ``minitoolai_rate_limit_fallback_total``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import anyio

from minitoolai.errors import RateLimited, ServiceUnavailable
from minitoolai.ids import hex_id
from minitoolai.limits.backend import (
    CONCURRENT,
    IMAGES,
    REQUESTS,
    TOKENS,
    Backend,
    Counts,
    Demand,
    InProcess,
    LimiterUnavailable,
    Outcome,
    Scope,
)
from minitoolai.limits.rates import NO_OVERRIDES, NO_RATES, WINDOW_MS, Rates
from minitoolai.limits.reset import duration
from minitoolai.observability import RATE_LIMIT_FALLBACK, RATE_LIMITED

if TYPE_CHECKING:
    from minitoolai.accounts.auth import Principal

log = logging.getLogger("minitoolai.limits")

OnStoreError = Literal["closed", "local"]
#: how long the shared store is left alone after it failed (requests go local or get a 503)
RETRY_STORE_S: Final = 1.0
WARN_EVERY_S: Final = 60.0

_NAMES = {
    REQUESTS: "requests per minute (RPM)",
    TOKENS: "tokens per minute (TPM)",
    IMAGES: "images per minute (IPM)",
}
_WHO = {"key": "API key", "account": "account"}


class LimitReached(RateLimited):
    """OpenAI's 429 for a rate limit: ``type`` is what ran out (``requests``, ``tokens``)."""

    def __init__(
        self, message: str, *, kind: str, retry_after: int, headers: dict[str, str]
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.error_type = kind
        self.headers = headers


@dataclass(frozen=True, slots=True)
class Defaults:
    """The configured rates of every key and of every account (``[limits.key]``...)."""

    key: Rates = NO_RATES
    account: Rates = NO_RATES


class Admission:
    """An admitted request: its headers now, its finish when it ends (once)."""

    headers: dict[str, str]

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self.headers = headers or {}

    def settled(self, tokens: int) -> None:
        """The request was billed for ``tokens`` (the tokens rate's correction)."""

    async def release(self) -> None:
        """The request has ended (answered, failed or abandoned)."""


#: the admission of a caller with no limits: nothing to count or give back
UNLIMITED: Final = Admission()
#: the admission of the request this task serves, for ``settled`` (set by the HTTP layer)
CURRENT: ContextVar[Admission] = ContextVar("minitoolai_admission", default=UNLIMITED)


def settled(tokens: int) -> None:
    """Tell the current request's admission what it was billed for (``chat.billing``)."""
    CURRENT.get().settled(tokens)


class _Counted(Admission):
    """An admission the store counted: finished through ``RateLimits.finish``."""

    def __init__(
        self,
        limits: RateLimits,
        backend: Backend,
        scopes: Sequence[Scope],
        outcome: Outcome,
        estimate: int,
        lease: str,
        headers: dict[str, str],
    ) -> None:
        super().__init__(headers)
        self.limits = limits
        self.backend = backend
        self.scopes = scopes
        self.outcome = outcome
        self.estimate = estimate  # the tokens counted at admission
        self.lease = lease
        self.used: int | None = None
        self.done = False

    def settled(self, tokens: int) -> None:
        self.used = (self.used or 0) + tokens

    async def release(self) -> None:
        if self.done:
            return
        self.done = True
        await self.limits.finish(self)


class RateLimits:
    def __init__(
        self,
        backend: Backend,
        defaults: Defaults = Defaults(),
        *,
        on_store_error: OnStoreError = "closed",
        local: InProcess | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.defaults = defaults
        self._defaults_apply = defaults.key.any or defaults.account.any
        self.on_store_error = on_store_error
        # the fallback for a shared store; the backend itself when it is in-process
        self.local = backend if isinstance(backend, InProcess) else (local or InProcess())
        self.clock = clock
        self._store_back_at = 0.0
        self._warned_at = -math.inf
        self._live: dict[str, _Counted] = {}  # leases held, for ``renew``

    def scopes(self, principal: Principal) -> list[Scope]:
        """The scopes ``principal``'s requests count against, with their rates."""
        overrides = principal.limits
        if overrides is NO_OVERRIDES and not self._defaults_apply:
            return []  # the common case: nothing to count, nothing to build
        out = []
        if principal.key_id is not None:
            rates = overrides.key.over(self.defaults.key)
            if rates.any:
                out.append(Scope("key", f"k{principal.key_id}", rates))
        rates = overrides.account.over(self.defaults.account)
        if rates.any:
            out.append(Scope("account", f"a{principal.account_id}", rates))
        return out

    def counts_tokens(self, principal: Principal) -> bool:
        """Whether a tokens-per-minute limit applies to ``principal``'s requests (their holds
        then count the prompt exactly, not on its bound)."""
        return any(scope.rates.tpm for scope in self.scopes(principal))

    async def admit(
        self,
        principal: Principal,
        *,
        tokens: int = 0,
        images: int = 0,
        requests: int = 1,
        concurrent: bool = True,
    ) -> Admission:
        """Count the request against its key's and account's limits, or raise ``LimitReached``
        (429) naming the limit; ``ServiceUnavailable`` (503) when the store is away and the
        choice is ``closed``."""
        scopes = self.scopes(principal)
        if not scopes:
            return UNLIMITED
        demand = Demand(requests, tokens, images, concurrent)
        lease = hex_id(8)
        now_ms = int(self.clock() * 1000)
        backend = self._backend()
        try:
            outcome = await backend.acquire(scopes, demand, lease, now_ms)
        except LimiterUnavailable as exc:
            backend = self._store_failed(exc)
            outcome = await backend.acquire(scopes, demand, lease, now_ms)
        headers = _headers(scopes, outcome)
        if outcome.refused is not None:
            scope = scopes[outcome.at]
            RATE_LIMITED.labels(scope=scope.kind, kind=outcome.refused).inc()
            raise _refusal(scope, outcome, demand, headers)
        admission = _Counted(self, backend, scopes, outcome, tokens, lease, headers)
        if concurrent and any(scope.rates.max_concurrent for scope in scopes):
            self._live[lease] = admission
        elif not tokens:  # nothing to correct or give back: finishing is free
            admission.done = True
        return admission

    async def finish(self, admission: _Counted) -> None:
        self._live.pop(admission.lease, None)
        delta = (admission.used or 0) - admission.estimate
        starts = [counts.start_ms for counts in admission.outcome.counts]
        with anyio.CancelScope(shield=True):
            try:
                await admission.backend.finish(admission.scopes, starts, delta, admission.lease)
            except LimiterUnavailable as exc:  # the lease runs out by itself
                log.warning("rate limits: finishing a request failed (%s)", exc)

    async def renew(self) -> None:
        """Keep the leases of this process's live requests (run every ``LEASE_MS`` / 3)."""
        now_ms = int(self.clock() * 1000)
        by_backend: dict[int, tuple[Backend, list[tuple[str, Sequence[Scope]]]]] = {}
        for lease, admission in list(self._live.items()):
            entry = by_backend.setdefault(id(admission.backend), (admission.backend, []))
            entry[1].append((lease, admission.scopes))
        for backend, leases in by_backend.values():
            try:
                await backend.renew(leases, now_ms)
            except LimiterUnavailable as exc:
                log.warning("rate limits: renewing leases failed (%s)", exc)

    async def aclose(self) -> None:
        close = getattr(self.backend, "aclose", None)
        if close is not None:
            await close()

    def _backend(self) -> Backend:
        if self.backend is self.local or time.monotonic() >= self._store_back_at:
            return self.backend
        if self.on_store_error == "closed":
            raise _unavailable()
        self._fell_back("recently unreachable")
        return self.local

    def _store_failed(self, exc: LimiterUnavailable) -> Backend:
        self._store_back_at = time.monotonic() + RETRY_STORE_S
        if self.on_store_error == "closed":
            log.error("rate limits: Redis is unreachable (%s); refusing requests (closed)", exc)
            raise _unavailable() from exc
        self._fell_back(str(exc))
        return self.local

    def _fell_back(self, why: str) -> None:
        RATE_LIMIT_FALLBACK.inc()
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning(
                "RATE LIMITS ARE PER PROCESS NOW: Redis is unreachable (%s); each process counts "
                "on its own until it is back (MINITOOLAI_LIMITS_ON_REDIS_ERROR=local)",
                why,
            )


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Rate limits cannot be checked right now; please retry shortly.",
        code="rate_limiter_unavailable",
    )


def _reset_ms(counts: Counts, now_ms: int) -> int:
    return max(0, counts.start_ms + WINDOW_MS - now_ms)


def _headers(scopes: Sequence[Scope], outcome: Outcome) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*``: for requests and for tokens, the scope with the least left."""
    headers: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        tightest: tuple[int, int, int] | None = None  # remaining, limit, reset ms
        for scope, counts in zip(scopes, outcome.counts, strict=True):
            limit = scope.rates.rpm if kind == "requests" else scope.rates.tpm
            if not limit:
                continue
            used = counts.requests if kind == "requests" else counts.tokens
            left = (max(0, limit - used), limit, _reset_ms(counts, outcome.now_ms))
            if tightest is None or left[0] < tightest[0]:
                tightest = left
        if tightest is not None:
            headers[f"x-ratelimit-limit-{kind}"] = str(tightest[1])
            headers[f"x-ratelimit-remaining-{kind}"] = str(tightest[0])
            headers[f"x-ratelimit-reset-{kind}"] = duration(tightest[2])
    return headers


def _refusal(
    scope: Scope, outcome: Outcome, demand: Demand, headers: dict[str, str]
) -> LimitReached:
    counts = outcome.counts[outcome.at]
    who = _WHO[scope.kind]
    kind = outcome.refused
    assert kind is not None
    if kind == CONCURRENT:
        limit = scope.rates.max_concurrent
        return LimitReached(
            f"Too many concurrent requests on this {who}: Limit {limit}. Please try again "
            "when one of them has finished.",
            kind=REQUESTS,
            retry_after=1,
            headers=headers,
        )
    reset_ms = _reset_ms(counts, outcome.now_ms)
    retry_after = max(1, math.ceil(reset_ms / 1000))
    name = _NAMES[kind]
    if kind == REQUESTS:
        limit, used, asked = scope.rates.rpm, counts.requests, demand.requests
    elif kind == TOKENS:
        limit, used, asked = scope.rates.tpm, counts.tokens, demand.tokens
    else:
        limit, used, asked = scope.rates.ipm, counts.images, demand.images
    assert limit is not None
    if asked > limit:
        message = (
            f"Request too large for the {name} limit of this {who}: Limit {limit}, Requested "
            f"{asked}. Ask for fewer (a shorter prompt, a smaller max_tokens, fewer images)."
        )
    else:
        message = (
            f"Rate limit reached for {name} on this {who}: Limit {limit}, Used {used}, "
            f"Requested {asked}. Please try again in {duration(reset_ms)}."
        )
    return LimitReached(
        message,
        kind=TOKENS if kind == TOKENS else REQUESTS if kind == REQUESTS else IMAGES,
        retry_after=retry_after,
        headers=headers,
    )
