"""A one-use aiohttp session whose connections can only reach addresses already judged.

The image fetcher and the alert webhook both send a request to a customer's URL from inside the
operator's network; each judges every address the host resolves to first (``vision/policy.py``),
then connects through this session, whose resolver answers for that one host with exactly
those addresses: no second DNS lookup for a rebinding server to answer differently. The URL
keeps its host name, so the ``Host`` header and TLS SNI and certificate checks name the real
site. No proxies from the environment (they would resolve the name again), no cookies, one
connection per request.

aiohttp is imported here and only here: a gateway that never fetches an image or sends a
webhook never loads it (upstream calls use ``infra/http.py``).
"""

from __future__ import annotations

import socket

import aiohttp
from aiohttp import ClientError, ClientResponse
from aiohttp.abc import AbstractResolver, ResolveResult

__all__ = ["ClientError", "ClientResponse", "pinned_session"]


class _PinnedResolver(AbstractResolver):
    """Answers for exactly one host, with exactly the addresses that were checked."""

    def __init__(self, host: str, addresses: tuple[str, ...]) -> None:
        self._host = host.rstrip(".").lower()
        self._addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.rstrip(".").lower() != self._host:
            raise OSError(f"pinned resolver asked for unexpected host {host!r}")
        return [
            {
                "hostname": host,
                "host": ip,
                "port": port,
                "family": socket.AF_INET6 if ":" in ip else socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
            for ip in self._addresses
        ]

    async def close(self) -> None:
        return None


def pinned_session(
    host: str, addresses: tuple[str, ...], timeout_s: float, *, auto_decompress: bool = True
) -> aiohttp.ClientSession:
    """A session for one request to ``host`` at ``addresses``, ``timeout_s`` in all."""
    connector = aiohttp.TCPConnector(
        resolver=_PinnedResolver(host, addresses), use_dns_cache=False, force_close=True
    )
    return aiohttp.ClientSession(
        connector=connector,
        trust_env=False,
        auto_decompress=auto_decompress,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    )
