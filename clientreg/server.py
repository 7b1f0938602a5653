"""One authorization server as the engine sees it: endpoints (discovered lazily, once) and credentials.

Discovery happens only when something needs an endpoint that is not already in a record, so a no-op
apply of N clients costs N RFC 7592 reads and nothing else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import SecretStr

from .discovery import Discovery, discover, registration_endpoint_of
from .errors import ClientregError, RegisteredAtAnotherServer
from .http import HttpClient, HttpSettings
from .record import RegistrationRecord
from .redirects import check_redirects
from .spec import AuthorizationServerSpec
from .ssrf import USER_CONFIGURED, AddressPolicy

#: Seconds a failed discovery is remembered before the next attempt.
DISCOVERY_FAILURE_TTL = 15.0


def http_settings_for(spec: AuthorizationServerSpec, address_policy: AddressPolicy | None) -> HttpSettings:
    """The HTTP behaviour an AuthorizationServer spec asks for (timeouts, CA bundle, rate limit), under the
    front end's address policy (None: connections to any address)."""
    return HttpSettings(timeout=spec.timeout_seconds, ca_bundle=spec.ca_bundle,
                        requests_per_second=spec.requests_per_second, address_policy=address_policy)


class ServerConnection:
    """Endpoints and credentials of one AS, shared by every client registered there in one run."""

    def __init__(self, spec: AuthorizationServerSpec, http: HttpClient, *, name: str = "",
                 initial_access_token: SecretStr | Callable[[], SecretStr | None] | None = None,
                 software_statement: str | Callable[[], str | None] | None = None) -> None:
        self.spec = spec
        self.http = http
        self.name = name
        # Credentials may be loaders: they are only needed to register, so a registered client keeps
        # working (and can be deleted) while, say, its initial access token Secret is gone.
        self._initial_access_token = initial_access_token
        self._software_statement = software_statement
        self._discovery: Discovery | None = None
        self._failure: tuple[float, ClientregError] | None = None
        self._lock = threading.Lock()

    @property
    def initial_access_token(self) -> SecretStr | None:
        value = self._initial_access_token
        return value() if callable(value) else value

    @property
    def software_statement(self) -> str | None:
        value = self._software_statement
        return value() if callable(value) else value

    def __repr__(self) -> str:
        return f"ServerConnection({self.name or self.spec.issuer or self.spec.registration_endpoint})"

    @classmethod
    def for_spec(cls, spec: AuthorizationServerSpec, *, name: str = "",
                 initial_access_token: SecretStr | Callable[[], SecretStr | None] | None = None,
                 software_statement: str | Callable[[], str | None] | None = None,
                 http: HttpClient | None = None,
                 on_response: Callable[[str, str, int], None] | None = None,
                 address_policy: AddressPolicy | None = USER_CONFIGURED) -> ServerConnection:
        """``address_policy`` applies when no ``http`` is given; the default refuses link-local addresses
        (the cloud metadata service) and allows loopback and private ones."""
        if http is None:
            http = HttpClient(http_settings_for(spec, address_policy), on_response=on_response)
        return cls(spec, http, name=name, initial_access_token=initial_access_token,
                   software_statement=software_statement)

    def discovery(self) -> Discovery | None:
        if self.spec.issuer is None:
            return None
        with self._lock:
            if self._discovery is None:
                # A failure is remembered briefly: with the AS down, every waiting client would
                # otherwise repeat the whole retry schedule, one after the other, under this lock.
                if self._failure is not None and time.monotonic() - self._failure[0] < DISCOVERY_FAILURE_TTL:
                    raise self._failure[1]
                try:
                    self._discovery = discover(self.http, self.spec.issuer)
                except ClientregError as exc:
                    self._failure = (time.monotonic(), exc)
                    raise
                self._failure = None
            return self._discovery

    def known_endpoints(self) -> tuple[str | None, str | None]:
        """(issuer, token endpoint) from the spec or a discovery already made: never a request."""
        found = self._discovery
        if found is not None:
            return found.server.issuer, self.spec.token_endpoint or found.server.token_endpoint
        return None, self.spec.token_endpoint

    @property
    def issuer(self) -> str | None:
        d = self.discovery()
        return d.server.issuer if d else self.spec.issuer

    @property
    def registration_endpoint(self) -> str:
        if self.spec.registration_endpoint:
            return self.spec.registration_endpoint
        d = self.discovery()
        assert d is not None  # the spec guarantees issuer or registrationEndpoint
        return registration_endpoint_of(d)

    @property
    def token_endpoint(self) -> str | None:
        if self.spec.token_endpoint:
            return self.spec.token_endpoint
        d = self.discovery()
        return d.server.token_endpoint if d else None

    @property
    def supports_cimd(self) -> bool:
        d = self.discovery()
        return bool(d and d.server.client_id_metadata_document_supported)

    def check_policy(self, metadata: Mapping[str, Any]) -> None:
        """The server's redirect policy (:func:`clientreg.redirects.check_redirects`), before any request."""
        check_redirects(self.spec, metadata, document=self.name or None)

    def check_owns(self, record: RegistrationRecord) -> None:
        """Refuse a record registered at another server than this spec names, before any request.

        Compared without a request, as far as the spec allows: the issuer a record learnt with the spec's
        issuer, the registration endpoint it registered at with the spec's registration endpoint (issuers are
        compared as RFC 8414 §3.3 says: exactly). A record holding neither, or a spec naming only the other
        one, is not compared: that is an old record, and the server it would be sent to is its own."""
        pairs = ((record.issuer, self.spec.issuer, "issuer"),
                 (record.registration_endpoint, self.spec.registration_endpoint, "registration endpoint"))
        for recorded, declared, what in pairs:
            if recorded and declared and recorded != declared:
                raise RegisteredAtAnotherServer(
                    f"client {record.client_id} was registered at the {what} {recorded}, but the spec names "
                    f"{declared}; the server of a registered client does not change: restore the server, or "
                    "delete the client and apply again", field="serverRef", rule="RegisteredAtAnotherServer",
                    document=self.name or None)

    def close(self) -> None:
        self.http.close()
