"""Hostile image URLs are refused before any connection is made.

Each case aims at the counting listeners (or, for non-loopback answers, at an address the
connect guard would block) and asserts the 400 *and* that nothing was connected to at all.
"""

from __future__ import annotations

import pytest

from minitoolai.errors import InvalidRequest
from minitoolai.vision import FetchPolicy, load_image

from .helpers import FakeResolver, Net, server_policy

pytestmark = pytest.mark.asyncio


async def refused(
    net: Net,
    url: str,
    code: str,
    *,
    policy: FetchPolicy | None = None,
    resolver: FakeResolver | None = None,
) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        await load_image(url, policy or server_policy(), resolver=resolver or FakeResolver({}))
    err = info.value
    assert (err.status_code, err.param, err.code) == (400, "messages", code), err.message
    net.assert_untouched()
    return err


@pytest.mark.parametrize(
    "url",
    [
        "ftp://{server}/img/image.png",
        "file:///etc/passwd",
        "gopher://{server}/_GET",
        "javascript:alert(1)",
        "data:text/html;base64,PGgxPmhpPC9oMT4=",
        "//{server}/img/image.png",
        "{server}/img/image.png",
        "http:///img/image.png",
        "http://user:pw@{server}/img/image.png",
        "http://evil.test@127.0.0.1:{port}/img/image.png",
        "http://127.0.0.1%2e:{port}/",
        "http://ex ample.test:{port}/",
        "http://{server_host}:0/",
    ],
)
async def test_bad_urls_and_schemes_are_refused(net: Net, url: str) -> None:
    url = url.format(server=f"127.0.0.2:{net.port}", port=net.port, server_host="127.0.0.2")
    err = await refused(net, url, "invalid_image_url")
    assert "image" in err.message.lower()


@pytest.mark.parametrize(
    "spelling",
    [
        "127.0.0.1",
        "127.1",
        "127.0.1",
        "2130706433",
        "0x7f000001",
        "0X7F.0.0.1",
        "0x7f.1",
        "0177.0.0.1",
        "017700000001",
        "127.0.0.1.",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "0.0.0.0",
        "0",
        "[::]",
    ],
)
async def test_loopback_and_unspecified_spellings_refused(net: Net, spelling: str) -> None:
    # Aimed at the counting listeners' port: a leak would be counted.
    await refused(net, f"http://{spelling}:{net.port}/img/image.png", "image_url_forbidden")


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "images.localhost"])
async def test_localhost_names_refused_without_resolving(net: Net, host: str) -> None:
    resolver = FakeResolver({host.lower().rstrip("."): ["127.0.0.2"]})
    await refused(net, f"http://{host}:{net.port}/", "image_url_forbidden", resolver=resolver)
    assert resolver.calls == []


@pytest.mark.parametrize("host", ["1.2.3.4.5", "256.0.0.1", "0x100000000", "1.2.3.08", "a.123"])
async def test_malformed_numeric_hosts_refused(net: Net, host: str) -> None:
    resolver = FakeResolver({})
    await refused(net, f"http://{host}:{net.port}/", "invalid_image_url", resolver=resolver)
    assert resolver.calls == []


HOSTILE_ANSWERS = {
    "loopback": ["127.0.0.1"],
    "loopback-other": ["127.0.0.53"],
    "loopback-v6": ["::1"],
    "rfc1918-10": ["10.0.0.5"],
    "rfc1918-172": ["172.16.5.4"],
    "rfc1918-192": ["192.168.1.10"],
    "metadata": ["169.254.169.254"],
    "link-local-v6": ["fe80::1"],
    "unique-local": ["fd00::1"],
    "unique-local-fc": ["fc00::5"],
    "site-local-v6": ["fec0::1"],
    "multicast": ["224.0.0.1"],
    "multicast-global-scope": ["233.252.0.1"],
    "multicast-v6": ["ff02::1"],
    "unspecified": ["0.0.0.0"],
    "unspecified-v6": ["::"],
    "this-network": ["0.1.2.3"],
    "reserved": ["240.0.0.1"],
    "broadcast": ["255.255.255.255"],
    "cgnat": ["100.64.0.1"],
    "ietf-protocol": ["192.0.0.8"],
    "test-net-1": ["192.0.2.1"],
    "test-net-3": ["203.0.113.7"],
    "benchmark": ["198.18.0.1"],
    "6to4-relay-anycast": ["192.88.99.1"],
    "documentation-v6-new": ["3fff::1"],
    "documentation-v6": ["2001:db8::1"],
    "mapped-loopback": ["::ffff:127.0.0.1"],
    "mapped-private": ["::ffff:10.0.0.5"],
    "mapped-metadata": ["::ffff:169.254.169.254"],
    "nat64-private": ["64:ff9b::a00:5"],
    "6to4-private": ["2002:a00:5::1"],
    "teredo": ["2001::1"],
    "ipv4-compatible": ["::7f00:1"],
    "garbage-answer": ["not-an-ip"],
}


