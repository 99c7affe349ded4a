"""``RateLimits`` on a controlled clock: which scopes count, the headers, the refusals' words,
the correction at settle, and what happens when the shared store fails."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from minitoolai.accounts.auth import Principal
from minitoolai.errors import ServiceUnavailable
from minitoolai.limits.backend import Demand, InProcess, LimiterUnavailable, Outcome, Scope
from minitoolai.limits.rates import NO_RATES, Overrides, Rates
from minitoolai.limits.reset import duration
from minitoolai.limits.service import UNLIMITED, Defaults, LimitReached, RateLimits
from minitoolai.observability import RATE_LIMIT_FALLBACK, RATE_LIMITED


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def who(key: Rates = NO_RATES, account: Rates = NO_RATES, key_id: int | None = 1) -> Principal:
    return Principal(
        key_id, 7, "acct", "mtai-abc", None, None, limits=Overrides(key=key, account=account)
    )


def test_reset_durations_as_openai_writes_them() -> None:
    assert [duration(ms) for ms in (0, 17, 1000, 1500, 59_999, 60_000, 360_000)] == [
        "0ms",
        "17ms",
        "1s",
        "1.5s",
        "59.999s",
        "1m0s",
        "6m0s",
    ]


async def test_no_limits_no_store_step() -> None:
    class Refuses(InProcess):
        async def acquire(self, *args: object, **kw: object) -> Outcome:
            raise AssertionError("asked the store for a caller with no limits")

    limits = RateLimits(Refuses())
    assert await limits.admit(who()) is UNLIMITED


async def test_defaults_overrides_and_headers() -> None:
    clock = Clock()
    limits = RateLimits(
        InProcess(), Defaults(key=Rates(rpm=10, tpm=1000), account=Rates(rpm=3)), clock=clock
    )
    caller = who(key=Rates(rpm=2))  # the key's own rpm wins over the default; tpm stays
    first = await limits.admit(caller, tokens=100)
    assert first.headers == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "900",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    clock.now += 12.5
    first.settled(40)
    await first.release()  # 60 of the 100 tokens come back
    second = await limits.admit(caller, tokens=100)
    assert second.headers["x-ratelimit-remaining-tokens"] == "860"
    assert second.headers["x-ratelimit-reset-requests"] == "47.5s"
    before = RATE_LIMITED.labels(scope="key", kind="requests")._value.get()
    with pytest.raises(LimitReached) as caught:
        await limits.admit(caller, tokens=100)
    refusal = caught.value
    assert refusal.status_code == 429 and refusal.error_type == "requests"
    assert refusal.code == "rate_limit_exceeded"
    assert refusal.message.startswith(
        "Rate limit reached for requests per minute (RPM) on this API key: Limit 2, Used 2"
    )
    assert refusal.retry_after == 48
    assert refusal.headers["x-ratelimit-remaining-requests"] == "0"
    assert RATE_LIMITED.labels(scope="key", kind="requests")._value.get() == before + 1
    clock.now += 47.5  # the window has closed
    assert (await limits.admit(caller)).headers["x-ratelimit-remaining-requests"] == "1"


async def test_account_scope_without_a_key() -> None:
    """A signed-in person's playground run has no key: only the account's limits count."""
    limits = RateLimits(InProcess(), Defaults(key=Rates(rpm=1), account=Rates(rpm=5)))
    caller = who(key_id=None)
    for _ in range(5):
        await limits.admit(caller)
    with pytest.raises(LimitReached, match="on this account"):
        await limits.admit(caller)


class Broken:
    """A shared store that is away."""

    async def acquire(
        self, scopes: Sequence[Scope], demand: Demand, lease: str, now_ms: int
    ) -> Outcome:
        raise LimiterUnavailable("Connection refused")

    async def finish(
        self, scopes: Sequence[Scope], starts: Sequence[int], token_delta: int, lease: str
    ) -> None:
        raise LimiterUnavailable("Connection refused")

    async def renew(self, leases: Sequence[tuple[str, Sequence[Scope]]], now_ms: int) -> None:
        raise LimiterUnavailable("Connection refused")


async def test_store_away_closed_is_a_503() -> None:
    limits = RateLimits(Broken(), Defaults(key=Rates(rpm=5)), on_store_error="closed")
    for _ in range(2):  # the first finds out, the second does not even try
        with pytest.raises(ServiceUnavailable) as caught:
            await limits.admit(who())
        assert caught.value.code == "rate_limiter_unavailable"


async def test_store_away_local_counts_here_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="minitoolai.limits")
    limits = RateLimits(Broken(), Defaults(key=Rates(rpm=3)), on_store_error="local")
    before = RATE_LIMIT_FALLBACK._value.get()
    for _ in range(3):
        await limits.admit(who())
    with pytest.raises(LimitReached):  # the local counters apply the same limit
        await limits.admit(who())
    assert RATE_LIMIT_FALLBACK._value.get() == before + 4
    assert len([r for r in caplog.records if "PER PROCESS" in r.getMessage()]) == 1
