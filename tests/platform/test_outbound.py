"""The SSRF guard for merchant-supplied URLs: what registration refuses and accepts, which
addresses are allowed, and connections checked when made, against a server on 127.0.0.1 that
counts what reaches it. No test connects anywhere but loopback: every connection the default
backend would make is checked first (`inner_connects`)."""

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpcore
import httpx
import pytest

from bastion.kernel.errors import InvalidRequest
from bastion.platform.http.outbound import (
    BLOCKED_NETWORKS,
    CheckedNetworkBackend,
    DestinationPolicy,
    DestinationRefused,
    Resolver,
    address_allowed,
    check_url,
    guarded_client,
    guarded_session,
    system_resolver,
)

LIVE = DestinationPolicy(allow_loopback_http=False)
TEST = DestinationPolicy(allow_loopback_http=True)
PARAM = "endpoint_url"
PUBLIC_IPV4 = "93.184.216.34"
REQUEST_TIMEOUT_S = 5.0
SERVER_READ_TIMEOUT_S = 5.0
RESOLVER_TIMEOUT_S = 0.2
RESOLVER_STALL_S = 10.0
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

# (id, URL, a fragment of the message naming why it is refused)
REFUSED_IN_LIVE_MODE = [
    ("loopback-ipv4", "https://127.0.0.1/", "loopback"),
    ("loopback-ipv4-other", "https://127.8.9.10/", "loopback"),
    ("localhost", "https://localhost/", "loopback"),
    ("localhost-uppercase", "https://LOCALHOST:8443/", "loopback"),
    ("localhost-subdomain", "https://a.localhost/", "loopback"),
    ("localhost-circled-letter", "https://\u24dbocalhost/", "loopback"),
    ("loopback-fullwidth-digits", "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", "loopback"),
    ("decimal", "https://2130706433/", "non-standard form"),
    ("hex", "https://0x7f000001/", "non-standard form"),
    ("hex-short", "https://0x7f.1/", "non-standard form"),
    ("octal-dotted", "https://0177.0.0.1/", "non-standard form"),
    ("octal-whole", "https://017700000001/", "non-standard form"),
    ("short-two-parts", "https://127.1/", "non-standard form"),
    ("short-three-parts", "https://127.0.1/", "non-standard form"),
    ("mixed-hex-octal", "https://0x7f.0.0.01/", "non-standard form"),
    ("five-parts", "https://1.2.3.4.5/", "non-standard form"),
    ("trailing-dot-ipv4", "https://127.0.0.1./", "non-standard form"),
    ("zero", "https://0/", "non-standard form"),
    ("hex-last-label", "https://example.0x1/", "non-standard form"),
    ("ipv6-loopback", "https://[::1]/", "loopback"),
    ("ipv4-mapped-loopback", "https://[::ffff:127.0.0.1]/", "loopback"),
    ("ipv4-mapped-loopback-hex", "https://[::ffff:7f00:1]/", "loopback"),
    ("ipv4-mapped-loopback-long", "https://[0:0:0:0:0:ffff:127.0.0.1]/", "loopback"),
    ("ipv4-compatible-loopback", "https://[::127.0.0.1]/", "loopback"),
    ("ipv4-mapped-metadata", "https://[::ffff:a9fe:a9fe]/", "link-local address embedded"),
    ("metadata", "https://169.254.169.254/latest/meta-data/", "link-local"),
    ("ipv6-link-local", "https://[fe80::1]/", "link-local"),
    ("ipv6-unique-local-fc", "https://[fc00::1]/", "unique local"),
    ("ipv6-unique-local-fd", "https://[fd12:3456::1]/", "unique local"),
    ("ipv6-site-local", "https://[fec0::1]/", "site-local"),
    ("ipv6-multicast", "https://[ff02::1]/", "multicast"),
    ("ipv6-unspecified", "https://[::]/", "unspecified"),
    ("ipv6-discard", "https://[100::1]/", "discard-only"),
    ("private-10", "https://10.0.0.1/", "private address"),
    ("private-172", "https://172.16.5.4/", "private address"),
    ("private-192", "https://192.168.1.1/", "private address"),
    ("cgnat", "https://100.64.0.1/", "shared address"),
    ("benchmarking", "https://198.18.0.1/", "benchmarking"),
    ("ietf-protocol", "https://192.0.0.8/", "IETF protocol"),
    ("reserved", "https://240.0.0.1/", "reserved"),
    ("broadcast", "https://255.255.255.255/", "broadcast"),
    ("multicast", "https://224.0.0.1/", "multicast"),
    ("unspecified", "https://0.0.0.0/", "unspecified"),
    ("documentation-ipv4", "https://192.0.2.1/", "documentation"),
    ("documentation-ipv4-3", "https://203.0.113.9/", "documentation"),
    ("documentation-ipv6", "https://[2001:db8::1]/", "documentation"),
    ("sixtofour", "https://[2002:7f00:1::]/", "6to4"),
    ("teredo", "https://[2001::1]/", "Teredo"),
    ("nat64-of-private", "https://[64:ff9b::a00:1]/", "private address embedded"),
    ("nat64-local-use", "https://[64:ff9b:1::1]/", "local-use NAT64"),
    ("ipv6-outside-global-unicast", "https://[5f00::1]/", "2000::/3"),
    ("credentials", "https://user:pass@example.com/", "credentials"),
    ("credentials-empty", "https://@example.com/", "credentials"),
    ("credentials-hiding-host", "https://example.com:443@127.0.0.1/", "credentials"),
    ("http", "http://example.com/", "uses http"),
    ("http-loopback", "http://127.0.0.1:8080/", "loopback"),
    ("ftp", "ftp://example.com/", "scheme is 'ftp'"),
    ("file", "file:///etc/passwd", "scheme is 'file'"),
    ("gopher", "gopher://x/", "scheme is 'gopher'"),
    ("javascript", "javascript:alert(1)", "scheme is 'javascript'"),
    ("scheme-relative", "//example.com/", "scheme is ''"),
    ("zone-id", "https://[fe80::1%25eth0]/", "zone id"),
    ("port-zero", "https://example.com:0/", "port"),
    ("port-too-large", "https://example.com:99999/", "port"),
    ("port-empty", "https://example.com:/", "port"),
    ("port-signed", "https://example.com:+443/", "port"),
    ("no-host", "https:///nohost", "no host"),
    ("no-slashes", "https:example.com", "no host"),
    ("too-long", "https://example.com/" + "a" * (3000 - len("https://example.com/")), "characters long"),
    ("space-in-host", "https://exa mple.com/", "whitespace"),
    ("tab", "https://example.com\t/", "whitespace"),
    ("newline", "https://example.com/\n", "whitespace"),
    ("zero-width-space", "https://loc\u200balhost/", "control character"),
    ("fragment", "https://example.com/#x", "fragment"),
    ("backslash", "https://example.com\\@127.0.0.1/", "backslash"),
    ("unbracketed-ipv6", "https://::1/", "in brackets"),
    ("bracketed-ipv4", "https://[127.0.0.1]/", "cannot be parsed"),
    ("bracketed-future", "https://[v1.x]/", "not an IPv6 address"),
    ("text-after-bracket", "https://[2606:4700::1111]x/", "text after"),
    ("underscore", "https://exa_mple.com/", "not a valid DNS name"),
    ("leading-hyphen", "https://-example.com/", "not a valid DNS name"),
    ("percent-in-host", "https://127.0.0.%31/", "not a valid DNS name"),
    ("empty-label", "https://example..com/", "not a valid domain name"),
    ("trailing-dot-name", "https://localhost./", "ends with a dot"),
]
ACCEPTED = [
    ("https://example.com/hook", LIVE, "https://example.com/hook"),
    ("https://hooks.example.co.uk:8443/x?y=1", LIVE, "https://hooks.example.co.uk:8443/x?y=1"),
    (f"https://{PUBLIC_IPV4}/", LIVE, f"https://{PUBLIC_IPV4}/"),
    ("https://[2606:4700::1111]/", LIVE, "https://[2606:4700::1111]/"),
    ("https://[2606:4700:0:0:0:0:0:1111]:8443/", LIVE, "https://[2606:4700::1111]:8443/"),
    ("https://[::ffff:93.184.216.34]/", LIVE, "https://[::ffff:5db8:d822]/"),
    ("HTTPS://Hooks.Example.COM", LIVE, "https://hooks.example.com/"),
    ("https://example.com:443/a", LIVE, "https://example.com/a"),
    ("https://b\u00fccher.example/", LIVE, "https://xn--bcher-kva.example/"),
    ("https://a-b.example/x", TEST, "https://a-b.example/x"),
    ("http://localhost:4242/webhook", TEST, "http://localhost:4242/webhook"),
    ("http://127.0.0.1:8080/", TEST, "http://127.0.0.1:8080/"),
    ("http://[::1]:9000/", TEST, "http://[::1]:9000/"),
    ("http://a.localhost:3000/", TEST, "http://a.localhost:3000/"),
    ("https://localhost/", TEST, "https://localhost/"),
    ("http://localhost:80/", TEST, "http://localhost/"),
]
REFUSED_IN_TEST_MODE = [
    "http://10.0.0.1/",
    "http://example.com/",
    f"http://{PUBLIC_IPV4}/",
    "http://0.0.0.0:8080/",
    "https://169.254.169.254/",
    "http://[fe80::1]/",
    "https://[::ffff:10.0.0.1]/",
    "https://2130706433/",
]
# (address, allowed in live mode, allowed in test mode)
ADDRESSES = [
    (PUBLIC_IPV4, True, True),
    ("8.8.8.8", True, True),
    ("172.32.0.1", True, True),  # just past 172.16/12
    ("100.128.0.1", True, True),  # just past 100.64/10
    ("198.20.0.1", True, True),  # just past 198.18/15
    ("2606:4700::1111", True, True),
    ("2001:4860:4860::8888", True, True),
    ("127.0.0.1", False, True),
    ("127.255.255.254", False, True),
    ("::1", False, True),
    ("::ffff:127.0.0.1", False, True),
    ("::7f00:1", False, True),  # IPv4-compatible loopback
    ("::ffff:93.184.216.34", True, True),
    ("::ffff:10.0.0.1", False, False),
    ("::ffff:169.254.169.254", False, False),
    ("::5db8:d822", True, True),  # IPv4-compatible, public
    ("64:ff9b::5db8:d822", True, True),  # NAT64 of a public address: judged as that address
    ("64:ff9b::a00:1", False, False),  # NAT64 of 10.0.0.1
    ("64:ff9b::a9fe:a9fe", False, False),  # NAT64 of the metadata address
    ("64:ff9b:1::5db8:d822", False, False),  # local-use NAT64: refused whatever it embeds
    ("0.0.0.0", False, False),  # noqa: S104  (an address checked, not bound)
    ("::", False, False),
    ("10.255.255.255", False, False),
    ("172.31.255.255", False, False),
    ("192.168.0.1", False, False),
    ("169.254.169.254", False, False),
    ("100.127.255.255", False, False),
    ("198.19.255.255", False, False),
    ("192.0.0.8", False, False),
    ("192.0.2.1", False, False),
    ("198.51.100.1", False, False),
    ("203.0.113.1", False, False),
    ("224.0.0.1", False, False),
    ("239.255.255.250", False, False),
    ("240.0.0.1", False, False),
    ("255.255.255.255", False, False),
    ("fe80::1", False, False),
    ("fec0::1", False, False),
    ("fc00::1", False, False),
    ("fd00::1", False, False),
    ("ff02::1", False, False),
    ("100::1", False, False),
    ("2001:db8::1", False, False),
    ("3fff::1", False, False),
    ("2002:7f00:1::", False, False),
    ("2002:5db8:d822::", False, False),  # 6to4 refused even around a public address
    ("2001::1", False, False),
    ("2001:10::1", False, False),
    ("5f00::1", False, False),
]


