"""The httpx plumbing under :class:`~clientreg.http.HttpClient`: the guarded transport, redirect
``Location`` headers held away from httpx, TLS failure detection and raw body chunks."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from typing import Final

import httpcore
import httpx

from ._addresses import AddressPolicy
from .ssrf import GuardedBackend, Resolver

__all__ = ["DEFAULT_LIMITS", "HELD_LOCATION", "GuardedTransport", "hold_location", "is_tls_failure", "raw_chunks"]


def is_tls_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return True
        current = current.__cause__ or current.__context__
    return bool(re.search(r"\bSSL\b|\bTLS\b|CERTIFICATE_VERIFY_FAILED|certificate verify", str(exc)))


# httpx's own defaults (httpx._config.DEFAULT_LIMITS), so that guarding a client changes nothing else.
DEFAULT_LIMITS: Final = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with every TCP connection made by :class:`clientreg.ssrf.GuardedBackend`.

    httpx.HTTPTransport takes no network backend, so its connection pool is built here the way it
    builds one without a proxy. TLS is unchanged by the guard: the backend dials the vetted address,
    and httpcore then starts TLS with ``server_hostname`` set to the URL's host, so SNI and certificate
    verification are against the name in the URL, never the address.
    """

    def __init__(self, policy: AddressPolicy, *, verify: ssl.SSLContext | bool = True, trust_env: bool = True,
                 resolver: Resolver | None = None, network_backend: httpcore.NetworkBackend | None = None,
                 limits: httpx.Limits = DEFAULT_LIMITS) -> None:
        self.backend = GuardedBackend(policy, resolver=resolver, inner=network_backend)
        # trust_env here only means SSL_CERT_FILE / SSL_CERT_DIR, as it does for an unguarded client.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=trust_env),
            max_connections=limits.max_connections, max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, http1=True, http2=False, retries=0,
            network_backend=self.backend)


HELD_LOCATION: Final = "clientreg.held_location"


def hold_location(response: httpx.Response) -> None:
    """Take ``Location`` off a redirect before httpx sees it. Even when it will not follow a redirect, httpx
    parses the Location to prepare one, and a hostile value (``javascript:x``, control characters) makes it
    raise from deep inside ``send``; clientreg only ever quotes the value in an error."""
    if 300 <= response.status_code < 400:
        raw = [(k, v) for k, v in response.headers.raw if k.lower() != b"location"]
        if len(raw) != len(response.headers.raw):
            response.extensions[HELD_LOCATION] = next(
                v for k, v in response.headers.raw if k.lower() == b"location")
            response.headers = httpx.Headers(raw)


def raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_raw()
    except httpx.StreamConsumed:
        # Only a response built with content= (a test's MockTransport) is read before it is returned;
        # its stream still holds the bytes as given, so they are decoded under the cap all the same.
        stream = response.stream
        assert isinstance(stream, httpx.SyncByteStream)
        yield from stream
