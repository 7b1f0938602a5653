"""RFC 7591: OAuth 2.0 Dynamic Client Registration (the POST), and the client information it returns.

The AS may change anything we asked for (§3.2.1), so the response is the truth: it is kept as
returned, with only the credential fields lifted out and typed. Servers fill responses with
placeholders (``null``, ``""``, numbers as strings in timestamps); those never crash the parse. A
missing or unusable ``client_id``, a credential of the wrong type or size, or no secret for a client
that authenticates with one is refused (:mod:`clientreg.issued`): nothing is saved that claims to work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx
from pydantic import BaseModel, SecretStr

from . import issued
from .errors import (
    ConfigurationError,
    NotPermitted,
    OperationUnsupported,
    ProtocolError,
    RegistrationError,
)
from .http import NOT_JSON, HttpClient, body_excerpt, parse_json, read_oauth_error, show_url

__all__ = [
    "CREDENTIAL_FIELDS",
    "REGISTRATION_ERRORS",
    "ClientInformation",
    "error_from_response",
    "parse_client_information",
    "register",
]

#: Fields of a client information response that are not client metadata (RFC 7591 §3.2.1, RFC 7592 §3).
CREDENTIAL_FIELDS = frozenset({"client_id", "client_secret", "client_id_issued_at",
                               "client_secret_expires_at", "registration_access_token",
                               "registration_client_uri"})

#: RFC 7591 §3.2.2 error codes, with what the user can do about each.
REGISTRATION_ERRORS: Mapping[str, str] = {
    "invalid_redirect_uri": "the AS refused a redirect URI: check spec.redirectUris against its policy",
    "invalid_client_metadata": "the AS refused a metadata value (some servers, e.g. Keycloak, also refuse "
                               "fields they do not know): check the spec and additionalMetadata",
    "invalid_software_statement": "the AS could not verify the software statement",
    "unapproved_software_statement": "the AS does not accept the software statement's issuer",
}


class ClientInformation(BaseModel):
    """RFC 7591 §3.2.1 / RFC 7592 §3 client information, as the AS returned it."""

    client_id: str
    client_secret: SecretStr | None = None
    client_id_issued_at: int | None = None
    #: 0 means the secret never expires (RFC 7591 §3.2.1); ``None`` means the AS did not say.
    client_secret_expires_at: int | None = None
    registration_access_token: SecretStr | None = None
    #: ``None`` when omitted (Hydra omits it on GET/PUT): keep the last known value.
    registration_client_uri: str | None = None
    #: Every other field as returned, server-added defaults and language tags included, bounded in size
    #: (:func:`clientreg.issued.metadata`).
    metadata: dict[str, Any] = {}

    @classmethod
    def from_response(cls, data: Mapping[str, Any]) -> ClientInformation:
        """Parse a decoded JSON object; ProtocolError when a credential field is unusable (see
        :mod:`clientreg.issued` for the rules and caps): nothing of such an answer is kept."""
        if not isinstance(data, Mapping):
            raise ProtocolError(f"RFC 7591 §3.2.1: client information must be a JSON object, got "
                                f"{type(data).__name__}")
        return cls(
            client_id=issued.client_id(data.get("client_id")),
            client_secret=issued.client_secret(data.get("client_secret")),
            client_id_issued_at=issued.timestamp(data.get("client_id_issued_at")),
            client_secret_expires_at=issued.timestamp(data.get("client_secret_expires_at")),
            registration_access_token=issued.registration_access_token(data.get("registration_access_token")),
            registration_client_uri=issued.registration_client_uri(data.get("registration_client_uri")),
            metadata=issued.metadata((k, v) for k, v in data.items()
                                     if isinstance(k, str) and k not in CREDENTIAL_FIELDS),
        )


def error_from_response(cls: type[ProtocolError], message: str, response: httpx.Response, url: str,
                        secrets: Iterable[SecretStr | str | None] = ()) -> ProtocolError:
    """An error of type ``cls`` carrying what the AS said, scrubbed of every known secret."""
    said = read_oauth_error(response, secrets=secrets)
    hint = REGISTRATION_ERRORS.get(said.error or "") if cls is RegistrationError else None
    return cls(f"{message}{': ' + hint if hint else ''}", status=response.status_code, error=said.error,
               error_description=said.error_description, body=said.body, url=url)


def parse_client_information(response: httpx.Response, *, operation: str, url: str,
                             secrets: Iterable[SecretStr | str | None] = (),
                             orphan_warning: bool = False) -> ClientInformation:
    """The client information in a successful answer, or a ProtocolError quoting a scrubbed excerpt."""
    secrets = list(secrets)
    note = (" (the AS may have created a client anyway; look for it at the AS)" if orphan_warning else "")
    data = parse_json(response.content)
    if data is NOT_JSON or not isinstance(data, dict):
        what = "not JSON" if data is NOT_JSON else f"JSON {type(data).__name__}, not an object"
        raise ProtocolError(f"{operation} at '{show_url(url)}' answered HTTP {response.status_code} but the "
                            f"body is {what}{note}", status=response.status_code,
                            body=body_excerpt(response, secrets), url=url)
    try:
        return ClientInformation.from_response(data)
    except ProtocolError as exc:
        raise ProtocolError(f"{operation} at '{show_url(url)}': {exc.message}{note}",
                            status=response.status_code, body=body_excerpt(response, secrets),
                            url=url) from None


#: token_endpoint_auth_method values that need the client_secret the AS issues (RFC 7591 §2).
SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post", "client_secret_jwt"})


def _check_secret_issued(info: ClientInformation, requested: Mapping[str, Any], endpoint: str, status: int) -> None:
    """A client that authenticates with a secret and got none would be reported Ready and never work."""
    method = next((m for m in (info.metadata.get("token_endpoint_auth_method"),
                               requested.get("token_endpoint_auth_method")) if isinstance(m, str)),
                  "client_secret_basic")
    if method in SECRET_METHODS and info.client_secret is None:
        raise ProtocolError(
            f"RFC 7591 §3.2.1: registration at '{show_url(endpoint)}' issued no client_secret, but client "
            f"'{info.client_id}' authenticates with {method} (RFC 7591 §2: client_secret_basic when not "
            "said); nothing was saved. The AS created the client anyway: delete it there", status=status, url=endpoint)


def register(http: HttpClient, endpoint: str, metadata: Mapping[str, Any], *,
             initial_access_token: SecretStr | None = None,
             software_statement: str | None = None) -> ClientInformation:
    """POST ``metadata`` to the registration endpoint (RFC 7591 §3.1) and return what the AS issued.

    The request is sent once: HttpClient repeats a POST only when it cannot have reached the AS.
    """
    issued_by_as = sorted(CREDENTIAL_FIELDS & set(metadata))
    if issued_by_as:
        raise ConfigurationError(
            f"RFC 7591 §3.2.1: {', '.join(issued_by_as)} are issued by the AS and must not be requested "
            "(Keycloak answers 400 to a chosen client_id, other servers replace it): remove them from the "
            "metadata", rule="no-server-issued-fields")
    body = dict(metadata)
    if software_statement:
        body["software_statement"] = software_statement
    secrets = [initial_access_token, software_statement]
    response = http.request("POST", endpoint, json=body, bearer=initial_access_token)
    status = response.status_code
    shown = show_url(endpoint)
    # RFC 7591 §3.2.1 says 201; some servers answer 200.
    if status in (200, 201):
        info = parse_client_information(response, operation="registration", url=endpoint, secrets=secrets,
                                        orphan_warning=True)
        _check_secret_issued(info, metadata, endpoint, status)
        return info
    if status == 400:
        raise error_from_response(RegistrationError, f"RFC 7591 §3.2.2: registration at '{shown}' refused",
                                  response, endpoint, secrets)
    if status in (401, 403):
        said = read_oauth_error(response, secrets=secrets)
        # Keycloak answers 403 insufficient_scope for every policy; only the description tells which.
        described = (said.error_description or "").lower()
        if "scope" in described:
            hint = ("a registration policy refused a requested scope (Keycloak: 'Allowed Client Scopes'): "
                    "request only scopes the AS allows")
        elif "trusted host" in described or "host not trusted" in described:
            hint = ("the AS's 'Trusted Hosts' policy refused this host: use an initial access token "
                    "(spec.initialAccessToken) or add the host to the policy")
        elif initial_access_token is None:
            hint = ("the AS does not accept anonymous registration (RFC 7591 §3; Keycloak: the 'Trusted "
                    "Hosts' policy): set spec.initialAccessToken")
        elif status == 401:
            hint = ("the initial access token was rejected (expired, used up, or issued for another realm "
                    "or AS): issue a new one")
        else:
            hint = "a registration policy of the AS refused this request despite the initial access token"
        raise NotPermitted(f"registration at '{shown}' refused: {hint}", status=status, error=said.error,
                           error_description=said.error_description, body=said.body, url=endpoint)
    if status in (404, 405, 501):
        raise error_from_response(OperationUnsupported,
                                  f"no RFC 7591 registration endpoint at '{shown}' (is dynamic client "
                                  "registration enabled at the AS?)", response, endpoint, secrets)
    if status >= 500:
        raise error_from_response(ProtocolError,
                                  f"registration at '{shown}' failed at the AS; not repeated, because a "
                                  "second POST could register a second client", response, endpoint, secrets)
    raise error_from_response(ProtocolError, f"registration at '{shown}' answered unexpectedly", response,
                              endpoint, secrets)
