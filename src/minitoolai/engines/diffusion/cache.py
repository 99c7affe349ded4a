"""A thread-safe least-recently-used cache bounded by bytes, for loaded pipelines.

Pipelines differ in size by 3x (SD 1.5 ~2 GB, SDXL ~7 GB in fp16), so a count limit would either
waste memory or overflow it: the bound is a byte budget. Loading takes seconds to minutes, so:

* a hit never waits for another key's load (the map lock is held only for bookkeeping);
* two threads asking for the same missing key load it once (a lock per key);
* room is made *before* a load, from an estimate, so old and new weights never coexist past the
  budget; the measured size replaces the estimate once loaded;
* the entry just loaded is never evicted to fit, even if it alone exceeds the budget: serving
  it is the point.

An evicted value another thread is still using stays alive until that thread lets go; the
cache only drops its own reference.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CacheStats:
    loads: int
    hits: int
    evictions: int
    used_bytes: int
    budget_bytes: int


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    size: int


class ByteBudgetLRU(Generic[K, V]):
    """Values keyed by ``K``, evicted least-recently-used first when over ``budget_bytes``."""

    def __init__(
        self,
        budget_bytes: int,
        on_evict: Callable[[K, V], None] | None = None,
        after_evict: Callable[[], None] | None = None,
    ) -> None:
        """``on_evict`` sees each evicted value; ``after_evict`` runs once the cache holds no
        reference to them any more (the moment to ask a GPU allocator for memory back)."""
        if budget_bytes <= 0:
            raise ValueError("budget_bytes must be positive")
        self.budget_bytes = budget_bytes
        self._on_evict = on_evict
        self._after_evict = after_evict
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[K, threading.Lock] = {}
        self._loads = self._hits = self._evictions = 0

    def get_or_load(
        self,
        key: K,
        load: Callable[[], tuple[V, int]],
        *,
        estimate: Callable[[], int] | None = None,
    ) -> V:
        """The cached value for ``key``, or ``load()``'s (value, size in bytes), cached.

        On a miss, ``estimate()`` (bytes the value will take) runs first and room is made for
        it; neither runs on a hit. An exception from either leaves the cache as it was, less
        whatever room was already made.
        """
        with self._lock:
            hit = self._touch(key)
            if hit is not None:
                return hit
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                hit = self._touch(key)  # another thread may have loaded it meanwhile
            if hit is not None:
                return hit
            expected = estimate() if estimate is not None else 0
            with self._lock:
                evicted = self._evict_until(self.budget_bytes - expected, keep=None)
            self._notify(evicted)
            value, size = load()
            with self._lock:
                self._entries[key] = _Entry(value, size)
                self._loads += 1
                evicted = self._evict_until(self.budget_bytes, keep=key)
            self._notify(evicted)
            return value

    def peek(self, key: K) -> V | None:
        """The value if cached, without counting a hit or refreshing its recency."""
        with self._lock:
            entry = self._entries.get(key)
            return entry.value if entry is not None else None

    def keys(self) -> list[K]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    def evict(self, key: K) -> bool:
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._evictions += 1
        if entry is None:
            return False
        self._notify([(key, entry.value)])
        return True

    def clear(self) -> None:
        with self._lock:
            evicted = [(k, e.value) for k, e in self._entries.items()]
            self._evictions += len(evicted)
            self._entries.clear()
        self._notify(evicted)

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                self._loads, self._hits, self._evictions, self._used(), self.budget_bytes
            )

    # -- under self._lock ------------------------------------------------------------------

    def _touch(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return entry.value

    def _used(self) -> int:
        return sum(e.size for e in self._entries.values())

    def _evict_until(self, limit: int, keep: K | None) -> list[tuple[K, V]]:
        evicted: list[tuple[K, V]] = []
        for key in list(self._entries):
            if self._used() <= limit:
                break
            if key == keep:
                continue
            evicted.append((key, self._entries.pop(key).value))
        self._evictions += len(evicted)
        return evicted

    def _notify(self, evicted: list[tuple[K, V]]) -> None:
        """Report evictions, dropping each reference as it goes so the values can be freed
        before the next load (a pipeline nobody else holds is released right here)."""
        if not evicted:
            return
        while evicted:
            key, value = evicted.pop()
            if self._on_evict is not None:
                self._on_evict(key, value)
            del key, value
        if self._after_evict is not None:
            self._after_evict()
