"""RFC 8414: OAuth 2.0 Authorization Server Metadata (and the OIDC Discovery fallbacks MCP uses).

Only the handful of fields clientreg acts on are typed; everything else the AS publishes is
kept as it came (``model_extra``). Servers publish placeholders (``null``, ``""``, a string
where a list belongs), so optional fields with the wrong type are dropped rather than fatal;
only ``issuer`` must be right, because RFC 8414 §3.3 makes it the anchor of trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .errors import ConfigurationError, DiscoveryError, ProtocolError
from .http import NOT_JSON, HttpClient, body_excerpt, parse_json, show_url

__all__ = [
    "OAUTH_WELL_KNOWN",
    "OIDC_WELL_KNOWN",
    "AuthorizationServerMetadata",
    "MetadataProbe",
    "fetch_server_metadata",
    "insert_well_known",
    "metadata_urls",
    "probe_server_metadata",
]

OAUTH_WELL_KNOWN = "/.well-known/oauth-authorization-server"
OIDC_WELL_KNOWN = "/.well-known/openid-configuration"

_STR_FIELDS = ("registration_endpoint", "token_endpoint", "jwks_uri", "authorization_endpoint",
               "revocation_endpoint", "introspection_endpoint", "userinfo_endpoint")
_LIST_FIELDS = ("scopes_supported", "grant_types_supported", "response_types_supported",
                "token_endpoint_auth_methods_supported", "code_challenge_methods_supported")


def _clean_str(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _clean_list(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [v for v in value if isinstance(v, str)]


def _clean_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() == "true"


class AuthorizationServerMetadata(BaseModel):
    """The AS metadata document, parsed leniently; unknown fields are kept in ``model_extra``."""

    model_config = ConfigDict(extra="allow")

    issuer: str
    registration_endpoint: str | None = None
    token_endpoint: str | None = None
    jwks_uri: str | None = None
    authorization_endpoint: str | None = None
    revocation_endpoint: str | None = None
    introspection_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    scopes_supported: list[str] | None = None
    grant_types_supported: list[str] | None = None
    response_types_supported: list[str] | None = None
    token_endpoint_auth_methods_supported: list[str] | None = None
    code_challenge_methods_supported: list[str] | None = None
    # draft-ietf-oauth-client-id-metadata-document: MCP prefers CIMD over DCR when this is true.
    client_id_metadata_document_supported: bool = False

    @model_validator(mode="before")
    @classmethod
    def _lenient(cls, data: Any) -> Any:
        # Placeholders and wrong types in optional fields read as "not published".
        if not isinstance(data, Mapping):
            return data
        cleaned = {k: v for k, v in data.items() if isinstance(k, str)}
        for name in _STR_FIELDS:
            if name in cleaned:
                cleaned[name] = _clean_str(cleaned[name])
        for name in _LIST_FIELDS:
            if name in cleaned:
                cleaned[name] = _clean_list(cleaned[name])
        if "client_id_metadata_document_supported" in cleaned:
            cleaned["client_id_metadata_document_supported"] = _clean_bool(
                cleaned["client_id_metadata_document_supported"])
        return cleaned

    @classmethod
    def from_document(cls, data: Mapping[str, Any], *, url: str | None = None) -> AuthorizationServerMetadata:
        """Build from a decoded JSON object; only a missing or non-string ``issuer`` is an error."""
        issuer = data.get("issuer")
        if not isinstance(issuer, str) or not issuer.strip():
            raise DiscoveryError(f"RFC 8414 §2: the metadata at '{show_url(url or '?')}' has no issuer",
                                 url=url)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            # Unreachable with the cleaning above; kept so no pydantic error ever escapes.
            raise DiscoveryError(f"RFC 8414 §2: the metadata at '{show_url(url or '?')}' is unusable "
                                 f"({exc.error_count()} invalid fields)", url=url) from None


def _split_issuer(issuer: str) -> tuple[str, str, str]:
    """(scheme, authority, path without a terminating '/'), refusing what RFC 8414 §2 forbids."""
    try:
        parts = urlsplit(issuer)
    except ValueError:
        raise ConfigurationError(f"issuer '{show_url(issuer)}' is not a URL", field="issuer",
                                 rule="url") from None
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigurationError(
            f"RFC 8414 §2: the issuer must be an https URL, got '{show_url(issuer)}'", field="issuer",
            rule="https-required")
    if parts.query or parts.fragment or "?" in issuer or "#" in issuer:
        raise ConfigurationError(
            f"RFC 8414 §2: the issuer '{show_url(issuer)}' must have no query or fragment", field="issuer",
            rule="issuer-form")
    return parts.scheme, parts.netloc, parts.path.rstrip("/")


def insert_well_known(url: str, suffix: str) -> str:
    """RFC 8414 §3.1 / RFC 9728 §3.1: put ``suffix`` between the authority and the path (and query).

    A terminating '/' of the path is removed first, so ``https://a/x/`` and ``https://a/x`` map to
    the same document.
    """
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{suffix}{path}{query}"


def metadata_urls(issuer: str) -> list[str]:
    """Where to look for the metadata of ``issuer``, in the order MCP (2025-11-25) prescribes.

    With a path: RFC 8414 inserted, OIDC inserted, OIDC appended (OIDC Discovery §4, which is
    what oidc-provider mounted under a path and Keycloak before 26.4 serve). Without a path:
    RFC 8414, then OIDC (Hydra serves only the latter).
    """
    scheme, authority, path = _split_issuer(issuer)
    base = f"{scheme}://{authority}"
    if not path:
        return [base + OAUTH_WELL_KNOWN, base + OIDC_WELL_KNOWN]
    return [base + OAUTH_WELL_KNOWN + path, base + OIDC_WELL_KNOWN + path, base + path + OIDC_WELL_KNOWN]


@dataclass(frozen=True)
class MetadataProbe:
    """The outcome of looking for an issuer's metadata at every candidate URL.

    ``metadata``/``url`` are set when one candidate held a usable document; otherwise
    ``attempts`` says what each URL answered, and ``mismatch``/``unreadable`` keep the most
    useful failure for the error message.
    """

    metadata: AuthorizationServerMetadata | None
    url: str | None
    attempts: tuple[str, ...]
    mismatch: str | None = None
    unreadable: str | None = None

    def error(self, issuer: str) -> DiscoveryError:
        """The error to raise when no candidate worked: the most actionable cause first."""
        tried = "; ".join(self.attempts)
        if self.mismatch:
            return DiscoveryError(f"{self.mismatch} (tried: {tried})", url=issuer)
        return DiscoveryError(f"no authorization server metadata found for issuer '{show_url(issuer)}' "
                              f"(tried: {tried})", body=self.unreadable, url=issuer)


def _mismatch_message(found: str, issuer: str) -> str:
    msg = (f"RFC 8414 §3.3: issuer in metadata '{show_url(found)}' differs from '{show_url(issuer)}', "
           "so the metadata must not be used")
    if found.rstrip("/") == issuer.rstrip("/"):
        # Hydra's issuer usually ends in '/', Keycloak's never does: the fix is in the spec.
        msg += f"; only a trailing '/' differs: set the issuer to exactly '{show_url(found)}'"
    return msg


def probe_server_metadata(http: HttpClient, issuer: str) -> MetadataProbe:
    """Try every candidate URL; never raises for what a candidate answered, only for transport failures.

    A 4xx, a 5xx that outlived the retries, a redirect, a non-JSON body or an issuer mismatch at
    one URL moves on to the next: the document at that URL is not used (RFC 8414 §3.3), but
    another URL may still hold the right one.
    """
    attempts: list[str] = []
    mismatch: str | None = None
    unreadable: str | None = None
    for url in metadata_urls(issuer):
        try:
            response = http.request("GET", url)
        except ProtocolError as exc:
            if exc.status is not None and 300 <= exc.status < 400:
                attempts.append(f"{show_url(url)}: HTTP {exc.status} redirect (not followed)")
                continue
            attempts.append(f"{show_url(url)}: {exc.message}")
            continue
        outcome = _read_candidate(response, issuer, url)
        if isinstance(outcome, AuthorizationServerMetadata):
            return MetadataProbe(outcome, url, tuple(attempts), mismatch, unreadable)
        kind, text, excerpt = outcome
        attempts.append(f"{show_url(url)}: {text}")
        if kind == "mismatch" and mismatch is None:
            mismatch = text
        if kind == "unreadable" and unreadable is None:
            unreadable = excerpt
    return MetadataProbe(None, None, tuple(attempts), mismatch, unreadable)


def _read_candidate(response: httpx.Response, issuer: str,
                    url: str) -> AuthorizationServerMetadata | tuple[str, str, str | None]:
    if response.status_code != 200:
        return "status", f"HTTP {response.status_code}", None
    data = parse_json(response.content)
    if data is NOT_JSON or not isinstance(data, dict):
        what = "not JSON" if data is NOT_JSON else f"JSON {type(data).__name__}, not an object"
        return "unreadable", f"HTTP 200 but {what}", body_excerpt(response)
    try:
        metadata = AuthorizationServerMetadata.from_document(data, url=url)
    except DiscoveryError as exc:
        return "unreadable", exc.message, body_excerpt(response)
    if metadata.issuer != issuer:
        return "mismatch", _mismatch_message(metadata.issuer, issuer), None
    return metadata


def fetch_server_metadata(http: HttpClient, issuer: str) -> AuthorizationServerMetadata:
    """The metadata of ``issuer``, whose ``issuer`` field matches exactly (RFC 8414 §3.3)."""
    probe = probe_server_metadata(http, issuer)
    if probe.metadata is None:
        raise probe.error(issuer)
    return probe.metadata