@dataclass
class LocalServer:
    port: int = 0
    connections: int = 0
    heads: list[bytes] = field(default_factory=list)


@dataclass
class ScriptedResolver:
    """Answers each call with the next of `answers`, the last one again once they run out."""

    answers: list[list[str]]
    calls: list[tuple[str, int]] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


@contextlib.asynccontextmanager
async def local_server(response: bytes = NO_CONTENT) -> AsyncIterator[LocalServer]:
    """A server on 127.0.0.1 that counts connections, keeps each request head and answers `response`."""
    record = LocalServer()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        record.connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, TimeoutError):
            async with asyncio.timeout(SERVER_READ_TIMEOUT_S):
                record.heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(response)
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    record.port = server.sockets[0].getsockname()[1]
    try:
        yield record
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture(autouse=True)
def inner_connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hosts the default backend was asked to connect to; anything but loopback fails the test."""
    hosts: list[str] = []
    connect = httpcore.AnyIOBackend.connect_tcp

    async def loopback_only(self: httpcore.AnyIOBackend, host: str, port: int, **options: Any) -> httpcore.AsyncNetworkStream:
        hosts.append(host)
        if not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"A test tried to connect to {host}.")
        return await connect(self, host, port, **options)

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", loopback_only)
    return hosts


@pytest.mark.parametrize(("url", "reason"), [pytest.param(url, reason, id=name) for name, url, reason in REFUSED_IN_LIVE_MODE])
def test_refused_at_registration_in_live_mode(url: str, reason: str) -> None:
    with pytest.raises(DestinationRefused) as refused:
        check_url(url, LIVE, param=PARAM)
    assert refused.value.param == PARAM
    assert refused.value.code == "url_not_allowed"
    assert reason in refused.value.message


def test_bypass_payloads_are_many_and_distinct() -> None:
    urls = [url for _, url, _ in REFUSED_IN_LIVE_MODE]
    assert len(set(urls)) == len(urls) >= 40


@pytest.mark.parametrize(("url", "policy", "normalized"), ACCEPTED)
def test_accepted_and_normalized(url: str, policy: DestinationPolicy, normalized: str) -> None:
    assert check_url(url, policy) == normalized
    assert check_url(normalized, policy) == normalized


@pytest.mark.parametrize("url", REFUSED_IN_TEST_MODE)
def test_test_mode_allows_loopback_only_beyond_public_https(url: str) -> None:
    with pytest.raises(DestinationRefused):
        check_url(url, TEST)


def test_refusal_is_an_invalid_request_naming_url_by_default() -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_url("https://10.0.0.5/", LIVE)
    assert isinstance(refused.value, DestinationRefused)
    assert refused.value.param == "url"
    assert refused.value.type == "invalid_request_error"
    assert (
        refused.value.message
        == "The URL's host is a private address (10.0.0.5): Bastion sends requests to public addresses only."
    )


@pytest.mark.parametrize(("address", "live", "test"), ADDRESSES)
def test_address_allowed(address: str, live: bool, test: bool) -> None:
    assert address_allowed(ipaddress.ip_address(address), LIVE) is live
    assert address_allowed(ipaddress.ip_address(address), TEST) is test


@pytest.mark.parametrize(("network", "description"), BLOCKED_NETWORKS, ids=[str(network) for network, _ in BLOCKED_NETWORKS])
def test_blocked_networks_are_refused_from_first_to_last_address(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network, description: str
) -> None:
    for address in (network[0], network[-1]):
        assert not address_allowed(address, LIVE)
        assert address_allowed(address, TEST) is (description == "a loopback address")


async def test_rebinding_to_loopback_is_refused_when_connecting(inner_connects: list[str]) -> None:
    """Registration saw only the name; at delivery it resolves to loopback, and nothing connects."""
    async with local_server() as server:
        url = check_url(f"https://rebind.example:{server.port}/", LIVE)
        resolver = ScriptedResolver([["127.0.0.1"]])
        async with guarded_client(LIVE, timeout_s=REQUEST_TIMEOUT_S, resolver=resolver) as client:
            with pytest.raises(httpx.ConnectError, match=r"rebind\.example resolves to a loopback address \(127\.0\.0\.1\)"):
                await client.get(url)
    assert resolver.calls == [("rebind.example", server.port)]
    assert inner_connects == []
    assert server.connections == 0


async def test_one_private_address_among_public_ones_refuses_the_name(inner_connects: list[str]) -> None:
    resolver = ScriptedResolver([[PUBLIC_IPV4, "10.0.0.1"]])
    async with guarded_client(LIVE, timeout_s=REQUEST_TIMEOUT_S, resolver=resolver) as client:
        with pytest.raises(httpx.ConnectError, match=r"a private address \(10\.0\.0\.1\)"):
            await client.get("https://rebind.example/")
    assert inner_connects == []


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]"])
async def test_ip_literal_is_checked_when_connecting_without_resolving(host: str, inner_connects: list[str]) -> None:
    resolver = ScriptedResolver([[PUBLIC_IPV4]])
    async with local_server() as server, guarded_client(LIVE, timeout_s=REQUEST_TIMEOUT_S, resolver=resolver) as client:
        with pytest.raises(httpx.ConnectError, match="loopback address"):
            await client.get(f"https://{host}:{server.port}/")
    assert resolver.calls == []
    assert inner_connects == []
    assert server.connections == 0


async def test_test_mode_connects_to_the_checked_address_and_keeps_the_name(inner_connects: list[str]) -> None:
    resolver = ScriptedResolver([["127.0.0.1"]])
    async with local_server() as server, guarded_client(TEST, timeout_s=REQUEST_TIMEOUT_S, resolver=resolver) as client:
        response = await client.post(check_url(f"http://localhost:{server.port}/webhook", TEST), content=b"{}")
    assert response.status_code == 204
    assert server.connections == 1
    assert inner_connects == ["127.0.0.1"]
    assert f"host: localhost:{server.port}\r\n".encode() in server.heads[0].lower()


async def test_localhost_answering_ipv6_first_falls_back_to_the_ipv4_listener(inner_connects: list[str]) -> None:
    """A server on 127.0.0.1 alone, a name that answers ::1 first: both checked, ::1 refused by
    the host, 127.0.0.1 connected."""
    resolver = ScriptedResolver([["::1", "127.0.0.1"]])
    async with local_server() as server, guarded_client(TEST, timeout_s=REQUEST_TIMEOUT_S, resolver=resolver) as client:
        response = await client.post(check_url(f"http://localhost:{server.port}/webhook", TEST), content=b"{}")
    assert response.status_code == 204
    assert inner_connects == ["::1", "127.0.0.1"]
    assert server.connections == 1


async def test_each_connection_resolves_once_and_uses_that_answer(inner_connects: list[str]) -> None:
    """A second resolution would see 10.0.0.1: the first connection never asks again, the next
    connection asks once more and is refused."""
    resolver = ScriptedResolver([["127.0.0.1"], ["10.0.0.1"]])
    async with local_server() as server, guarded_client(TEST, timeout_s=REQUEST_TIMEOUT_S, resolver=resolver) as client:
        url = f"http://localhost:{server.port}/"
        assert (await client.get(url)).status_code == 204
        assert len(resolver.calls) == 1
        with pytest.raises(httpx.ConnectError, match="private address"):
            await client.get(url)  # the server closed the first connection: a new one is needed
    assert len(resolver.calls) == 2
    assert inner_connects == ["127.0.0.1"]
    assert server.connections == 1


async def _fails_to_resolve(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


async def _resolves_to_nothing(host: str, port: int) -> list[str]:
    return []


async def _resolves_to_garbage(host: str, port: int) -> list[str]:
    return ["not-an-address"]


@pytest.mark.parametrize(
    ("resolver", "reason"),
    [
        (_fails_to_resolve, "cannot be resolved"),
        (_resolves_to_nothing, "no address"),
        (_resolves_to_garbage, "not an IP address"),
    ],
)
async def test_unusable_resolution_is_a_connect_error(resolver: Resolver, reason: str, inner_connects: list[str]) -> None:
    async with guarded_client(TEST, timeout_s=REQUEST_TIMEOUT_S, resolver=resolver) as client:
        with pytest.raises(httpx.ConnectError, match=reason):
            await client.get("http://localhost:4242/")
    assert inner_connects == []


async def test_resolution_is_bounded_by_the_connect_timeout() -> None:
    async def stalls(host: str, port: int) -> list[str]:
        await asyncio.sleep(RESOLVER_STALL_S)
        return ["127.0.0.1"]

    async with guarded_client(TEST, timeout_s=RESOLVER_TIMEOUT_S, resolver=stalls) as client:
        with pytest.raises(httpx.ConnectTimeout):
            await client.get("http://localhost:4242/")


async def test_redirects_are_returned_not_followed() -> None:
    redirect = b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    async with local_server(redirect) as server, guarded_client(TEST, timeout_s=REQUEST_TIMEOUT_S) as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/")
        assert (client.follow_redirects, client.trust_env) == (False, False)
        assert client.timeout == httpx.Timeout(REQUEST_TIMEOUT_S)
    assert response.status_code == 302
    assert server.connections == 1


async def test_egress_proxy_gets_the_name_and_does_the_checking(inner_connects: list[str]) -> None:
    resolver = ScriptedResolver([["127.0.0.1"]])
    async with local_server(FORBIDDEN) as proxy:
        proxy_url = f"http://127.0.0.1:{proxy.port}"
        async with guarded_client(LIVE, timeout_s=REQUEST_TIMEOUT_S, resolver=resolver, proxy_url=proxy_url) as client:
            with pytest.raises(httpx.ProxyError):
                await client.get("https://hooks.example/")
    assert proxy.heads[0].startswith(b"CONNECT hooks.example:443 HTTP/1.1\r\n")
    assert resolver.calls == []
    assert inner_connects == ["127.0.0.1"]


async def test_unix_sockets_are_refused_and_sleep_is_delegated() -> None:
    backend = CheckedNetworkBackend(TEST)
    with pytest.raises(httpcore.ConnectError, match="Unix socket"):
        await backend.connect_unix_socket("/run/bastion.sock")
    await backend.sleep(0)


async def test_system_resolver_returns_unique_addresses() -> None:
    assert await system_resolver("127.0.0.1", 443) == ["127.0.0.1"]


# The sender's client: aiohttp, through CheckedResolver.


async def test_the_senders_session_refuses_a_name_rebound_to_a_private_address() -> None:
    resolver = ScriptedResolver([["10.0.0.1"]])
    async with local_server() as server:
        session = guarded_session(LIVE, timeout_s=REQUEST_TIMEOUT_S, connections_max=2, resolver=resolver)
        try:
            with pytest.raises(aiohttp.ClientConnectorError, match=r"private address \(10\.0\.0\.1\)"):
                await session.post(f"https://hooks.example.com:{server.port}/", data=b"{}")
        finally:
            await session.close()
    assert resolver.calls == [("hooks.example.com", server.port)]
    assert server.connections == 0


async def test_the_senders_session_connects_to_the_checked_address_and_resolves_per_connection() -> None:
    """Test mode: a name that answers 127.0.0.1 is reached there; no DNS cache, so the next
    connection asks again and is refused when the answer turns private."""
    resolver = ScriptedResolver([["::1", "127.0.0.1"], ["10.0.0.1"]])
    async with local_server() as server:
        session = guarded_session(TEST, timeout_s=REQUEST_TIMEOUT_S, connections_max=2, resolver=resolver)
        try:
            async with session.post(f"http://localhost:{server.port}/webhook", data=b"{}", allow_redirects=False) as answer:
                assert answer.status == 204
            with pytest.raises(aiohttp.ClientConnectorError, match="private address"):
                await session.post(f"http://localhost:{server.port}/webhook", data=b"{}")
        finally:
            await session.close()
    assert len(resolver.calls) == 2
    assert server.connections == 1
    assert f"host: localhost:{server.port}\r\n".encode() in server.heads[0].lower()
