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
- an explicit deny-list (``_DENIED`` in :mod:`clientreg._addresses`: cloud metadata addresses, link-local,
  0/8, 192.0.0/24, 198.18/15, 240/4, …) is checked first, refused under every policy and independent of
  the ``ipaddress`` tables;
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

from ._addresses import (
    STRICT,
    USER_CONFIGURED,
    AddressPolicy,
    IPAddress,
    address_refusal,
    denied,
    ip_literal,
    is_loopback_host,
)
from ._bodies import BodyRefused, BodyTooLarge, decode_json, read_bounded
from .errors import PolicyViolation, ProtocolError, TransportError, redact

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

#: (host, port) → the IP addresses (as text) the host resolves to.
Resolver = Callable[[str, int], Sequence[str]]

USER_AGENT: Final = "clientreg-fetch/0.1"


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
        literal = ip_literal(bare)
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
