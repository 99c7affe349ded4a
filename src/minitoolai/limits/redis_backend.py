"""The limiter's counters in Redis, shared by every process that uses the same Redis.

Each admission is one ``EVALSHA`` of ``ACQUIRE``: it reads every scope's window and leases,
checks every rate, and counts the request in all scopes only if all pass. Redis runs a script
alone, so the check and the count are one atomic step across all processes (the ``limits``
library's strategies check one limit at a time, so a request refused by its account's limit
would already have been counted against its key's: hence our own script). The end of a request
is one ``FINISH`` (the token correction, the lease given back), and only for a request that
counted tokens or took a lease.

Keys, under the configured prefix: ``w:<scope>`` a hash (``s`` the window's start in ms,
``r``/``t``/``i`` requests, tokens, images), expiring with its window; ``c:<scope>`` a sorted
set of leases scored by their expiry. The scopes of one request are a key and its account, so
one Redis (not a cluster) holds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from minitoolai.limits.backend import (
    LEASE_MS,
    REFUSALS,
    Counts,
    Demand,
    LimiterUnavailable,
    Outcome,
    Scope,
)
from minitoolai.limits.rates import WINDOW_MS

# KEYS: per scope, its window hash and its lease set. ARGV: now, window, lease ms, lease id,
# the demand (requests, tokens, images, concurrent 0/1), then per scope rpm, tpm, ipm,
# max_concurrent (0: none). Returns refusal (0 or 1..4), the refusing scope, then per scope
# its window start, requests, tokens, images and leases in flight.
ACQUIRE = """
local now = tonumber(ARGV[1])
local window, lease_ms, lease = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local dr, dt, di, dc = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local n = #KEYS / 2
local seen = {}
local refused, at = 0, 0
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 8 + (i - 1) * 4
  local rpm, tpm, ipm = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local maxc = tonumber(ARGV[b + 4])
  local s, r, t, im, fresh = ARGV[1], 0, 0, 0, true
  if rpm > 0 or tpm > 0 or ipm > 0 then
    local v = redis.call('HMGET', h, 's', 'r', 't', 'i')
    if v[1] and now < tonumber(v[1]) + window then
      s, fresh = v[1], false
      r, t, im = tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0
    end
  end
  local c = 0
  if maxc > 0 then
    redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
    c = redis.call('ZCARD', z)
  end
  seen[i] = {s, r, t, im, c, fresh, rpm > 0 or tpm > 0 or ipm > 0, maxc > 0}
  if refused == 0 then
    if rpm > 0 and r + dr > rpm then refused, at = 1, i
    elseif tpm > 0 and dt > 0 and t + dt > tpm then refused, at = 2, i
    elseif ipm > 0 and di > 0 and im + di > ipm then refused, at = 3, i
    elseif maxc > 0 and dc > 0 and c >= maxc then refused, at = 4, i
    end
  end
end
local out = {refused, at}
for i = 1, n do
  local h, z, v = KEYS[2 * i - 1], KEYS[2 * i], seen[i]
  if refused == 0 then
    if v[7] then
      if v[6] then
        redis.call('HSET', h, 's', v[1], 'r', dr, 't', dt, 'i', di)
        redis.call('PEXPIRE', h, window)
      else
        redis.call('HINCRBY', h, 'r', dr)
        redis.call('HINCRBY', h, 't', dt)
        redis.call('HINCRBY', h, 'i', di)
      end
      v[2], v[3], v[4] = v[2] + dr, v[3] + dt, v[4] + di
    end
    if v[8] and dc > 0 then
      redis.call('ZADD', z, now + lease_ms, lease)
      redis.call('PEXPIRE', z, lease_ms)
      v[5] = v[5] + 1
    end
  end
  table.insert(out, v[1])
  table.insert(out, v[2])
  table.insert(out, v[3])
  table.insert(out, v[4])
  table.insert(out, v[5])
end
return out
"""

# KEYS: as ACQUIRE's. ARGV: lease id, token delta, then per scope the start of the window the
# request was counted in. The delta goes only to a window still open (the same start).
FINISH = """
local lease, delta = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  if delta ~= 0 and redis.call('HGET', h, 's') == ARGV[2 + i] then
    if redis.call('HINCRBY', h, 't', delta) < 0 then redis.call('HSET', h, 't', 0) end
  end
  redis.call('ZREM', z, lease)
end
return 1
"""

# KEYS: lease sets. ARGV: the new expiry, the lease ms, then the lease of each key (ZADD XX:
# only if still there; a lease already given back stays given back).
RENEW = """
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', ARGV[1], ARGV[2 + i])
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 1
"""


class RedisBackend:
    def __init__(self, client: Redis, prefix: str, lease_ms: int = LEASE_MS) -> None:
        self.client = client
        self.prefix = prefix
        self.lease_ms = lease_ms
        self._acquire = client.register_script(ACQUIRE)
        self._finish = client.register_script(FINISH)
        self._renew = client.register_script(RENEW)

    @classmethod
    def from_url(cls, url: str, prefix: str, *, timeout_s: float = 0.5) -> RedisBackend:
        client = Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        return cls(client, prefix)

    def _keys(self, scopes: Sequence[Scope]) -> list[str]:
        keys: list[str] = []
        for scope in scopes:
            keys += (f"{self.prefix}w:{scope.ident}", f"{self.prefix}c:{scope.ident}")
        return keys

    async def acquire(
        self, scopes: Sequence[Scope], demand: Demand, lease: str, now_ms: int
    ) -> Outcome:
        args: list[Any] = [
            now_ms,
            WINDOW_MS,
            self.lease_ms,
            lease,
            demand.requests,
            demand.tokens,
            demand.images,
            int(demand.concurrent),
        ]
        for scope in scopes:
            args += [rate or 0 for rate in scope.rates.values()]
        raw = await self._call(self._acquire, self._keys(scopes), args)
        counts = tuple(
            Counts(*(int(value) for value in raw[2 + 5 * i : 7 + 5 * i]))
            for i in range(len(scopes))
        )
        code = int(raw[0])
        return Outcome(
            REFUSALS[code - 1] if code else None, max(0, int(raw[1]) - 1), counts, now_ms
        )

    async def finish(
        self, scopes: Sequence[Scope], starts: Sequence[int], token_delta: int, lease: str
    ) -> None:
        await self._call(self._finish, self._keys(scopes), [lease, token_delta, *starts])

    async def renew(self, leases: Sequence[tuple[str, Sequence[Scope]]], now_ms: int) -> None:
        keys: list[str] = []
        ids: list[str] = []
        for lease, scopes in leases:
            for scope in scopes:
                if scope.rates.max_concurrent:
                    keys.append(f"{self.prefix}c:{scope.ident}")
                    ids.append(lease)
        if keys:
            await self._call(self._renew, keys, [now_ms + self.lease_ms, self.lease_ms, *ids])

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise LimiterUnavailable(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        await self.client.aclose()