@pytest.mark.parametrize("answer", HOSTILE_ANSWERS.values(), ids=HOSTILE_ANSWERS.keys())
async def test_hostile_dns_answers_refused(net: Net, answer: list[str]) -> None:
    resolver = FakeResolver({"evil.test": answer})
    code = "image_fetch_failed" if answer == ["not-an-ip"] else "image_url_forbidden"
    await refused(net, f"http://evil.test:{net.port}/img/image.png", code, resolver=resolver)
    assert resolver.calls == ["evil.test"]


async def test_any_forbidden_answer_refuses_the_host(net: Net) -> None:
    # First answer is the allowed server, second a forbidden loopback address.
    resolver = FakeResolver({"mixed.test": ["127.0.0.2", "127.0.0.1"]})
    await refused(
        net, f"http://mixed.test:{net.port}/img/image.png", "image_url_forbidden", resolver=resolver
    )


async def test_unresolvable_and_empty_hosts(net: Net) -> None:
    resolver = FakeResolver({"empty.test": []})
    await refused(net, f"http://nxdomain.test:{net.port}/", "image_fetch_failed", resolver=resolver)
    await refused(net, f"http://empty.test:{net.port}/", "image_fetch_failed", resolver=resolver)


async def test_default_policy_refuses_the_test_server_itself(net: Net) -> None:
    # Without allowed_networks even the "friendly" loopback server is off limits.
    await refused(net, net.url("/img/image.png"), "image_url_forbidden", policy=FetchPolicy())


async def test_error_does_not_leak_the_resolved_address(net: Net) -> None:
    resolver = FakeResolver({"evil.test": ["10.11.12.13"]})
    err = await refused(
        net, f"http://evil.test:{net.port}/", "image_url_forbidden", resolver=resolver
    )
    assert "10.11.12.13" not in err.message and "private" in err.message


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/img/image.png",
        "http://[::1]:{port}/img/image.png",
        "http://2130706433:{port}/img/image.png",
        "//127.0.0.1:{port}/img/image.png",
        "http://metadata.test:{port}/latest/meta-data/",
        "http://localhost:{port}/",
    ],
)
async def test_redirect_to_forbidden_address_refused_at_the_hop(net: Net, target: str) -> None:
    resolver = FakeResolver({"images.test": ["127.0.0.2"], "metadata.test": ["169.254.169.254"]})
    location = target.format(port=net.port)
    url = f"http://images.test:{net.port}/redirect?to={location}"
    with pytest.raises(InvalidRequest) as info:
        await load_image(url, server_policy(), resolver=resolver)
    assert info.value.code == "image_url_forbidden"
    assert net.listener.connections == 0
    assert len(net.state.hits) == 1  # the allowed first hop only
    assert {ip for ip, _ in net.guard.loopback} == {"127.0.0.2"}


async def test_redirect_to_other_scheme_refused(net: Net) -> None:
    with pytest.raises(InvalidRequest) as info:
        await load_image(net.url("/redirect?to=file:///etc/passwd"), server_policy())
    assert info.value.code == "invalid_image_url"
    assert net.listener.connections == 0


async def test_dns_rebinding_cannot_swap_the_address(net: Net) -> None:
    # The first answer passes the check; any later lookup would say 127.0.0.1 (the counter).
    resolver = FakeResolver({"rebind.test": [["127.0.0.2"], ["127.0.0.1"]]})
    image = await load_image(
        f"http://rebind.test:{net.port}/img/image.png", server_policy(), resolver=resolver
    )
    assert image.format == "png"
    assert resolver.calls == ["rebind.test"]  # looked up once, connected to what was checked
    assert net.listener.connections == 0
    assert net.state.hosts == [f"rebind.test:{net.port}"]  # Host header keeps the name


async def test_every_hop_is_resolved_and_checked(net: Net) -> None:
    resolver = FakeResolver({"a.test": ["127.0.0.2"], "b.test": ["127.0.0.2", "10.0.0.5"]})
    url = f"http://a.test:{net.port}/redirect?to=http://b.test:{net.port}/img/image.png"
    with pytest.raises(InvalidRequest) as info:
        await load_image(url, server_policy(), resolver=resolver)
    assert info.value.code == "image_url_forbidden"
    assert resolver.calls == ["a.test", "b.test"]
    assert len(net.state.hits) == 1


async def test_allowed_networks_are_explicit(net: Net) -> None:
    # 127.0.0.0/8 allowed: the counting listener becomes reachable, proving the check gates it.
    policy = FetchPolicy(allowed_networks=["127.0.0.0/8"], timeout_s=2)
    with pytest.raises(InvalidRequest) as info:
        await load_image(f"http://127.0.0.1:{net.port}/x.png", policy)
    assert info.value.code == "image_fetch_failed"  # listener hangs up: no HTTP answer
    assert net.listener.connections >= 1  # (aiohttp retries a GET once on a dropped connection)
