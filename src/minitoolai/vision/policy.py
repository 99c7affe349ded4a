"""Which addresses the image fetcher may connect to, and how hosts are read.

Fetching a user-supplied URL from inside the operator's network is a classic SSRF hole: the
user names ``http://169.254.169.254/`` (cloud metadata) or ``http://10.0.0.5/admin`` and the
gateway fetches it for them. The rule here is *default deny*: only globally routable unicast
addresses are allowed, plus whatever networks the operator lists in
``FetchPolicy.allowed_networks``. A host is judged by **every** address it resolves to, and the
same host may be spelled many ways (``127.1``, ``2130706433``, ``0x7f000001``,
``::ffff:127.0.0.1``), so numeric spellings are normalised here before any check.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MiB = 1024 * 1024

# Prefixes that embed or translate IPv4 addresses. A connection to one of these can end up at an
# IPv4 host we never checked (6to4 relays, NAT64 gateways, Teredo, IPv4-compatible ::a.b.c.d),
# and some of them count as "global" in ``ipaddress``, so they are refused outright.
_TRANSLATION_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in ("::/96", "64:ff9b::/96", "64:ff9b:1::/48", "2001::/32", "2002::/16")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
# IANA special-purpose blocks that are not globally reachable, listed explicitly because the
# ``ipaddress`` flags vary between Python releases (3.11.7 thinks 192.0.0.8 is global).
_SPECIAL_PURPOSE: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "198.18.0.0/15",
        "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4",
        "100::/64", "2001::/23", "2001:db8::/32", "3fff::/20", "5f00::/16",
    )
)  # fmt: skip
_BROADCAST = ipaddress.ip_address("255.255.255.255")

# One DNS label: letters, digits, hyphen, underscore (seen in the wild), not starting/ending "-".
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
# One part of a legacy numeric IPv4 spelling: decimal, 0x-hex or 0-leading octal.
_NUMERIC_PART = re.compile(r"^(?:0[xX][0-9a-fA-F]+|[0-9]+)$")


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Limits for turning an image URL into bytes. Immutable; build one per configuration.

    ``allowed_networks``: CIDRs (``"10.1.0.0/16"``, ``"fd00::/8"``) the operator explicitly
    trusts, *in addition to* public addresses. Unspecified, multicast and broadcast addresses
    stay refused even if listed: nothing serves images from them.
    ``max_bytes``: cap on the image size (remote body or decoded data: URL).
    ``timeout_s``: total wall-clock budget for one fetch, DNS and all redirect hops included.
    ``max_redirects``: redirect hops followed (each hop is re-checked like the first URL).
    ``max_pixels``: cap on width x height, read from the header before anything is decoded.
    ``ssl_context``: TLS verification for https URLs (default: the system's CAs); set it when
    an allowed internal network serves certificates from a private CA.
    """

    allowed_networks: Iterable[str | IPNetwork] = ()
    max_bytes: int = 20 * MiB
    timeout_s: float = 10.0
    max_redirects: int = 3
    max_pixels: int = 50_000_000
    user_agent: str = "MiniToolAI-ImageFetcher/1"
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Parse once, loudly: a typo in operator config must fail at startup, not per request.
        if isinstance(self.allowed_networks, str):  # would iterate character by character
            raise ValueError("allowed_networks must be a list of CIDRs, not one string")
        nets = tuple(
            n if not isinstance(n, str) else ipaddress.ip_network(n, strict=True)
            for n in self.allowed_networks
        )
        object.__setattr__(self, "allowed_networks", tuple(str(n) for n in nets))
        object.__setattr__(self, "networks", nets)
        if self.max_bytes <= 0 or self.max_pixels <= 0:
            raise ValueError("max_bytes and max_pixels must be positive")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.max_redirects < 0:
            raise ValueError("max_redirects must be >= 0")


def canonical_address(ip: IPAddress) -> IPAddress:
    """``::ffff:a.b.c.d`` *is* ``a.b.c.d`` on the wire, so judge (and connect to) the IPv4 form.

    A scope id (``fe80::1%eth0``) is dropped: it only selects an interface.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.scope_id is not None:
            return ipaddress.IPv6Address(int(ip))
    return ip


def address_refusal(ip: IPAddress, policy: FetchPolicy) -> str | None:
    """Why ``ip`` may not be fetched from, as a short category name, or ``None`` if allowed."""
    ip = canonical_address(ip)
    # Never useful as an image host, whatever the operator allowed.
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip == _BROADCAST:
        return "broadcast"
    if any(ip in net for net in policy.networks if net.version == ip.version):
        return None
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared (CGNAT)"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in ipaddress.IPv6Network("fc00::/7"):
            return "unique-local"
        if ip.is_site_local:
            return "site-local"
        if any(ip in net for net in _TRANSLATION_NETWORKS):
            return "IPv4-translation"
    if ip.is_reserved:  # before is_private, which also covers 240.0.0.0/4
        return "reserved"
    if any(ip in net for net in _SPECIAL_PURPOSE if net.version == ip.version):
        return "special-purpose"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "non-public"
    return None


class HostError(ValueError):
    """The URL's host cannot be a valid host name or address."""


class ForbiddenHostError(HostError):
    """The host is well-formed but names this machine by definition (``localhost``)."""


def parse_ip_host(host: str) -> IPAddress | None:
    """Read ``host`` (as in a URL, without brackets) as an IP address if it is spelled as one.

    Returns ``None`` for a host *name*. Raises ``HostError`` for numeric-looking hosts that are
    not valid addresses. Legacy IPv4 spellings that ``inet_aton``, browsers and many resolvers
    still accept are decoded the same way they would be, so they cannot slip past the check:
    ``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``0x7f.1``, trailing dot.
    """
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise HostError(f"invalid IPv6 address {host!r}") from None
    name = host[:-1] if host.endswith(".") else host
    parts = name.split(".")
    # WHATWG URL rule: if the last label is numeric, the whole host is an IPv4 address.
    if not _NUMERIC_PART.match(parts[-1]):
        return None
    if len(parts) > 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        raise HostError(f"invalid IPv4 address {host!r}")
    values = [_numeric_part(p, host) for p in parts]
    # a.b.c.d / a.b.c (c is 16 bits) / a.b (b is 24 bits) / a (32 bits)
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        raise HostError(f"invalid IPv4 address {host!r}")
    number = last
    for i, v in enumerate(head):
        number += v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def _numeric_part(part: str, host: str) -> int:
    try:
        if part[:2].lower() == "0x":
            return int(part[2:], 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part, 8)
        return int(part, 10)
    except ValueError:
        raise HostError(f"invalid IPv4 address {host!r}") from None


def check_host_name(host: str) -> str:
    """Validate an ASCII (IDNA-encoded) host name and return it lower-cased, without final dot.

    Anything outside letters/digits/``-``/``_`` is refused rather than handed to a resolver that
    might interpret it creatively (percent-escapes, spaces, NUL). ``localhost`` and
    ``*.localhost`` are refused by name (RFC 6761): they never leave the machine.
    """
    name = host.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise HostError(f"invalid host name {host!r}")
    if name == "localhost" or name.endswith(".localhost"):
        raise ForbiddenHostError("localhost is not allowed")
    return name
