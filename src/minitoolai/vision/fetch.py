"""Fetch a remote image without letting the URL steer the gateway into its own network.

Each hop is: parse the URL -> decide the addresses (literal IP, or *one* resolver call) ->
refuse if *any* address is forbidden -> connect through a connector whose resolver can only
answer with those checked addresses. There is never a second DNS lookup, so a rebinding DNS
server cannot swap in ``127.0.0.1`` between the check and the connect; the URL keeps its host
name, so the ``Host`` header and TLS SNI/certificate checks still name the real site.

Redirects are followed by hand (``allow_redirects=False``) so every ``Location`` goes through
the same check. One deadline covers DNS, connects and all hops; bytes are counted while
streaming and the connection is dropped as soon as the cap is passed.

No caller-supplied ``aiohttp.ClientSession`` is accepted on purpose: a shared session resolves
names with its own resolver (and may honour proxy environment variables), which would undo the
pinning. Each hop gets a short-lived session around a pinned connector instead
(``vision/pinned.py``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yarl

from minitoolai.errors import InvalidRequest
from minitoolai.vision import _errors
from minitoolai.vision.policy import (
    FetchPolicy,
    ForbiddenHostError,
    HostError,
    IPAddress,
    address_refusal,
    canonical_address,
    check_host_name,
    parse_ip_host,
)

if TYPE_CHECKING:
    from aiohttp import ClientResponse

#: ``async (host) -> ["93.184.215.14", "2606:2800::1", ...]``; raise ``OSError`` if unknown.
Resolver = Callable[[str], Awaitable[Sequence[str]]]

MAX_URL_LENGTH = 8192
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


async def system_resolver(host: str) -> list[str]:
    """The OS resolver (``getaddrinfo``), de-duplicated, in the order it answered."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    """A URL that passed the policy, and the only addresses it may be fetched from."""

    url: yarl.URL
    addresses: tuple[str, ...]


def parse_http_url(url: str | yarl.URL) -> yarl.URL:
    """Parse and sanity-check an ``http(s)`` URL, or raise a 400 that says what is wrong."""
    if isinstance(url, str):
        if len(url) > MAX_URL_LENGTH:
            raise _bad_url(f"Image URL is longer than {MAX_URL_LENGTH} characters.")
        try:
            url = yarl.URL(url)
        except (ValueError, TypeError):
            raise _bad_url("Image URL is not a valid URL.") from None
    scheme = url.scheme.lower()
    if scheme not in ("http", "https"):
        raise _bad_url(
            f"Image URL scheme {scheme + ':' if scheme else '(none)'} is not allowed; "
            "use an http(s) URL or a data:image/...;base64 URL."
        )
    if not url.raw_host:
        raise _bad_url("Image URL has no host.")
    if url.user is not None or url.password is not None:
        raise _bad_url("Image URL must not contain credentials.")
    if url.port == 0:
        raise _bad_url("Image URL has an invalid port.")
    return url


async def check_url(url: str | yarl.URL, policy: FetchPolicy, resolver: Resolver) -> CheckedTarget:
    """Decide where ``url`` may connect, or refuse it. Never opens a connection."""
    url = parse_http_url(url)
    host = url.raw_host or ""
    try:
        # yarl keeps an IPv6 zone id percent-encoded ("fe80::1%25eth0").
        literal = parse_ip_host(host.replace("%25", "%") if ":" in host else host)
    except HostError as exc:
        raise _bad_url(f"Image URL host is invalid: {exc}.") from None
    if literal is not None:
        ip = canonical_address(literal)
        _refuse_if_forbidden(ip, policy, f"Image URL host {host} is")
        # Connect to the canonical spelling: "127.1" means the same to every stack only if
        # nobody has to interpret it again.
        return CheckedTarget(url.with_host(str(ip)), (str(ip),))
    try:
        name = check_host_name(host)
    except ForbiddenHostError as exc:
        raise _forbidden(f"Image URL host is not allowed: {exc}.") from None
    except HostError as exc:
        raise _bad_url(f"Image URL host is invalid: {exc}.") from None
    try:
        answers = list(await resolver(name))
    except OSError:
        raise _failed(f"Could not resolve the image URL host {name!r}.") from None
    if not answers:
        raise _failed(f"The image URL host {name!r} has no addresses.")
    checked: list[str] = []
    for answer in answers:
        try:
            ip = canonical_address(ipaddress.ip_address(answer))
        except ValueError:
            raise _failed(f"Could not resolve the image URL host {name!r}.") from None
        _refuse_if_forbidden(ip, policy, f"Image URL host {name!r} resolves to")
        checked.append(str(ip))
    return CheckedTarget(url, tuple(dict.fromkeys(checked)))


async def fetch_image_bytes(
    url: str, policy: FetchPolicy, *, resolver: Resolver | None = None
) -> bytes:
    """GET ``url`` under ``policy`` and return the body; every refusal is an ``APIError``."""
    try:
        async with asyncio.timeout(policy.timeout_s):
            return await _follow(url, policy, resolver or system_resolver)
    except TimeoutError:
        raise _errors.invalid(
            f"Timed out after {policy.timeout_s:g}s while downloading the image URL.",
            _errors.FETCH_TIMEOUT,
        ) from None


async def _follow(url: str, policy: FetchPolicy, resolver: Resolver) -> bytes:
    current: str | yarl.URL = url
    for _hop in range(policy.max_redirects + 1):
        target = await check_url(current, policy, resolver)
        result = await _get_once(target, policy)
        if isinstance(result, bytes):
            return result
        current = result
    raise _failed(f"Image URL redirected more than {policy.max_redirects} times.")


async def _get_once(target: CheckedTarget, policy: FetchPolicy) -> bytes | yarl.URL:
    """One request: the body (bytes) or the next hop's URL."""
    from minitoolai.vision import pinned  # aiohttp, loaded by the first fetch

    session = pinned.pinned_session(
        target.url.raw_host or "",
        target.addresses,
        policy.timeout_s,
        auto_decompress=False,  # count the bytes that arrive, not what they expand to
    )
    headers = {
        "User-Agent": policy.user_agent,
        "Accept": "image/*",
        "Accept-Encoding": "identity",
    }
    try:
        async with (
            session,
            session.get(
                target.url,
                allow_redirects=False,
                headers=headers,
                ssl=policy.ssl_context if policy.ssl_context is not None else True,
            ) as resp,
        ):
            if resp.status in _REDIRECTS:
                return _next_hop(target.url, resp.headers.get("Location"))
            if not 200 <= resp.status < 300:
                raise _failed(f"Image URL answered HTTP {resp.status}.")
            return await _read_capped(resp, policy.max_bytes)
    except (pinned.ClientError, OSError) as exc:
        if isinstance(exc, TimeoutError):  # the deadline: reported by fetch_image_bytes
            raise
        raise _failed(f"Could not download the image URL ({type(exc).__name__}).") from None


def _next_hop(current: yarl.URL, location: str | None) -> yarl.URL:
    if not location:
        raise _failed("Image URL redirected without a Location header.")
    try:
        return current.join(yarl.URL(location))
    except (ValueError, TypeError):
        raise _bad_url("Image URL redirected to an invalid URL.") from None


async def _read_capped(resp: ClientResponse, max_bytes: int) -> bytes:
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise _errors.too_large(max_bytes)  # refuse on the header, before any body byte
    body = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            resp.close()  # drop the connection now rather than drain the rest
            raise _errors.too_large(max_bytes)
    return bytes(body)


def _refuse_if_forbidden(ip: IPAddress, policy: FetchPolicy, subject: str) -> None:
    reason = address_refusal(ip, policy)
    if reason is not None:
        # Name the category, not the address: the client need not learn internal DNS answers.
        raise _forbidden(f"{subject} an address that is not allowed ({reason}).")


def _bad_url(message: str) -> InvalidRequest:
    return _errors.invalid(message, _errors.INVALID_URL)


def _forbidden(message: str) -> InvalidRequest:
    return _errors.invalid(message, _errors.FORBIDDEN)


def _failed(message: str) -> InvalidRequest:
    return _errors.invalid(message, _errors.FETCH_FAILED)
