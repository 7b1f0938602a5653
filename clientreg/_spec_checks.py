"""Validators behind the spec models' field types and cross-field rules.

Each raises ``ValueError`` with a message naming the rule (and the RFC section): pydantic turns it
into the field's error, and :func:`clientreg.spec.parse_document` into a ``ConfigurationError``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated
from urllib.parse import SplitResult, urlsplit

from pydantic import AfterValidator

from ._addresses import is_loopback_host
from .durations import parse_duration
from .redirects import check_redirect_uri, check_scheme_name, check_uri_text, host_pattern
from .redirects import quoted as _quoted

if TYPE_CHECKING:
    from .spec import OAuthClientSpec

__all__ = [
    "Duration",
    "HostPattern",
    "RedirectUri",
    "SchemeName",
    "WebUrl",
    "check_cimd_url",
    "check_duration",
    "check_grants",
    "check_key_pair",
    "check_scope",
    "check_url_text",
    "check_web_url",
]

_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5B\x5D-\x7E]+$")  # RFC 6749 §3.3 scope-token


def check_url_text(value: str) -> SplitResult:
    check_uri_text(value)  # whitespace, control, bidi and invisible characters, backslashes
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a malformed port raises only when read
    except ValueError:
        raise ValueError(f"{_quoted(value)} is not a valid URL") from None
    if parts.username or parts.password:
        # RFC 9110 §4.2.4: no userinfo in http(s) URIs; it would also put a password in logs and at the AS.
        raise ValueError(f"{_quoted(value)} must not carry user:password@ (RFC 9110 §4.2.4)")
    return parts


def check_web_url(value: str, *, allow_loopback_http: bool = True) -> str:
    parts = check_url_text(value)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"{_quoted(value)} must be an absolute URL (scheme and host)")
    if parts.scheme == "http" and allow_loopback_http and is_loopback_host(parts.hostname):
        return value
    if parts.scheme != "https":
        raise ValueError(f"{_quoted(value)} must use https (plain http is allowed only for loopback hosts)")
    return value


def check_duration(value: str) -> str:
    parse_duration(value)
    return value

WebUrl = Annotated[str, AfterValidator(check_web_url)]
RedirectUri = Annotated[str, AfterValidator(check_redirect_uri)]  # RFC 6749 §3.1.2, RFC 8252 §7
HostPattern = Annotated[str, AfterValidator(host_pattern)]
SchemeName = Annotated[str, AfterValidator(check_scheme_name)]  # RFC 8252 §7.1
Duration = Annotated[str, AfterValidator(check_duration)]


def check_scope(value: str | None) -> str | None:
    """RFC 6749 §3.3: space-separated scope tokens."""
    if value is None:
        return value
    bad = [w for w in value.split(" ") if not _SCOPE_TOKEN.match(w)]
    if bad:
        raise ValueError(f"scope is space-separated scope tokens (RFC 6749 §3.3); bad: {bad!r}")
    return value


def check_grants(spec: OAuthClientSpec) -> None:
    """Grant types, response types and redirect URIs agree (OpenID Connect Registration §2, RFC 7591 §2)."""
    grants = set(spec.grant_types or ["authorization_code"])
    responses = set(spec.response_types or (["code"] if "authorization_code" in grants else []))
    if any("code" in r.split() for r in responses) and "authorization_code" not in grants:
        raise ValueError("responseTypes includes 'code', so grantTypes must include authorization_code "
                         "(OpenID Connect Registration §2)")
    if any({"token", "id_token"} & set(r.split()) for r in responses) and "implicit" not in grants:
        raise ValueError("responseTypes includes 'token' or 'id_token', so grantTypes must include implicit")
    if "authorization_code" in grants and spec.response_types is not None and \
            not any("code" in r.split() for r in responses):
        raise ValueError("grantTypes includes authorization_code, so responseTypes must include 'code'")
    if grants & {"authorization_code", "implicit"} and not spec.redirect_uris \
            and spec.registration == "dcr":
        raise ValueError("redirectUris is required for the authorization_code and implicit grants "
                         "(RFC 7591 §2); for machine-to-machine clients set grantTypes: [client_credentials]")


def check_key_pair(spec: OAuthClientSpec) -> None:
    assert spec.key_pair is not None
    if spec.token_endpoint_auth_method != "private_key_jwt":
        raise ValueError("keyPair is only for tokenEndpointAuthMethod: private_key_jwt (RFC 7523 §2.2); "
                         f"tokenEndpointAuthMethod is {spec.token_endpoint_auth_method!r}")
    if spec.jwks is not None:
        raise ValueError("jwks must not be set with keyPair: clientreg derives the client's jwks from the key "
                         "pair it holds (set jwksUri instead to publish the key set yourself)")
    alg = spec.token_endpoint_auth_signing_alg
    if alg is not None and alg != spec.key_pair.algorithm:
        raise ValueError(f"tokenEndpointAuthSigningAlg {alg!r} differs from keyPair.algorithm "
                         f"{spec.key_pair.algorithm!r}: the AS would refuse every assertion (RFC 7591 §2)")


def check_cimd_url(url: str) -> None:
    """draft-ietf-oauth-client-id-metadata-document §3: https, a path, no fragment, no dot segments."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not is_loopback_host(parts.hostname):
        raise ValueError(f"clientIdUrl {url!r} must use https (CIMD §3)")
    if parts.path in ("", "/"):
        raise ValueError(f"clientIdUrl {url!r} must contain a path component (CIMD §3)")
    if parts.fragment or "#" in url:
        raise ValueError(f"clientIdUrl {url!r} must not contain a fragment (CIMD §3)")
    if any(seg in (".", "..") for seg in parts.path.split("/")):
        raise ValueError(f"clientIdUrl {url!r} must not contain dot segments (CIMD §3)")
    if parts.username or parts.password:
        raise ValueError(f"clientIdUrl {url!r} must not contain a username or password (CIMD §3)")
