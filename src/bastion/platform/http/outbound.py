"""The SSRF guard for requests to URLs a merchant supplies (webhook endpoints): such a URL must
never make Bastion reach this machine, its private network or a cloud metadata service.

Two checks, both needed:

- At registration, `check_url` accepts only https URLs (http to loopback in test mode) without
  credentials or fragment, whose host is a DNS name or a public IP address written the standard
  way. Numbers and IPv4 addresses in the forms resolvers also accept (`2130706433`, `0x7f.1`,
  `0177.0.0.1`, `127.1`) are refused outright rather than interpreted. Names are not resolved
  here: what a name resolves to can change after registration.
- At connection, `CheckedNetworkBackend` resolves the name once, refuses if any of its addresses
  is not public, and connects to the address it checked; httpcore then speaks TLS to the name
  (SNI and certificate). A DNS answer that changes between the check and the connection
  (rebinding) cannot redirect the request. `guarded_client` builds the httpx client that uses it,
  without redirects and without proxies or CA bundles from the environment.
"""

import asyncio
import contextlib
import errno
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import aiohttp.abc
import httpcore
import httpx

from bastion.kernel.errors import InvalidRequest

URL_LENGTH_MAX = 2048
HOSTNAME_LENGTH_MAX = 253
PORT_MIN = 1
PORT_MAX = 65535
# A client's connections, all kept alive while idle, by default. An idle connection is let go of
# after 2 s: many servers close theirs at 5 s (uvicorn's default), and a request sent down a
# connection as it closes fails ("Server disconnected").
CONNECTIONS_MAX = 20
KEEPALIVE_EXPIRY_S = 2.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# First match names the reason. Loopback is listed too: `address_allowed` lets it through only
# when the policy allows loopback.
BLOCKED_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("0.0.0.0/8"), "an unspecified address"),  # RFC 791: "this network", reaches the local host
    (ipaddress.ip_network("127.0.0.0/8"), "a loopback address"),  # RFC 1122
    (ipaddress.ip_network("10.0.0.0/8"), "a private address"),  # RFC 1918
    (ipaddress.ip_network("172.16.0.0/12"), "a private address"),  # RFC 1918
    (ipaddress.ip_network("192.168.0.0/16"), "a private address"),  # RFC 1918
    (ipaddress.ip_network("169.254.0.0/16"), "a link-local address"),  # RFC 3927: cloud metadata at 169.254.169.254
    (ipaddress.ip_network("100.64.0.0/10"), "a shared address (carrier-grade NAT)"),  # RFC 6598
    (ipaddress.ip_network("198.18.0.0/15"), "a benchmarking address"),  # RFC 2544
    (ipaddress.ip_network("192.0.0.0/24"), "an IETF protocol assignment address"),  # RFC 6890
    (ipaddress.ip_network("192.0.2.0/24"), "a documentation address"),  # RFC 5737 TEST-NET-1
    (ipaddress.ip_network("198.51.100.0/24"), "a documentation address"),  # RFC 5737 TEST-NET-2
    (ipaddress.ip_network("203.0.113.0/24"), "a documentation address"),  # RFC 5737 TEST-NET-3
    (ipaddress.ip_network("192.88.99.0/24"), "a 6to4 relay address"),  # RFC 7526: deprecated anycast relays
    (ipaddress.ip_network("224.0.0.0/4"), "a multicast address"),  # RFC 5771
    (ipaddress.ip_network("255.255.255.255/32"), "the broadcast address"),  # RFC 919; before 240/4 for its name
    (ipaddress.ip_network("240.0.0.0/4"), "a reserved address"),  # RFC 1112
    (ipaddress.ip_network("::/128"), "an unspecified address"),  # RFC 4291
    (ipaddress.ip_network("::1/128"), "a loopback address"),  # RFC 4291
    (ipaddress.ip_network("fe80::/10"), "a link-local address"),  # RFC 4291
    (ipaddress.ip_network("fec0::/10"), "a site-local address"),  # RFC 3879: deprecated, still routed locally
    (ipaddress.ip_network("fc00::/7"), "a unique local address"),  # RFC 4193: the IPv6 private networks
    (ipaddress.ip_network("ff00::/8"), "a multicast address"),  # RFC 4291
    (ipaddress.ip_network("100::/64"), "a discard-only address"),  # RFC 6666
    (ipaddress.ip_network("2001:db8::/32"), "a documentation address"),  # RFC 3849
    (ipaddress.ip_network("3fff::/20"), "a documentation address"),  # RFC 9637
    (ipaddress.ip_network("2002::/16"), "a 6to4 address, which embeds an IPv4 address"),  # RFC 3056
    (ipaddress.ip_network("2001::/32"), "a Teredo address, which embeds an IPv4 address"),  # RFC 4380
    (ipaddress.ip_network("2001::/23"), "an IETF protocol assignment address"),  # RFC 2928: benchmarking, ORCHID...
    (ipaddress.ip_network("64:ff9b:1::/48"), "a local-use NAT64 address"),  # RFC 8215: a private network's translator
)
# IANA assigns public IPv6 addresses only from here (RFC 4291); the IPv4-embedding forms outside
# it (mapped, compatible, NAT64) are judged by the address they embed before this applies.
IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # RFC 4291, deprecated
_DEFAULT_PORTS = {"https": 443, "http": 80}
# A resolver reads these as IPv4 (decimal, octal or hex, 1 to 4 parts), so does a browser for a
# name whose last label is one (WHATWG URL): such a host is refused, never taken for a name.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PUBLIC_ONLY = "Bastion sends requests to public addresses only."


