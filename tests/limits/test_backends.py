"""The two stores apply the same rule: a minute's window per scope, every rate checked and the
request counted in all scopes in one step, leases for requests in flight. Each test runs on
the in-process counters and on the real Redis (database 5, a prefix of its own), with the
clock given by the test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from minitoolai.limits.backend import (
    CONCURRENT,
    IMAGES,
    REQUESTS,
    TOKENS,
    Backend,
    Demand,
    InProcess,
    Scope,
)
from minitoolai.limits.rates import WINDOW_MS, Rates
from minitoolai.limits.redis_backend import RedisBackend
from tests.limits.conftest import REDIS_URL

T0 = 1_800_000_000_000  # ms


@pytest.fixture(params=["in-process", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "in-process":
        yield InProcess()
        return
    prefix = f"mtai-test-limits:{uuid.uuid4().hex[:8]}:"
    client = Redis.from_url(REDIS_URL)
    store = RedisBackend(client, prefix)
    try:
        yield store
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def scope(ident: str = "k1", kind: str = "key", **rates: int) -> Scope:
    return Scope(kind, ident + uuid.uuid4().hex[:6], Rates(**rates))


async def test_requests_per_minute_window(backend: Backend) -> None:
    s = scope(rpm=3)
    outcomes = [await backend.acquire([s], Demand(), f"l{i}", T0 + i) for i in range(4)]
    assert [o.refused for o in outcomes] == [None, None, None, REQUESTS]
    assert [o.counts[0].requests for o in outcomes] == [1, 2, 3, 3]
    assert outcomes[0].counts[0].start_ms == T0  # the window opened with the first request
    # still inside the window one ms before it closes; a new window when it has
    almost = await backend.acquire([s], Demand(), "x", T0 + WINDOW_MS - 1)
    assert almost.refused == REQUESTS
    fresh = await backend.acquire([s], Demand(), "y", T0 + WINDOW_MS)
    assert fresh.refused is None
    assert fresh.counts[0].start_ms == T0 + WINDOW_MS
    assert fresh.counts[0].requests == 1


async def test_tokens_counted_then_corrected(backend: Backend) -> None:
    s = scope(tpm=1000)
    first = await backend.acquire([s], Demand(tokens=800), "a", T0)
    assert first.refused is None and first.counts[0].tokens == 800
    refused = await backend.acquire([s], Demand(tokens=300), "b", T0 + 1)
    assert refused.refused == TOKENS
    # the first used 100 of the 800 it was counted for: 700 come back
    await backend.finish([s], [first.counts[0].start_ms], -700, "a")
    again = await backend.acquire([s], Demand(tokens=300), "c", T0 + 2)
    assert again.refused is None and again.counts[0].tokens == 400
    # a correction for a window that has closed changes nothing in the new one
    later = await backend.acquire([s], Demand(tokens=10), "d", T0 + WINDOW_MS)
    await backend.finish([s], [T0], -400, "c")
    after = await backend.acquire([s], Demand(tokens=1), "e", T0 + WINDOW_MS + 1)
    assert later.counts[0].tokens == 10 and after.counts[0].tokens == 11


async def test_images_per_minute(backend: Backend) -> None:
    s = scope(ipm=4)
    assert (await backend.acquire([s], Demand(0, 0, 3, False), "a", T0)).refused is None
    assert (await backend.acquire([s], Demand(0, 0, 2, False), "b", T0)).refused == IMAGES
    assert (await backend.acquire([s], Demand(0, 0, 1, False), "c", T0)).refused is None


async def test_concurrency_leases(backend: Backend) -> None:
    s = scope(max_concurrent=2)
    assert (await backend.acquire([s], Demand(), "a", T0)).refused is None
    second = await backend.acquire([s], Demand(), "b", T0)
    assert second.refused is None and second.counts[0].in_flight == 2
    assert (await backend.acquire([s], Demand(), "c", T0)).refused == CONCURRENT
    await backend.finish([s], [T0], 0, "a")
    assert (await backend.acquire([s], Demand(), "c", T0)).refused is None
    # a lease nobody renews runs out (its process died); a renewed one does not
    await backend.renew([("b", [s])], T0 + 50_000)
    late = await backend.acquire([s], Demand(), "d", T0 + 60_001)
    assert late.refused is None and late.counts[0].in_flight == 2  # b (renewed) and d


async def test_all_scopes_or_none(backend: Backend) -> None:
    """A request the account refuses is not counted against its key either."""
    key, account = scope("k", "key", rpm=10), scope("a", "account", rpm=2)
    other_key = scope("k2", "key", rpm=10)
    assert (await backend.acquire([key, account], Demand(), "1", T0)).refused is None
    assert (await backend.acquire([other_key, account], Demand(), "2", T0)).refused is None
    refused = await backend.acquire([key, account], Demand(), "3", T0)
    assert refused.refused == REQUESTS and refused.at == 1
    assert refused.counts[0].requests == 1  # the key's count did not move


async def test_redis_admits_exactly_the_limit_under_200_concurrent_acquires() -> None:
    prefix = f"mtai-test-limits:{uuid.uuid4().hex[:8]}:"
    clients = [Redis.from_url(REDIS_URL) for _ in range(4)]
    stores = [RedisBackend(client, prefix) for client in clients]  # as if four processes
    s = scope(rpm=137, tpm=137 * 50)
    try:
        outcomes = await asyncio.gather(
            *(
                stores[i % 4].acquire([s], Demand(tokens=50), f"l{i}", T0 + i % 7)
                for i in range(200)
            )
        )
        assert sum(o.refused is None for o in outcomes) == 137
        counts = sorted(o.counts[0].requests for o in outcomes if o.refused is None)
        assert counts == list(range(1, 138))  # each admission saw its own, exact count
    finally:
        keys = [key async for key in clients[0].scan_iter(match=prefix + "*")]
        if keys:
            await clients[0].delete(*keys)
        for client in clients:
            await client.aclose()
