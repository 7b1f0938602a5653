"""observe: what the AS and the web hold right now (one RFC 7592 read, a GET per published document).

A 401 to the read is ambiguous (RFC 7592 §2.1: the client is gone, or someone else rotated the registration
access token with a PUT): :func:`clientreg.liveness.probe` asks the token endpoint, and the answer decides:

==============================  ==================================  =========================================
RFC 7592 read                   token endpoint (liveness probe)     Observed -> policy (reason)
==============================  ==================================  =========================================
404 / 410                       not asked                           GONE -> ClientGoneAtServer: register anew
401                             invalid_client                      GONE -> ClientGoneAtServer: register anew
401                             a token (ALIVE)                     TOKEN_REVOKED -> RegistrationAccessToken-
                                                                    Revoked: nothing replaced; Ready, not Synced
401                             unauthorized_client, invalid_grant  TOKEN_REVOKED, as above (EXISTS)
                                invalid_scope, unsupported_grant_
                                type
401                             anything else, or not askable       TOKEN_REVOKED, as above, but not Ready: the
                                                                    credentials are not proven to work (UNKNOWN)
==============================  ==================================  =========================================

``CredentialsRejected`` stays the reason of a 401 to an RFC 7592 update or delete (an error, raised by
apply): no observation maps to it any more, because nothing the token endpoint says proves that a client
whose registration access token is rejected may be replaced other than ``invalid_client``, which is "gone".

Never changes the caller's record: credentials the AS returns on a read (RFC 7592 §3: a new secret or
registration access token replaces the old one at once) go into a copy, which is persisted through
``save`` before anything else happens and handed back as :attr:`Observation.record`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import publish, rfc7592
from .errors import ClientGone, ClientregError, CredentialsRejected, OperationUnsupported, ProtocolError
from .http import NOT_JSON, HttpClient, HttpSettings, parse_json
from .liveness import Liveness, probe
from .record import RegistrationRecord
from .rfc7591 import ClientInformation
from .server import ServerConnection
from .ssrf import USER_CONFIGURED


class Observed(enum.StrEnum):
    PRESENT = "present"
    #: 404/410 to the read, or 401 and the token endpoint says invalid_client: register anew.
    GONE = "gone"
    #: 401 to the read and the client is not proven gone (:attr:`Observation.liveness` says what is known):
    #: someone else may hold the registration access token; nothing is replaced.
    TOKEN_REVOKED = "token-revoked"
    UNSUPPORTED = "unsupported"
    NOT_READ = "not-read"


@dataclass(frozen=True)
class Published:
    """What one URL of :func:`clientreg.publish.documents` served when observed."""

    url: str
    #: The parsed JSON; None when nothing usable was served (see ``detail``).
    document: Any = None
    detail: str = ""


@dataclass(frozen=True)
class Observation:
    state: Observed
    info: ClientInformation | None = None
    detail: str = ""
    #: Published documents as fetched (CIMD, JWKS at jwks_uri); empty when none exist or none were read.
    published: tuple[Published, ...] = ()
    #: The observed record with what the read returned (new RAT or secret, endpoints), already saved; None
    #: when the read changed nothing. The caller's record is never changed: see :meth:`current`.
    record: RegistrationRecord | None = None
    #: After a 401 to the read: what the token endpoint said about the client (None when not asked).
    liveness: Liveness | None = None

    def current(self, record: RegistrationRecord | None) -> RegistrationRecord | None:
        """The record to plan and apply on: this observation's copy when the read changed it."""
        return self.record if self.record is not None else record

    @classmethod
    def not_read(cls) -> Observation:
        return cls(Observed.NOT_READ)



Save = Callable[[RegistrationRecord | None], None]


#: GET a published document's URL and return its JSON; raise ClientregError when nothing usable is served.
Fetch = Callable[[str], Any]


def fetch_published(http: HttpClient) -> Fetch:
    """A :data:`Fetch` through clientreg's HttpClient (https, no redirects, bounded body)."""

    def fetch(url: str) -> Any:
        response = http.request("GET", url, retry=False)
        if response.status_code != 200:
            raise ProtocolError(f"GET {url} answered HTTP {response.status_code}", status=response.status_code,
                                url=url)
        data = parse_json(response.content)
        if data is NOT_JSON:
            raise ProtocolError(f"GET {url} did not return usable JSON", url=url)
        return data

    return fetch