class DestinationRefused(InvalidRequest):
    """A URL Bastion will not send requests to: not https, or its host is this machine, a private
    network or any address that is not public, or written in a form meant to hide which."""

    code = "url_not_allowed"


@dataclass(frozen=True)
class DestinationPolicy:
    """Where requests may go. Test mode allows loopback, over http or https, so a merchant can
    point webhooks at a server on their own machine; live mode allows public https only."""

    allow_loopback_http: bool


def address_allowed(address: IPAddress, policy: DestinationPolicy) -> bool:
    """Public, or loopback when the policy allows it; an IPv6 address that embeds an IPv4 one is
    judged as that IPv4 address, a 6to4 or Teredo one is refused."""
    return _refusal_reason(address, policy) is None


def check_url(url: str, policy: DestinationPolicy, *, param: str = "url") -> str:
    """The URL normalized (lowercase scheme and host, IDNA host, compressed IPv6, no default port,
    path at least `/`), or DestinationRefused naming `param`. Pure: nothing is resolved."""
    if len(url) > URL_LENGTH_MAX:
        raise DestinationRefused(f"The URL is {len(url)} characters long; at most {URL_LENGTH_MAX} are accepted.", param=param)
    if any(character.isspace() or not character.isprintable() for character in url):
        raise DestinationRefused("The URL contains whitespace or a control character: percent-encode it.", param=param)
    if "\\" in url:
        raise DestinationRefused("The URL contains a backslash, which clients read differently: use '/'.", param=param)
    if "#" in url:
        raise DestinationRefused("The URL has a fragment ('#...'), which is never sent to the server: remove it.", param=param)
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise DestinationRefused(f"The URL cannot be parsed ({error}).", param=param) from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise DestinationRefused(f"The URL's scheme is '{scheme}': Bastion sends requests over https.", param=param)
    host_text, port = _host_and_port(parts.netloc, param)
    host = _parse_host(host_text, param)
    loopback = _is_loopback_host(host)
    if loopback and not policy.allow_loopback_http:
        raise DestinationRefused(f"The URL's host '{host}' is loopback (this machine): {_PUBLIC_ONLY}", param=param)
    if not isinstance(host, str) and (reason := _refusal_reason(host, policy)) is not None:
        raise DestinationRefused(f"The URL's host is {reason} ({host}): {_PUBLIC_ONLY}", param=param)
    if scheme == "http" and not loopback:
        raise DestinationRefused(
            "The URL uses http: Bastion sends requests over https (http only to loopback in test mode).", param=param
        )
    netloc = f"[{host.compressed}]" if isinstance(host, ipaddress.IPv6Address) else str(host)
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    normalized = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    # IDNA can lengthen the host: the stored URL is held to the same limit.
    if len(normalized) > URL_LENGTH_MAX:
        raise DestinationRefused(f"The URL is longer than {URL_LENGTH_MAX} characters once normalized.", param=param)
    return normalized


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver, in its order of preference, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for _family, _type, _proto, _name, sockaddr in infos))


class CheckedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Connects only to allowed addresses: resolves the host once, refuses the connection if any
    of its addresses is not allowed (one bad answer is enough to distrust the name), and connects
    to the addresses checked, in the resolver's order, until one accepts. Name resolution and the TCP connect are each bounded
    by the connect timeout. asyncio only, like the default resolver."""

    def __init__(self, policy: DestinationPolicy, resolver: Resolver = system_resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        # What httpcore's AsyncConnectionPool itself uses under asyncio (its AutoBackend picks it).
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await checked_addresses(host, port, self._policy, self._resolver)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"Resolving {host} took longer than {timeout} s.") from None
        except OSError as refused:
            raise httpcore.ConnectError(str(refused)) from None
        # In the resolver's order of preference: `localhost` may answer ::1 first to a server that
        # listens on 127.0.0.1 alone.
        for address in addresses[:-1]:
            with contextlib.suppress(httpcore.ConnectError, httpcore.ConnectTimeout):
                return await self._backend.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
        return await self._backend.connect_tcp(
            str(addresses[-1]), port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError(f"Refused to connect to the Unix socket {path}: {_PUBLIC_ONLY}")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


async def checked_addresses(host: str, port: int, policy: DestinationPolicy, resolver: Resolver) -> list[IPAddress]:
    """The addresses of `host` (an IP address as it is), every one allowed by `policy`; else an
    OSError saying why, as the connection's error. One refused address refuses the name."""
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = await _resolved(host, port, resolver)
    for address in addresses:
        reason = _refusal_reason(address, policy)
        if reason is not None:
            raise DestinationUnreachable(f"{host} resolves to {reason} ({address}): {_PUBLIC_ONLY}")
    return addresses


class DestinationUnreachable(OSError):
    """A connection the guard refused, or a name that resolved to nothing usable. An OSError with
    its reason as `strerror`, which is what aiohttp's connection errors show."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EACCES, reason)

    def __str__(self) -> str:
        return str(self.strerror)


async def _resolved(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        answers = await resolver(host, port)
    except OSError as error:
        raise DestinationUnreachable(f"{host} cannot be resolved ({error}).") from None
    if not answers:
        raise DestinationUnreachable(f"{host} resolves to no address.")
    try:
        return [ipaddress.ip_address(answer) for answer in answers]
    except ValueError:
        raise DestinationUnreachable(f"{host} resolves to something that is not an IP address: {answers}.") from None


class CheckedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's side of the guard: the connector connects to the addresses this returns (in
    order, the next if one refuses) and speaks TLS to the name, so resolving here is checking.
    aiohttp asks no resolver for an IP literal: `check_url`, before each request, judges those."""

    def __init__(self, policy: DestinationPolicy, resolver: Resolver = system_resolver) -> None:
        self._policy = policy
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        return [
            aiohttp.abc.ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in await checked_addresses(host, port, self._policy, self._resolver)
        ]

    async def close(self) -> None:
        return None


def guarded_session(
    policy: DestinationPolicy,
    *,
    timeout_s: float,
    connections_max: int,
    resolver: Resolver = system_resolver,
    proxy_url: str | None = None,
) -> aiohttp.ClientSession:
    """An aiohttp session for merchant-supplied URLs, for the webhook sender's volume (its
    requests cost a tenth of httpx's CPU): connections through `CheckedResolver`, resolved at
    every connection (no DNS cache), `timeout_s` for a whole request, at most `connections_max`
    connections, idle ones let go of after KEEPALIVE_EXPIRY_S, no proxy or CA bundle from the
    environment. Requests must pass `allow_redirects=False`, and, with `proxy_url`, `proxy=`:
    the proxy then resolves and checks names, so `resolver` is not used."""
    connector = aiohttp.TCPConnector(
        resolver=CheckedResolver(policy, resolver) if proxy_url is None else None,
        use_dns_cache=False,
        limit=connections_max,
        limit_per_host=0,
        keepalive_timeout=KEEPALIVE_EXPIRY_S,
        ssl=ssl.create_default_context(),
    )
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s), trust_env=False, auto_decompress=True
    )


def guarded_client(
    policy: DestinationPolicy,
    *,
    timeout_s: float,
    resolver: Resolver = system_resolver,
    proxy_url: str | None = None,
    connections_max: int = CONNECTIONS_MAX,
) -> httpx.AsyncClient:
    """An httpx client for merchant-supplied URLs: connections through `CheckedNetworkBackend`, no
    redirects (each would be a new, unchecked destination), no proxy or CA bundle from the
    environment, `timeout_s` for each of connect, read, write and waiting for a connection, at most
    `connections_max` connections. Its pool looks at every connection for every request, so a
    client with many destinations is better split: one client per destination.

    With `proxy_url`, an egress proxy run by the operator (smokescreen-style, HTTP CONNECT), every
    request goes through it and checking destination addresses is the proxy's job: it resolves
    the names, so neither `policy` nor `resolver` is used, and the proxy may be on a private
    address of its own."""
    ssl_context = httpx.create_ssl_context(trust_env=False)
    limits = httpx.Limits(
        max_connections=connections_max, max_keepalive_connections=connections_max, keepalive_expiry=KEEPALIVE_EXPIRY_S
    )
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False, limits=limits, proxy=proxy_url)
    if proxy_url is None:
        # httpx's transport takes no network backend, so its pool is replaced by one that has ours,
        # with the same settings. Swapping the pool keeps httpx's request mapping and its translation
        # of httpcore errors (ConnectError) rather than copying them into a transport of our own.
        # `_pool` is private, so it is assigned here rather than in a subclass: mypy fails on this
        # line if httpx renames it, and the connection tests fail if the swap stops taking effect.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=CheckedNetworkBackend(policy, resolver),
        )
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout_s), follow_redirects=False, trust_env=False)


