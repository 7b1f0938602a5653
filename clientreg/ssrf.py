"""Fetching a URL that someone else chose, without becoming their proxy into our network (SSRF).

An authorization server fetches URLs its clients name: a Client ID Metadata Document is fetched from
the ``client_id`` itself, keys from ``jwks_uri``. Whoever registers a client (or, with CIMD, anyone
at all) picks the target, so every fetch here follows the CIMD draft's security considerations
(§6 "Server Side Request Forgery") and OWASP's SSRF rules:

- https only (plain http only to loopback, and only behind the explicit ``allow_loopback`` test switch);
- the host is resolved FIRST and every address it resolves to is checked; one refused address refuses
  the URL (an attacker's DNS can mix a public and a private answer); the connection then goes to an
  address that was checked, never to a second resolution (DNS rebinding);
- refused: loopback (unless allowed), private (RFC 1918, ULA, carrier-grade NAT; unless allowed),
  link-local (169.254.0.0/16, which holds the cloud metadata service 169.254.169.254, and fe80::/10),
  multicast, reserved, unspecified, every other special-purpose range, and IPv4 addresses hidden in IPv6
  (mapped, NAT64, 6to4, Teredo) by the same rules;
- an explicit deny-list (:data:`_DENIED`: cloud metadata addresses, link-local, 0/8, 192.0.0/24, 198.18/15,
  240/4, …) is checked first, refused under every policy and independent of the ``ipaddress`` tables;
- redirects are never followed (CIMD §4.1: "MUST NOT automatically follow HTTP redirects"); a body is
  capped; every socket operation has a timeout and the whole fetch a deadline.

The guard sits in the network backend, the one place a TCP connection is made: no code path can
reach a socket without passing it. Tests inject the resolver and the inner backend to prove that a
refused address is never even attempted.

The same backend guards traffic to authorization servers (:class:`AddressPolicy` in ``HttpSettings``),
with a looser policy: an AS is named by whoever configured clientreg, and in-cluster servers on private
addresses are normal. Link-local addresses (the cloud metadata service among them) stay refused there
too: a lying discovery document must not point the registration POST at 169.254.169.254.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import httpcore

from ._bodies import BodyRefused, BodyTooLarge, decode_json, read_bounded
from .errors import PolicyViolation, ProtocolError, TransportError, redact
from .http import is_loopback_host

__all__ = [
    "STRICT",
    "USER_CONFIGURED",
    "AddressPolicy",
    "FetchPolicy",
    "FetchRefused",
    "GuardedBackend",
    "IPAddress",
    "Resolver",
    "address_refusal",
    "denied",
    "fetch_json",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: (host, port) → the IP addresses (as text) the host resolves to.
Resolver = Callable[[str, int], Sequence[str]]

USER_AGENT: Final = "clientreg-fetch/0.1"
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE: Final = ipaddress.ip_network("::/96")
_IPV6_LOOPBACK: Final = ipaddress.ip_address("::1")
_METADATA = "the cloud metadata service"
_SPECIAL = "a special-purpose address, not globally routable"
# Never a server, whatever the switches say and whatever this Python's ``ipaddress`` tables hold: those
# tables changed between releases (192.0.0.192 and 100.100.100.200 were not special to every version), so
# the addresses that matter most are listed here, most specific first. IPv4 addresses embedded in IPv6
# (mapped, IPv4-compatible, NAT64, 6to4, Teredo) are checked against the same list.
_DENIED: Final = tuple((ipaddress.ip_network(net), why) for net, why in (
    ("169.254.169.254/32", _METADATA),  # AWS, GCP, Azure, OpenStack, DigitalOcean, …
    ("169.254.170.2/32", _METADATA),  # AWS ECS task metadata and credentials
    ("100.100.100.200/32", _METADATA),  # Alibaba Cloud; inside 100.64/10, which allow_private admits
    ("192.0.0.192/32", _METADATA),  # Oracle Cloud
    ("fd00:ec2::254/128", _METADATA),  # AWS IMDS over IPv6; inside fc00::/7, which allow_private admits
    ("169.254.0.0/16", "a link-local address"),  # RFC 3927
    ("fe80::/10", "a link-local address"),
    ("0.0.0.0/32", "the unspecified address"),
    ("::/128", "the unspecified address"),
    ("::/96", f"{_SPECIAL} (IPv4-compatible, deprecated by RFC 4291 §2.5.5.1)"),  # ::1 aside, see denied()
    ("0.0.0.0/8", f"{_SPECIAL} ('this network', RFC 791)"),
    ("192.0.0.0/24", f"{_SPECIAL} (IETF protocol assignments, RFC 6890)"),
    ("192.0.2.0/24", f"{_SPECIAL} (documentation, RFC 5737)"),
    ("198.51.100.0/24", f"{_SPECIAL} (documentation, RFC 5737)"),
    ("203.0.113.0/24", f"{_SPECIAL} (documentation, RFC 5737)"),
    ("2001:db8::/32", f"{_SPECIAL} (documentation, RFC 3849)"),
    ("198.18.0.0/15", f"{_SPECIAL} (benchmarking, RFC 2544)"),
    ("224.0.0.0/4", "a multicast address"),
    ("ff00::/8", "a multicast address"),
    ("255.255.255.255/32", "a reserved address (limited broadcast)"),
    ("240.0.0.0/4", "a reserved address (RFC 1112)"),
    ("fec0::/10", "a site-local address"),  # deprecated by RFC 3879, yet "global" to the ipaddress module
    ("64:ff9b:1::/48", f"{_SPECIAL} (local-use NAT64, RFC 8215)"),
    ("::ffff:0:0:0/96", f"{_SPECIAL} (IPv4-translated, RFC 2765)"),
))
# What ``allow_private`` admits: networks an in-cluster or VPN-reachable AS lives on. Other special-purpose
# ranges (documentation, benchmarking, 0/8, 240/4, …) are never where a server is, so they stay refused.
_PRIVATE: Final = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
    "100.64.0.0/10",  # RFC 6598 shared address space: carrier-grade NAT, some pod networks, Tailscale
    "fc00::/7",  # RFC 4193 unique local addresses
))


@dataclass(frozen=True)
class AddressPolicy:
    """Which kinds of address a process may connect to, beyond public ones.

    Link-local (the cloud metadata service included), multicast, unspecified, reserved and other
    special-purpose addresses are refused whatever the switches say; IPv4 addresses embedded in IPv6
    follow the same rules as the IPv4 address itself.
    """

    #: 127.0.0.0/8 and ::1: a local development AS, or the operator's own Pod.
    allow_loopback: bool = True
    #: RFC 1918, RFC 6598 and ULA addresses: in-cluster and VPN-reachable servers.
    allow_private: bool = True

    def refusal(self, ip: IPAddress) -> str | None:
        return address_refusal(ip, allow_loopback=self.allow_loopback, allow_private=self.allow_private)


#: Public addresses only: for URLs that someone other than the operator of this process chose (CIMD).
STRICT: Final = AddressPolicy(allow_loopback=False, allow_private=False)
#: For servers the person running clientreg named (CLI, Pulumi): a local dev AS and in-cluster or VPN
#: servers work; link-local and the other never-a-server addresses do not.
USER_CONFIGURED: Final = AddressPolicy(allow_loopback=True, allow_private=True)


class FetchRefused(PolicyViolation):
    """The URL or an address it resolves to is one this process must not fetch from."""

    reason = "FetchRefused"


@dataclass(frozen=True)
class FetchPolicy:
    """How careful one fetch is. The defaults suit documents a few kilobytes long."""

    #: Test switch: accept loopback addresses (and plain http to them). Never in production.
    allow_loopback: bool = False
    max_bytes: int = 64 * 1024
    #: Per socket operation (connect, each read); ``deadline`` bounds the whole fetch (slow drip bodies).
    timeout: float = 5.0
    deadline: float = 10.0
    #: PEM to trust instead of the system store (tests with their own CA). Not in repr: long.
    ca_bundle: str | None = field(default=None, repr=False)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address a packet to ``ip`` may end up at: mapped, IPv4-compatible, NAT64, 6to4, Teredo."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and ip not in (_IPV6_LOOPBACK, ipaddress.IPv6Address(0))):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [client, server]
    return []


def denied(ip: IPAddress) -> str | None:
    """Why ``ip`` is on the explicit deny-list (an IPv4 address embedded in it included), or None."""
    if ip == _IPV6_LOOPBACK:
        return None  # loopback is the allow_loopback switch's business
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in _embedded_ipv4(ip):
            why = denied(inner)
            if why:
                return f"{why} (embedded in {ip})"
    for network, why in _DENIED:
        if ip.version == network.version and ip in network:
            return why
    return None


def address_refusal(ip: IPAddress, *, allow_loopback: bool = False, allow_private: bool = False) -> str | None:
    """Why ``ip`` must not be connected to, or None when it may be.

    The explicit deny-list comes first and no switch overrides it; the rest of the rules follow the
    ``ipaddress`` module's classification.
    """
    why = denied(ip)
    if why:
        return why
    if isinstance(ip, ipaddress.IPv6Address):
        inners = _embedded_ipv4(ip)
        if inners:
            # The IPv4 address is where the packet goes: its rules, not those of the IPv6 wrapper, apply.
            for inner in inners:
                why = address_refusal(inner, allow_loopback=allow_loopback, allow_private=allow_private)
                if why:
                    return f"{why} (embedded in {ip})"
            return None
        if ip.scope_id:
            return "a scoped IPv6 address"
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "the unspecified address"
    if any(ip in network for network in _PRIVATE):
        return None if allow_private else "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private or not ip.is_global:
        return "a special-purpose address, not globally routable"
    return None


def _ip_literal(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one, allowing a trailing dot and an IPv6 zone index."""
    for candidate in (host, host.rstrip("."), host.split("%", 1)[0]):
        try:
            return ipaddress.ip_address(candidate)
        except ValueError:
            continue
    return None


