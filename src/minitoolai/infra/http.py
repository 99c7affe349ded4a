"""The one pooled HTTP client every upstream call shares (per process, per event loop)."""

from __future__ import annotations

import aiohttp


def upstream_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=1000,  # total open connections; upstreams see at most this many from us
        limit_per_host=0,
        ttl_dns_cache=60,
        keepalive_timeout=30,
        enable_cleanup_closed=True,
    )
    # No cookies, no proxies from the environment: an upstream call goes where it is configured.
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        auto_decompress=True,
    )