def _host_and_port(netloc: str, param: str) -> tuple[str, int | None]:
    if "@" in netloc:
        raise DestinationRefused(
            "The URL contains credentials ('user:password@'): remove them; webhooks are authenticated by their signature.",
            param=param,
        )
    if netloc.startswith("["):
        inner, _, after = netloc[1:].partition("]")
        if after and not after.startswith(":"):
            raise DestinationRefused(f"The URL's host '{netloc}' has text after the IPv6 address.", param=param)
        host_text, port_text, has_port = f"[{inner}]", after.removeprefix(":"), bool(after)
    else:
        host_text, colon, port_text = netloc.partition(":")
        if ":" in port_text:
            raise DestinationRefused("The URL's host has several ':': write an IPv6 address in brackets.", param=param)
        has_port = bool(colon)
    if not host_text:
        raise DestinationRefused("The URL has no host.", param=param)
    if not has_port:
        return host_text, None
    if not (port_text.isascii() and port_text.isdigit() and PORT_MIN <= int(port_text) <= PORT_MAX):
        raise DestinationRefused(f"The URL's port '{port_text}' is not a number from {PORT_MIN} to {PORT_MAX}.", param=param)
    return host_text, int(port_text)


def _parse_host(host_text: str, param: str) -> IPAddress | str:
    """An IP address, or a DNS name in lowercase ASCII."""
    if host_text.startswith("["):
        inner = host_text[1:-1]
        if "%" in inner:
            raise DestinationRefused(
                f"The URL's IPv6 address '{inner}' has a zone id, naming a network interface of this machine: {_PUBLIC_ONLY}",
                param=param,
            )
        try:
            return ipaddress.IPv6Address(inner)
        except ValueError:
            raise DestinationRefused(f"The URL's host '{host_text}' is not an IPv6 address.", param=param) from None
    try:
        # IDNA first: it maps look-alikes to ASCII (fullwidth digits and dots, circled letters),
        # so every check below sees the name that would be resolved.
        name = host_text.lower().encode("idna").decode("ascii")
    except UnicodeError:
        raise DestinationRefused(f"The URL's host '{host_text}' is not a valid domain name.", param=param) from None
    try:
        return ipaddress.IPv4Address(name)
    except ValueError:
        pass  # not dotted-decimal: a name, or a number in disguise
    if _NUMERIC_LABEL.fullmatch(name.removesuffix(".").rpartition(".")[2]):
        raise DestinationRefused(
            f"The URL's host '{host_text}' is a number or an IPv4 address in a non-standard form: "
            "write a DNS name, or an IPv4 address as four decimal numbers.",
            param=param,
        )
    if name.endswith("."):
        raise DestinationRefused(f"The URL's host '{host_text}' ends with a dot: write it without.", param=param)
    if len(name) > HOSTNAME_LENGTH_MAX or not all(_DNS_LABEL.fullmatch(label) for label in name.split(".")):
        raise DestinationRefused(
            f"The URL's host '{host_text}' is not a valid DNS name: letters, digits, hyphens and dots only.", param=param
        )
    return name


def _is_loopback_host(host: IPAddress | str) -> bool:
    if isinstance(host, str):
        return host == "localhost" or host.endswith(".localhost")  # RFC 6761
    embedded = _embedded_ipv4(host) if isinstance(host, ipaddress.IPv6Address) else None
    return (host if embedded is None else embedded).is_loopback


def _refusal_reason(address: IPAddress, policy: DestinationPolicy) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = _refusal_reason(embedded, policy)
            return None if reason is None else f"{reason} embedded in an IPv6 address"
    if address.is_loopback and policy.allow_loopback_http:
        return None
    for network, description in BLOCKED_NETWORKS:
        if address in network:
            return description
    if isinstance(address, ipaddress.IPv6Address) and address not in IPV6_GLOBAL_UNICAST:
        return "outside 2000::/3, the public IPv6 space"
    # Python's own table as a second opinion: it grows with IANA's registries.
    if not address.is_global:
        return "not a public address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, NAT64 (the translator forwards to
    the embedded address, so it is judged as that address rather than refused: IPv6-only networks
    reach every IPv4 host this way) and IPv4-compatible (except `::` and `::1`, IPv6's own)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_WELL_KNOWN or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None
