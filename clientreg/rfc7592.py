"""RFC 7592: reading, replacing and deleting a registration at its ``registration_client_uri``.

Every answer may carry a new registration access token or secret (oidc-provider and Keycloak
rotate the RAT on PUT, Hydra on every PUT); callers must persist it before the next request.
Answers may also omit fields (Hydra leaves out ``registration_client_uri`` and, on GET, the RAT
and the secret): those come back as ``None`` and the caller keeps what it knew.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import httpx
from pydantic import SecretStr

from .errors import (
    ClientGone,
    ConfigurationError,
    CredentialsRejected,
    NotPermitted,
    OperationUnsupported,
    ProtocolError,
    RegistrationError,
)
from .http import HttpClient, show_url
from .rfc7591 import ClientInformation, error_from_response, parse_client_information

__all__ = ["FIELDS_NOT_SENT_ON_UPDATE", "delete", "read", "update", "update_body"]

#: RFC 7592 §2.2 forbids the first four in an update request. ``client_secret`` may be sent only if
#: it equals the current one; Hydra answers 403 and oidc-provider 400 otherwise, and a secret has
#: no business in a request body we can avoid, so it is never sent.
FIELDS_NOT_SENT_ON_UPDATE: frozenset[str] = frozenset({
    "registration_access_token", "registration_client_uri", "client_secret_expires_at",
    "client_id_issued_at", "client_secret",
})


#: Fields a server echoes with an empty value but refuses in an update, whatever the value: Hydra
#: returns ``"metadata": {}`` on every read and answers 400 "'metadata' cannot be set for dynamic
#: client registration" when it comes back. An empty value means nothing, so it is left out.
_EMPTY_ECHOES_NOT_SENT: frozenset[str] = frozenset({"metadata"})


def _raise_for(response: httpx.Response, operation: str, uri: str, rat: SecretStr) -> NoReturn:
    """Map a non-success answer to the error the engine acts on."""
    status = response.status_code
    shown = show_url(uri)
    secrets = [rat]
    if status == 401:
        # RFC 7592 §2.1: a bad RAT and a deleted client look the same (RFC 6750 invalid_token).
        raise error_from_response(
            CredentialsRejected, f"RFC 7592 §2: {operation} of '{shown}' rejected the registration access "
            "token (it was rotated, revoked, or the client no longer exists)", response, uri, secrets)
    if status in (404, 410):
        raise error_from_response(ClientGone, f"RFC 7592 §2: {operation} of '{shown}': the client no longer "
                                  "exists at the AS", response, uri, secrets)
    if status == 403:
        raise error_from_response(NotPermitted, f"RFC 7592 §2: the AS does not permit {operation} of "
                                  f"'{shown}'", response, uri, secrets)
    if status in (405, 501):
        raise error_from_response(OperationUnsupported, f"RFC 7592 §2: the AS does not support {operation} "
                                  f"at '{shown}'", response, uri, secrets)
    if status == 400:
        raise error_from_response(RegistrationError, f"RFC 7592 §2.2: {operation} of '{shown}' refused",
                                  response, uri, secrets)
    raise error_from_response(ProtocolError, f"{operation} of '{shown}' answered unexpectedly", response,
                              uri, secrets)


def read(http: HttpClient, uri: str, rat: SecretStr) -> ClientInformation:
    """RFC 7592 §2.1: GET the current registration."""
    response = http.request("GET", uri, bearer=rat)
    if response.status_code == 200:
        return parse_client_information(response, operation="RFC 7592 §2.1 read", url=uri, secrets=[rat])
    _raise_for(response, "read", uri, rat)


def update_body(client_id: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The PUT body: the full metadata (omitted fields are deleted), ``client_id`` included, the
    fields RFC 7592 §2.2 forbids left out, and empty echoes a server would refuse left out."""
    given = metadata.get("client_id")
    if given is not None and given != client_id:
        raise ConfigurationError(f"RFC 7592 §2.2: the update body names client_id '{given}' but the "
                                 f"registration is for '{client_id}'", rule="client-id-matches")
    body = {k: v for k, v in metadata.items() if k not in FIELDS_NOT_SENT_ON_UPDATE
            and not (k in _EMPTY_ECHOES_NOT_SENT and v in (None, {}, [], ""))}
    body["client_id"] = client_id
    return body


def update(http: HttpClient, uri: str, rat: SecretStr, client_id: str,
           metadata: Mapping[str, Any]) -> ClientInformation:
    """RFC 7592 §2.2: replace the registration with ``metadata``. The answer is the new truth."""
    response = http.request("PUT", uri, json=update_body(client_id, metadata), bearer=rat)
    if response.status_code == 200:
        info = parse_client_information(response, operation="RFC 7592 §2.2 update", url=uri, secrets=[rat])
        if info.client_id != client_id:
            raise ProtocolError(f"RFC 7592 §2.2: the update of '{show_url(uri)}' answered for client "
                                f"'{info.client_id}' instead of '{client_id}'", status=200, url=uri)
        return info
    _raise_for(response, "update", uri, rat)


def delete(http: HttpClient, uri: str, rat: SecretStr, *, retry: bool = True) -> None:
    """RFC 7592 §2.3: DELETE the registration (204; 200 accepted). ``retry=False``: one attempt, so a 401
    can never be the answer to a repeat of a DELETE that already went through (see clientreg.retiring)."""
    response = http.request("DELETE", uri, bearer=rat, retry=retry)
    if 200 <= response.status_code < 300:
        return
    _raise_for(response, "delete", uri, rat)
