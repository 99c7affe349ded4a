"""The byte-budget LRU on its own, with plain values standing in for pipelines."""

from __future__ import annotations

import threading
import time
import weakref

import pytest

from minitoolai.engines.diffusion import ByteBudgetLRU


def loader(value: str, size: int, calls: list[str]) -> tuple[str, int]:
    calls.append(value)
    return value, size


def test_hit_does_not_reload_and_lru_order_decides_eviction() -> None:
    evicted: list[str] = []
    cache: ByteBudgetLRU[str, str] = ByteBudgetLRU(100, on_evict=lambda k, _v: evicted.append(k))
    calls: list[str] = []
    cache.get_or_load("a", lambda: loader("A", 40, calls))
    cache.get_or_load("b", lambda: loader("B", 40, calls))
    assert cache.get_or_load("a", lambda: loader("A", 40, calls)) == "A"  # hit: a is now newest
    assert calls == ["A", "B"]
    cache.get_or_load("c", lambda: loader("C", 40, calls))  # 120 > 100: evict the LRU one, b
    assert evicted == ["b"]
    assert cache.keys() == ["a", "c"]
    stats = cache.stats()
    assert (stats.loads, stats.hits, stats.evictions, stats.used_bytes) == (3, 1, 1, 80)


def test_room_is_made_from_the_estimate_before_loading() -> None:
    cache: ByteBudgetLRU[str, str] = ByteBudgetLRU(100)
    cache.get_or_load("a", lambda: ("A", 30))
    cache.get_or_load("b", lambda: ("B", 30))
    seen_during_load: list[list[str]] = []

    def load_c() -> tuple[str, int]:
        seen_during_load.append(cache.keys())
        return "C", 70

    cache.get_or_load("c", load_c, estimate=lambda: 70)
    # A left before C's weights arrived (B + C fit in 100): never A + B + C in memory at once
    assert seen_during_load == [["b"]]
    assert cache.keys() == ["b", "c"]


def test_evicted_values_are_released_before_the_next_load() -> None:
    class Weights:
        pass

    released: list[bool] = []
    cache: ByteBudgetLRU[str, Weights] = ByteBudgetLRU(100, after_evict=lambda: None)
    cache.get_or_load("a", lambda: (Weights(), 60))
    held = cache.peek("a")
    assert held is not None
    old = weakref.ref(held)
    del held

    def load_b() -> tuple[Weights, int]:
        released.append(old() is None)  # nothing, not even the cache's bookkeeping, holds A
        return Weights(), 60

    cache.get_or_load("b", load_b, estimate=lambda: 60)
    assert released == [True]


def test_a_value_bigger_than_the_budget_is_still_served() -> None:
    cache: ByteBudgetLRU[str, str] = ByteBudgetLRU(10)
    cache.get_or_load("a", lambda: ("A", 5))
    assert cache.get_or_load("big", lambda: ("BIG", 50), estimate=lambda: 50) == "BIG"
    assert cache.keys() == ["big"]


def test_concurrent_misses_for_one_key_load_once() -> None:
    cache: ByteBudgetLRU[str, str] = ByteBudgetLRU(100)
    calls: list[str] = []

    def slow() -> tuple[str, int]:
        time.sleep(0.2)
        return loader("A", 10, calls)

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_load("a", slow)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["A"] and results == ["A"] * 8


def test_a_hit_does_not_wait_for_another_keys_load() -> None:
    cache: ByteBudgetLRU[str, str] = ByteBudgetLRU(100)
    cache.get_or_load("a", lambda: ("A", 10))
    release = threading.Event()

    def blocked() -> tuple[str, int]:
        release.wait(5)
        return "B", 10

    t = threading.Thread(target=cache.get_or_load, args=("b", blocked))
    t.start()
    started = time.monotonic()
    assert cache.get_or_load("a", lambda: ("never", 0)) == "A"
    assert time.monotonic() - started < 1
    release.set()
    t.join()


def test_a_failed_load_caches_nothing() -> None:
    cache: ByteBudgetLRU[str, str] = ByteBudgetLRU(100)

    def broken() -> tuple[str, int]:
        raise OSError("disk")

    with pytest.raises(OSError):
        cache.get_or_load("a", broken)
    assert cache.keys() == [] and cache.stats().loads == 0
    assert cache.get_or_load("a", lambda: ("A", 1)) == "A"
