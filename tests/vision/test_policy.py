"""Address policy and host parsing, as pure functions (nothing here touches a socket)."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minitoolai.vision.policy import (
    FetchPolicy,
    ForbiddenHostError,
    HostError,
    address_refusal,
    check_host_name,
    parse_ip_host,
)

DEFAULT = FetchPolicy()


@pytest.mark.parametrize(
    ("ip", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fd12:3456::1", "unique-local"),
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.127.255.254", "shared (CGNAT)"),
        ("::ffff:192.168.0.1", "private"),
        ("2002:7f00:1::", "IPv4-translation"),
        ("64:ff9b::7f00:1", "IPv4-translation"),
        ("192.0.0.8", "special-purpose"),
        ("198.51.100.20", "special-purpose"),
        ("3fff::1", "special-purpose"),
    ],
)
def test_refusal_reasons(ip: str, reason: str) -> None:
    assert address_refusal(ipaddress.ip_address(ip), DEFAULT) == reason


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.4.4"])
def test_public_addresses_allowed(ip: str) -> None:
    assert address_refusal(ipaddress.ip_address(ip), DEFAULT) is None


def test_allowed_networks_open_only_what_they_list() -> None:
    policy = FetchPolicy(allowed_networks=["10.1.0.0/16", "fd00::/8"])
    assert policy.allowed_networks == ("10.1.0.0/16", "fd00::/8")
    assert address_refusal(ipaddress.ip_address("10.1.2.3"), policy) is None
    assert address_refusal(ipaddress.ip_address("::ffff:10.1.2.3"), policy) is None
    assert address_refusal(ipaddress.ip_address("fd00::5"), policy) is None
    assert address_refusal(ipaddress.ip_address("10.2.0.1"), policy) == "private"
    assert address_refusal(ipaddress.ip_address("127.0.0.1"), policy) == "loopback"


def test_some_addresses_stay_refused_even_if_listed() -> None:
    policy = FetchPolicy(allowed_networks=["0.0.0.0/0", "::/0"])
    assert address_refusal(ipaddress.ip_address("10.0.0.1"), policy) is None
    for ip in ("0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"):
        assert address_refusal(ipaddress.ip_address(ip), policy) is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"allowed_networks": ["10.0.0.1/8"]},  # host bits set: a typo, refuse loudly
        {"allowed_networks": ["not-a-cidr"]},
        {"allowed_networks": "10.0.0.0/8"},  # one string, not a list
        {"max_bytes": 0},
        {"timeout_s": 0},
        {"max_redirects": -1},
        {"max_pixels": 0},
    ],
)
def test_bad_policy_config_fails_at_startup(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FetchPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7F.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("10.0.0.5.", "10.0.0.5"),
        ("0", "0.0.0.0"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("example.com", None),
        ("xn--bcher-kva.example", None),
        ("1e100.net", None),
    ],
)
def test_parse_ip_host(host: str, expected: str | None) -> None:
    ip = parse_ip_host(host)
    assert (str(ip) if ip is not None else None) == expected


@pytest.mark.parametrize(
    "host", ["1.2.3.4.5", "256.1.1.1", "1.2.65536", "09", "0x.1", "a.1", "::g"]
)
def test_parse_ip_host_rejects_bad_numbers(host: str) -> None:
    with pytest.raises(HostError):
        parse_ip_host(host)


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_ipv4_spelling_means_the_same_address(n: int) -> None:
    ip = ipaddress.IPv4Address(n)
    a, b, c, d = ip.packed
    spellings = [
        str(ip),
        str(n),
        hex(n),
        "0" + oct(n)[2:],
        f"{a}.{(b << 16) | (c << 8) | d}",
        f"{a}.{b}.{(c << 8) | d}",
        f"{hex(a)}.{oct(b).replace('0o', '0')}.{c}.{d}",
    ]
    for spelling in spellings:
        assert parse_ip_host(spelling) == ip, spelling
        # ...and the C library agrees with our reading of the legacy forms.
        assert socket.inet_aton(spelling) == ip.packed, spelling


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_non_global_ipv4_is_always_refused_by_default(n: int) -> None:
    ip = ipaddress.IPv4Address(n)
    if not ip.is_global or ip.is_multicast:
        assert address_refusal(ip, DEFAULT) is not None
    mapped = ipaddress.IPv6Address(f"::ffff:{ip}")
    assert address_refusal(mapped, DEFAULT) == address_refusal(ip, DEFAULT)


def test_check_host_name() -> None:
    assert check_host_name("Images.Example.COM.") == "images.example.com"
    for bad in ("", "a..b", "-a.com", "a b.com", "a%2e.com", "x" * 64 + ".com"):
        with pytest.raises(HostError):
            check_host_name(bad)
    for local in ("localhost", "LOCALHOST.", "foo.localhost"):
        with pytest.raises(ForbiddenHostError):
            check_host_name(local)
