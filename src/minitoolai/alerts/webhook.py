"""Posting a low-balance alert to the account's webhook, under the image fetcher's SSRF rules.

The URL is the customer's, and the POST leaves from inside the operator's network, so it is the
image fetcher's problem again (``vision/policy.py``): only public unicast addresses, a host
judged by every address it resolves to, numeric spellings normalised, and the connection pinned
to the addresses that were checked (no second DNS lookup for a rebinding server to answer).
Redirects are not followed. ``MINITOOLAI_ALERT_WEBHOOK_ALLOW_LOOPBACK`` lets loopback through
(tests, a self-hosted receiver on the same machine); it is off by default.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import orjson
import yarl

from minitoolai.errors import InvalidRequest
from minitoolai.vision.fetch import Resolver, system_resolver
from minitoolai.vision.policy import (
    FetchPolicy,
    ForbiddenHostError,
    HostError,
    address_refusal,
    canonical_address,
    check_host_name,
    parse_ip_host,
)

MAX_URL_LENGTH = 2000
LOOPBACK = ("127.0.0.0/8", "::1/128")


def webhook_policy(allow_loopback: bool = False, timeout_s: float = 10.0) -> FetchPolicy:
    """The address rules for webhooks: public addresses only, plus loopback when allowed."""
    return FetchPolicy(allowed_networks=LOOPBACK if allow_loopback else (), timeout_s=timeout_s)


class WebhookRefused(InvalidRequest):
    """A webhook URL that may not be posted to (a 400 when a person or the operator sets it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="webhook_url", code="invalid_webhook_url")


def parse_webhook_url(url: str, policy: FetchPolicy) -> yarl.URL:
    """Check what can be checked without DNS: an http(s) URL with a host, no credentials, and
    a literal address (if it is one) that the policy allows. Raises ``WebhookRefused``."""
    if len(url) > MAX_URL_LENGTH or not url.isprintable():
        raise WebhookRefused(f"a webhook URL is at most {MAX_URL_LENGTH} printable characters")
    try:
        parsed = yarl.URL(url)
    except (ValueError, TypeError):
        raise WebhookRefused("the webhook URL is not a valid URL") from None
    if parsed.scheme.lower() not in ("http", "https") or not parsed.raw_host:
        raise WebhookRefused("the webhook URL must be an http:// or https:// URL with a host")
    if parsed.user is not None or parsed.password is not None:
        raise WebhookRefused("the webhook URL must not contain credentials")
    if parsed.port == 0:
        raise WebhookRefused("the webhook URL has an invalid port")
    host = parsed.raw_host
    try:
        literal = parse_ip_host(host.replace("%25", "%") if ":" in host else host)
        if literal is None:
            check_host_name(host)
    except ForbiddenHostError:  # "localhost": this machine, allowed only with loopback
        _judge(ipaddress.IPv4Address("127.0.0.1"), policy)
    except HostError:
        raise WebhookRefused("the webhook URL's host is invalid") from None
    else:
        if literal is not None:
            _judge(canonical_address(literal), policy)
    return parsed


def _judge(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, policy: FetchPolicy) -> None:
    reason = address_refusal(ip, policy)
    if reason is not None:
        # the category, not the address: the sender need not learn internal DNS answers
        raise WebhookRefused(f"the webhook URL points at an address that is not allowed ({reason})")


async def checked_addresses(
    url: yarl.URL, policy: FetchPolicy, resolver: Resolver = system_resolver
) -> tuple[str, ...]:
    """The addresses ``url`` may be posted to: its literal address, or every address its host
    resolves to, each allowed by ``policy``. Raises ``WebhookRefused``; never connects."""
    host = url.raw_host or ""
    literal = parse_ip_host(host.replace("%25", "%") if ":" in host else host)
    if literal is not None:
        ip = canonical_address(literal)
        _judge(ip, policy)
        return (str(ip),)
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        answers: list[str] = ["127.0.0.1"]
    else:
        try:
            answers = list(await resolver(name))
        except OSError:
            raise WebhookRefused(f"could not resolve the webhook host {name!r}") from None
    if not answers:
        raise WebhookRefused(f"the webhook host {name!r} has no addresses")
    checked = []
    for answer in answers:
        ip = canonical_address(ipaddress.ip_address(answer))
        _judge(ip, policy)
        checked.append(str(ip))
    return tuple(dict.fromkeys(checked))


async def post_json(
    url: str,
    payload: dict[str, Any],
    policy: FetchPolicy,
    resolver: Resolver = system_resolver,
) -> int:
    """POST ``payload`` to ``url`` if the policy allows every address it names; the HTTP
    status. Raises ``WebhookRefused`` (refused before connecting), ``OSError`` or
    ``WebhookFailed`` (could not deliver, or answered other than 2xx)."""
    target = parse_webhook_url(url, policy)
    addresses = await checked_addresses(target, policy, resolver)
    from minitoolai.vision import pinned  # aiohttp, loaded by the first webhook

    session = pinned.pinned_session(target.raw_host or "", addresses, policy.timeout_s)
    try:
        async with (
            session,
            session.post(
                target,
                data=orjson.dumps(payload),
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "MiniToolAI-Alerts/1",
                },
                allow_redirects=False,
            ) as resp,
        ):
            if not 200 <= resp.status < 300:
                raise WebhookFailed(f"the webhook answered HTTP {resp.status}")
            return resp.status
    except pinned.ClientError as exc:
        raise WebhookFailed(f"could not deliver ({type(exc).__name__})") from None


class WebhookFailed(Exception):
    """The receiver could not be reached, or answered other than 2xx (worth a retry)."""
