"""Token requests with issued credentials: proof that a registration really works (RFC 6749 §4.4).

Shared-secret clients authenticate with HTTP Basic or form fields (RFC 6749 §2.3.1); ``private_key_jwt``
clients with an assertion signed by the record's current key (RFC 7523 §2.2).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from .errors import ConfigurationError, ProtocolError, redact
from .http import NOT_JSON, HttpClient, parse_json, read_oauth_error
from .keys import ASSERTION_TYPE, client_assertion
from .record import RegistrationRecord


@dataclass(frozen=True)
class TokenResult:
    access_token: SecretStr
    token_type: str
    expires_in: int | None
    scope: str | None


def client_credentials_token(http: HttpClient, record: RegistrationRecord, *, scope: str | None = None,
                             token_endpoint: str | None = None, audience: str | None = None,
                             now: datetime | None = None) -> TokenResult:
    """A client_credentials token. ``audience`` is the assertion's ``aud`` for private_key_jwt: the token
    endpoint by default (RFC 7523 §3; Ory Hydra accepts nothing else), or the issuer."""
    endpoint = token_endpoint or record.token_endpoint
    if not endpoint:
        raise ConfigurationError(f"no token endpoint known for client {record.client_id}: set "
                                 "spec.tokenEndpoint on its AuthorizationServer")
    method = record.server_metadata.get("token_endpoint_auth_method", "client_secret_basic")
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    headers: dict[str, str] = {}
    key = record.current_key()
    if method == "private_key_jwt" or (record.client_secret is None and key is not None):
        if key is None:
            raise ConfigurationError(f"client {record.client_id} uses private_key_jwt but clientreg holds no "
                                     "key for it: declare spec.keyPair")
        assertion = client_assertion(key, record.client_id, audience or endpoint, now=now or datetime.now(UTC))
        # RFC 7523 §2.2; client_id too, as RFC 6749 §3.2.1 lets servers require it.
        form.update(client_id=record.client_id, client_assertion_type=ASSERTION_TYPE, client_assertion=assertion)
        return _token_request(http, record, endpoint, form, headers)
    if record.client_secret is None:
        raise ConfigurationError(f"client {record.client_id} has no client secret; a client_credentials "
                                 "request needs one")
    secret = record.client_secret.get_secret_value()
    if method == "client_secret_post":
        form.update(client_id=record.client_id, client_secret=secret)
    else:
        # RFC 6749 §2.3.1: form-urlencode both parts before base64.
        pair = f"{quote(record.client_id, safe='')}:{quote(secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return _token_request(http, record, endpoint, form, headers)


def _token_request(http: HttpClient, record: RegistrationRecord, endpoint: str, form: dict[str, str],
                   headers: dict[str, str]) -> TokenResult:
    response = http.request("POST", endpoint, form=form, headers=headers, retry=False)
    body = parse_json(response.content)
    token = body.get("access_token") if isinstance(body, dict) else None
    if response.status_code != 200 or not isinstance(token, str) or not token:
        # Scrubbed of the secret and assertion we sent, should the AS echo them.
        said = read_oauth_error(response, secrets=[record.client_secret, form.get("client_assertion")])
        what = "" if response.status_code != 200 or body is NOT_JSON or not isinstance(body, dict) \
            else " (RFC 6749 §5.1: the answer has no access_token string)"
        raise ProtocolError(f"token request for client {record.client_id} failed{what}", status=response.status_code,
                            error=said.error, error_description=said.error_description, body=said.body, url=endpoint)
    expires = body.get("expires_in")
    token_type, scope = body.get("token_type"), body.get("scope")
    return TokenResult(access_token=SecretStr(token),
                       token_type=redact(token_type, 40) if isinstance(token_type, str) else "",
                       expires_in=_seconds(expires),
                       scope=redact(scope, 500) if isinstance(scope, str) else None)


def _seconds(value: Any) -> int | None:
    """RFC 6749 §5.1 expires_in, read leniently (numbers as strings) and bounded; None when unusable."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        return int(value)
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 10**12:
        return int(value)
    return None
