"""Is a client still there after the AS rejected its registration access token? A side-effect-free probe.

RFC 7592 §2.1 lets an AS answer 401 both for a deleted client and for a registration access token that is
no longer valid, and every server clientreg is tested against does both (oidc-provider, Keycloak and Hydra
rotate the token on every PUT: whoever sent the PUT now holds the only valid one). Taking the 401 as "gone"
registers a second client and leaves the first live and untracked at the AS.

The token endpoint can tell the two apart without changing anything at the AS: a client_credentials request
(RFC 6749 §4.4) with the stored client credentials. Its answer classifies the client:

=====================================================  ===========  ============================================
Token endpoint answer                                  Liveness     Why
=====================================================  ===========  ============================================
``invalid_client`` (RFC 6749 §5.2)                     ``GONE``     client authentication failed: the AS does
                                                                    not know the client (oidc-provider, Hydra,
                                                                    Keycloak and the dev AS all answer so for a
                                                                    deleted client, 401 or 400)
an access token (RFC 6749 §5.1)                        ``ALIVE``    the client exists and its credentials work
``unauthorized_client``, ``invalid_grant``,            ``EXISTS``   the AS authenticated the client, then
``invalid_scope``, ``unsupported_grant_type``                       refused the grant: it exists
anything else: transport failure, 5xx, another error,  ``UNKNOWN``  nothing proves the client gone: it is kept
a public client (``none``), an auth method clientreg
cannot use, no token endpoint known
=====================================================  ===========  ============================================

Limits: ``invalid_client`` also answers a secret that expired (oidc-provider: 400, "expired" in the
description) or that someone else replaced together with the registration access token; clientreg cannot
tell those from a deleted client, and registers anew as it would for an expired secret. Each 401 costs one
token request per reconcile until a person adopts or deletes the client.

A token the probe obtains is dropped at once and never logged; nor is the secret or the assertion (the
request goes through :func:`clientreg.tokens.client_credentials_token`, whose errors are scrubbed).
Issuing a token is the only thing the AS does: nothing about the client changes.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from .errors import ClientregError, ProtocolError
from .http import HttpClient
from .record import RegistrationRecord
from .tokens import client_credentials_token

log = logging.getLogger("clientreg.liveness")


class Liveness(enum.StrEnum):
    #: The token endpoint answered invalid_client: the AS does not know the client.
    GONE = "gone"
    #: The token endpoint issued a token: the client exists and its credentials work.
    ALIVE = "alive"
    #: The token endpoint authenticated the client and refused the grant: the client exists.
    EXISTS = "exists"
    #: Nothing proves the client gone (or alive).
    UNKNOWN = "unknown"

    @property
    def credentials_work(self) -> bool:
        """Whether workloads can keep using the stored credentials (the client authenticated)."""
        return self in (Liveness.ALIVE, Liveness.EXISTS)


#: RFC 6749 §5.2 errors an AS returns only after (or regardless of) a successful client authentication.
EXISTS_ERRORS = frozenset({"unauthorized_client", "invalid_grant", "invalid_scope", "unsupported_grant_type"})
#: Auth methods the probe can use (RFC 6749 §2.3.1, RFC 7523 §2.2).
PROBED_METHODS = frozenset({"client_secret_basic", "client_secret_post", "private_key_jwt"})


@dataclass(frozen=True)
class Probe:
    liveness: Liveness
    #: Why, for messages: never a secret or a token.
    detail: str


def probe(http: HttpClient, record: RegistrationRecord, token_endpoint: str | None) -> Probe:
    """Classify the client of ``record`` by one client_credentials request to the token endpoint."""
    endpoint = record.token_endpoint or token_endpoint
    if not endpoint:
        return Probe(Liveness.UNKNOWN, "no token endpoint is known to ask whether the client exists")
    method = record.server_metadata.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in PROBED_METHODS:
        return Probe(Liveness.UNKNOWN, f"the client authenticates with {_shown(method)}: the token endpoint "
                     "cannot be asked whether it exists")
    if method == "private_key_jwt" and record.current_key() is None:
        return Probe(Liveness.UNKNOWN, "the client uses private_key_jwt and clientreg holds no key for it")
    if method != "private_key_jwt" and record.client_secret is None:
        return Probe(Liveness.UNKNOWN, "clientreg holds no client secret to ask the token endpoint with")
    try:
        client_credentials_token(http, record, token_endpoint=endpoint)
    except ProtocolError as exc:
        error = exc.error if isinstance(exc.error, str) else None
        if error == "invalid_client":
            return Probe(Liveness.GONE, "the token endpoint answers invalid_client (RFC 6749 §5.2) to the "
                         "stored client credentials")
        if error in EXISTS_ERRORS:
            return Probe(Liveness.EXISTS, f"the token endpoint authenticates the client and answers {error} "
                         "(RFC 6749 §5.2)")
        return Probe(Liveness.UNKNOWN, f"the token endpoint's answer proves nothing ({exc.reason}, HTTP "
                     f"{exc.status if exc.status is not None else '-'})")
    except ClientregError as exc:
        # Transport failure, refused address, configuration: never proof of absence.
        log.info("liveness probe for client %s inconclusive: %s", record.client_id, exc.reason)
        return Probe(Liveness.UNKNOWN, f"the token endpoint could not be asked ({exc.reason})")
    return Probe(Liveness.ALIVE, "the token endpoint issues tokens to the stored client credentials")


def _shown(method: object) -> str:
    text = method if isinstance(method, str) else repr(type(method).__name__)
    return text[:40] if text.isprintable() else "an unprintable method"


__all__ = ["EXISTS_ERRORS", "PROBED_METHODS", "Liveness", "Probe", "probe"]
