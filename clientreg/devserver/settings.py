"""Settings of the dev server, and the :class:`Deployment` they resolve to once its port is bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .._addresses import is_loopback_host

# Every client authentication method the dev server accepts at registration. ``none`` is for public
# clients (authorization code + PKCE elsewhere); they can register here but get no client_credentials token.
TOKEN_ENDPOINT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
SECRET_AUTH_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
# What joserfc verifies by default, less HS256: that one belongs to client_secret_jwt, which is not offered.
ASSERTION_SIGNING_ALGORITHMS = ("RS256", "ES256")

_WILDCARD_HOSTS = {"", "0.0.0.0", "::"}


@dataclass(frozen=True, kw_only=True)
class DevServerSettings:
    """How to run the embedded dev authorization server.

    ``port=0`` picks a free port. ``db_path=None`` keeps everything in memory. ``initial_access_token``
    turns open registration into registration with an RFC 7591 initial access token.
    ``secret_lifetime`` (seconds) sets ``client_secret_expires_at``; None means secrets never expire.
    ``allowed_scopes`` drops any other requested scope silently, like servers that rewrite metadata.
    ``dev_endpoints`` serves ``/_dev/``; None means only when bound to a loopback address.
    ``cimd`` accepts Client ID Metadata Document clients (an https ``client_id`` whose document is fetched)
    and advertises ``client_id_metadata_document_supported``.
    ``fetch_allow_loopback`` is a TEST switch: documents and ``jwks_uri`` key sets may then be fetched from
    loopback addresses (plain http included); every other private address stays refused (SSRF guard).
    ``fetch_ca_bundle`` (PEM) replaces the system trust store for those fetches (a test CA).
    ``clock`` exists so tests can move time instead of sleeping.
    """

    host: str = "127.0.0.1"
    port: int = 0
    db_path: Path | None = None
    initial_access_token: str | None = field(default=None, repr=False)
    rotate_registration_access_token: bool = True
    secret_lifetime: int | None = None
    allowed_scopes: list[str] | None = None
    issuer: str | None = None
    dev_endpoints: bool | None = None
    access_token_lifetime: int = 3600
    cimd: bool = True
    fetch_allow_loopback: bool = False
    fetch_ca_bundle: str | None = field(default=None, repr=False)
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)


def _host_for_url(host: str) -> str:
    # A wildcard bind is reachable on loopback too, and a URL cannot name "any address".
    if host in _WILDCARD_HOSTS:
        host = "::1" if host == "::" else "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class Deployment:
    """The settings resolved against the bound port: the issuer and every URL derived from it."""

    settings: DevServerSettings
    port: int

    @property
    def issuer(self) -> str:
        if self.settings.issuer:
            return self.settings.issuer.rstrip("/")
        return f"http://{_host_for_url(self.settings.host)}:{self.port}"

    @property
    def path_prefix(self) -> str:
        """The issuer's path: endpoints live under it, like a realm of a multi-tenant server."""
        return urlsplit(self.issuer).path.rstrip("/")

    def url(self, route: str) -> str:
        return self.issuer + route

    @property
    def registration_endpoint(self) -> str:
        return self.url("/register")

    @property
    def token_endpoint(self) -> str:
        return self.url("/token")

    @property
    def introspection_endpoint(self) -> str:
        return self.url("/introspect")

    def registration_client_uri(self, client_id: str) -> str:
        return f"{self.registration_endpoint}/{client_id}"

    @property
    def serves_dev_endpoints(self) -> bool:
        if self.settings.dev_endpoints is not None:
            return self.settings.dev_endpoints
        return is_loopback_host(self.settings.host)

    def now(self) -> int:
        return int(self.settings.clock())