def _resolved(address: str) -> IPAddress:
    try:
        # A zone index (fe80::1%eth0) only ever accompanies link-local addresses, which are refused anyway.
        return ipaddress.ip_address(str(address).split("%", 1)[0])
    except ValueError:
        raise TransportError(f"the resolver answered {redact(str(address), 60)!r}, not an IP address") from None


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TransportError(f"cannot resolve {host!r} ({exc})") from None
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


class GuardedBackend(httpcore.NetworkBackend):
    """A network backend that connects only to addresses it resolved and vetted itself."""

    def __init__(self, policy: AddressPolicy = STRICT, *, resolver: Resolver | None = None,
                 inner: httpcore.NetworkBackend | None = None) -> None:
        self.policy = policy
        self._resolver = resolver or system_resolver
        self._inner = inner or httpcore.SyncBackend()

    def vet(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` to try, all of them allowed; FetchRefused otherwise."""
        bare = host.strip("[]")
        literal = _ip_literal(bare)
        if literal is not None:
            addresses = [literal]
        else:
            # Whatever the resolver makes of the name (2852039166, 0xa9fea9fe and 127.1 are IPv4 spellings
            # to getaddrinfo) is vetted as the address it resolved to.
            try:
                addresses = [_resolved(a) for a in self._resolver(bare, port)]
            except TransportError as exc:
                # A connect failure to the HTTP layers above, which retry it like any other.
                raise httpcore.ConnectError(str(exc)) from None
        if not addresses:
            raise FetchRefused(f"{host!r} resolves to no address", rule="ssrf")
        for address in addresses:
            why = self.policy.refusal(address)
            if why:
                what = f"is {why}" if literal is not None else f"resolves to {address}, {why}"
                raise FetchRefused(f"{host!r} {what}: refused before connecting (server-side request forgery "
                                   "guard)", rule="ssrf")
        return [str(a) for a in addresses]

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in self.vet(host, port):
            try:
                return self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                               socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise FetchRefused("unix sockets are never fetched from", rule="ssrf")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def check_fetch_url(url: str, *, allow_loopback: bool = False) -> None:
    """The syntactic half of the guard: scheme, userinfo, fragment, host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise FetchRefused(f"'{redact(url, 120)}' is not a valid URL", rule="url") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise FetchRefused(f"'{redact(url, 120)}' has no host", rule="url")
    if parts.username or parts.password:
        raise FetchRefused("a URL with userinfo (user:password@) is never fetched", rule="no-userinfo")
    if parts.fragment or "#" in url:
        raise FetchRefused(f"'{redact(url, 120)}' has a fragment", rule="no-fragment")
    if port == 0:
        raise FetchRefused(f"'{redact(url, 120)}' names port 0", rule="url")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and allow_loopback and is_loopback_host(host):
        return
    raise FetchRefused(f"'{redact(url, 120)}' must use https (CIMD §3; plain http is never fetched)",
                       rule="https-required")


def _ssl_context(policy: FetchPolicy) -> ssl.SSLContext:
    if policy.ca_bundle:
        return ssl.create_default_context(cadata=policy.ca_bundle)
    return ssl.create_default_context()


def fetch_json(url: str, *, policy: FetchPolicy | None = None, resolver: Resolver = system_resolver,
               inner: httpcore.NetworkBackend | None = None, clock: Callable[[], float] = time.monotonic) -> Any:
    """GET ``url`` under the guard and return its JSON body.

    Raises FetchRefused (policy), ProtocolError (status other than 200, redirect, size, not JSON) or
    TransportError (unreachable, timeout).
    """
    policy = policy or FetchPolicy()
    check_fetch_url(url, allow_loopback=policy.allow_loopback)
    shown = redact(url, 160)
    backend = GuardedBackend(AddressPolicy(allow_loopback=policy.allow_loopback, allow_private=False),
                             resolver=resolver, inner=inner)
    timeouts = {"connect": policy.timeout, "read": policy.timeout, "write": policy.timeout,
                "pool": policy.timeout}
    started = clock()
    try:
        with httpcore.ConnectionPool(ssl_context=_ssl_context(policy), network_backend=backend, retries=0,
                                     max_connections=1) as pool, \
                pool.stream("GET", url, headers=[(b"Accept", b"application/json"),
                                                 (b"User-Agent", USER_AGENT.encode())],
                            extensions={"timeout": timeouts}) as response:
            if 300 <= response.status < 400:
                raise ProtocolError(f"GET {shown} answered with a redirect, which is never followed "
                                    "(CIMD §4.1)", status=response.status, url=url)
            if response.status != 200:
                raise ProtocolError(f"GET {shown} did not return the document", status=response.status, url=url)
            headers = {k.lower(): v for k, v in response.headers}
            declared = headers.get(b"content-length", b"")
            if declared.isdigit() and int(declared) > policy.max_bytes:
                raise ProtocolError(f"GET {shown}: {int(declared)} bytes announced, more than the "
                                    f"{policy.max_bytes} read", url=url)

            def on_chunk(_total: int) -> None:
                if clock() - started > policy.deadline:
                    raise TransportError(f"GET {shown}: not done after {policy.deadline:.0f}s", url=url)
            # httpcore never decodes: a Content-Encoding the server sends anyway is decoded under the cap.
            body = read_bounded(response.iter_stream(), limit=policy.max_bytes, on_chunk=on_chunk,
                                content_encoding=headers.get(b"content-encoding", b"").decode("latin-1"))
    except BodyTooLarge as exc:
        raise ProtocolError(f"GET {shown}: the body exceeds {policy.max_bytes} bytes ({exc} size)", url=url) from None
    except BodyRefused as exc:
        raise ProtocolError(f"GET {shown}: {exc}", url=url) from None
    except httpcore.TimeoutException as exc:
        raise TransportError(f"GET {shown}: {type(exc).__name__}", url=url) from None
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, ssl.SSLError) as exc:
        raise TransportError(f"GET {shown}: {type(exc).__name__} ({redact(str(exc), 120)})", url=url) from None
    try:
        return decode_json(body)
    except BodyRefused as exc:
        raise ProtocolError(f"GET {shown}: {exc}", url=url) from None