def _observe_published(record: RegistrationRecord, fetch: Fetch | None) -> tuple[Published, ...]:
    expected = publish.documents(record)
    if not expected:
        return ()
    own: HttpClient | None = None
    if fetch is None:
        # Documents live on the client's web host, not at the AS: its caBundle and rate limit do not apply.
        own = HttpClient(HttpSettings(retries=1, max_body_bytes=256 * 1024, address_policy=USER_CONFIGURED))
        fetch = fetch_published(own)
    seen = []
    try:
        for url in expected:
            try:
                seen.append(Published(url, document=fetch(url)))
            except ClientregError as exc:
                seen.append(Published(url, detail=str(exc)))
    finally:
        if own is not None:
            own.close()
    return tuple(seen)


def observe(record: RegistrationRecord | None, server: ServerConnection, save: Save, *,
            fetch: Fetch | None = None) -> Observation:
    """One RFC 7592 read, plus a GET of every published document (CIMD, JWKS at jwks_uri).

    A RAT or secret the AS returns is persisted before anything else happens, in a copy of ``record``
    (:attr:`Observation.record`); ``record`` itself is never changed. ``fetch`` replaces how
    published documents are read (the CLI shares one client; an operator may guard it against SSRF).
    """
    if record is None:
        return Observation.not_read()
    if record.registration == "cimd":
        return Observation(Observed.NOT_READ, published=_observe_published(record, fetch))
    if record.registration_client_uri is None or record.registration_access_token is None:
        return Observation(Observed.UNSUPPORTED, detail="no registration_client_uri: RFC 7592 not offered",
                           published=_observe_published(record, fetch))
    try:
        info = rfc7592.read(server.http, record.registration_client_uri, record.registration_access_token)
    except ClientGone as exc:
        return Observation(Observed.GONE, detail=str(exc))
    except CredentialsRejected as exc:
        return _after_401(record, server, exc)
    except OperationUnsupported as exc:
        return Observation(Observed.UNSUPPORTED, detail=str(exc), published=_observe_published(record, fetch))
    updated = record.model_copy(deep=True)
    changed = absorb_credentials(updated, info) | _fill_endpoints(updated, server)
    if changed:
        save(updated)
    return Observation(Observed.PRESENT, info=info, published=_observe_published(updated, fetch),
                       record=updated if changed else None)


def _after_401(record: RegistrationRecord, server: ServerConnection, exc: CredentialsRejected) -> Observation:
    """Ask the token endpoint whether the client still exists (see the module docstring)."""
    try:
        known_endpoint = server.token_endpoint
    except ClientregError:
        known_endpoint = None  # discovery failed: the record's endpoint, if any, is still asked
    found = probe(server.http, record, known_endpoint)
    if found.liveness is Liveness.GONE:
        return Observation(Observed.GONE, detail=f"{exc}; {found.detail}: the client no longer exists",
                           liveness=found.liveness)
    return Observation(Observed.TOKEN_REVOKED, detail=f"{exc}; {found.detail}", liveness=found.liveness)


def _fill_endpoints(record: RegistrationRecord, server: ServerConnection) -> bool:
    """A registration interrupted between its two saves (see _register) lacks the endpoints workloads
    are given; the next look fills them in. True when something changed."""
    if record.issuer and record.token_endpoint:
        return False
    try:
        issuer, token_endpoint = server.issuer, server.token_endpoint
    except ClientregError:
        return False
    changed = False
    if not record.issuer and issuer:
        record.issuer, changed = issuer, True
    if not record.token_endpoint and token_endpoint:
        record.token_endpoint, changed = token_endpoint, True
    return changed


def absorb_credentials(record: RegistrationRecord, info: ClientInformation) -> bool:
    """RFC 7592 §3: a new secret or RAT in any response replaces the old one at once."""
    changed = False
    if info.registration_access_token is not None and info.registration_access_token != \
            record.registration_access_token:
        record.registration_access_token = info.registration_access_token
        changed = True
    if info.client_secret is not None and info.client_secret != record.client_secret:
        record.client_secret = info.client_secret
        changed = True
    if info.registration_client_uri and info.registration_client_uri != record.registration_client_uri:
        record.registration_client_uri = info.registration_client_uri
        changed = True
    if info.client_secret_expires_at is not None and \
            info.client_secret_expires_at != record.client_secret_expires_at:
        record.client_secret_expires_at = info.client_secret_expires_at
        changed = True
    return changed


__all__ = ["Fetch", "Observation", "Observed", "Published", "Save", "absorb_credentials", "fetch_published", "observe"]
