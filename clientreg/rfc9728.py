"""RFC 9728: OAuth 2.0 Protected Resource Metadata, the way from an MCP server to its AS.

The ``resource`` a document names must be the URL we asked about (§3.3); otherwise anyone who
can serve a file on the resource's host could send us, and our initial access token, to an AS
of their choosing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from .errors import DiscoveryError, ProtocolError
from .http import NOT_JSON, HttpClient, body_excerpt, parse_challenges, parse_json, show_url
from .rfc8414 import insert_well_known

__all__ = [
    "PROTECTED_RESOURCE_WELL_KNOWN",
    "ProtectedResourceMetadata",
    "covers_resource",
    "fetch_resource_metadata",
    "fetch_resource_metadata_at",
    "parse_resource_metadata_header",
    "resource_metadata_url",
    "same_resource",
]

PROTECTED_RESOURCE_WELL_KNOWN = "/.well-known/oauth-protected-resource"

_LIST_FIELDS = ("authorization_servers", "scopes_supported", "bearer_methods_supported",
                "resource_signing_alg_values_supported")
_STR_FIELDS = ("jwks_uri", "resource_name", "resource_documentation")


class ProtectedResourceMetadata(BaseModel):
    """The protected resource's metadata, parsed leniently; unknown fields kept in ``model_extra``."""

    model_config = ConfigDict(extra="allow")

    resource: str
    # OPTIONAL in §2; without it the document cannot lead us anywhere, which discovery reports.
    authorization_servers: list[str] = []
    scopes_supported: list[str] | None = None
    bearer_methods_supported: list[str] | None = None
    resource_signing_alg_values_supported: list[str] | None = None
    jwks_uri: str | None = None
    resource_name: str | None = None
    resource_documentation: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _lenient(cls, data: Any) -> Any:
        # Placeholders and wrong types in optional fields read as "not published".
        if not isinstance(data, Mapping):
            return data
        cleaned = {k: v for k, v in data.items() if isinstance(k, str)}
        for name in _LIST_FIELDS:
            if name in cleaned:
                value = cleaned[name]
                items = [v.strip() for v in value if isinstance(v, str) and v.strip()] \
                    if isinstance(value, list) else None
                cleaned[name] = items if items is not None or name != "authorization_servers" else []
        for name in _STR_FIELDS:
            if name in cleaned:
                value = cleaned[name]
                cleaned[name] = value.strip() if isinstance(value, str) and value.strip() else None
        return cleaned

    @classmethod
    def from_document(cls, data: Mapping[str, Any], *, url: str | None = None) -> ProtectedResourceMetadata:
        """Build from a decoded JSON object; only a missing or non-string ``resource`` is an error."""
        resource = data.get("resource")
        if not isinstance(resource, str) or not resource.strip():
            raise DiscoveryError(f"RFC 9728 §2: the metadata at '{show_url(url or '?')}' has no resource",
                                 url=url)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise DiscoveryError(f"RFC 9728 §2: the metadata at '{show_url(url or '?')}' is unusable "
                                 f"({exc.error_count()} invalid fields)", url=url) from None


def resource_metadata_url(resource: str) -> str:
    """RFC 9728 §3.1: the well-known suffix goes between the host and the path and/or query."""
    return insert_well_known(resource, PROTECTED_RESOURCE_WELL_KNOWN)


def parse_resource_metadata_header(www_authenticate: str) -> str | None:
    """The ``resource_metadata`` parameter of a Bearer challenge (RFC 9728 §5.1), if any."""
    for challenge in parse_challenges(www_authenticate):
        if challenge.scheme == "bearer":
            value = challenge.params.get("resource_metadata", "").strip()
            if value:
                return value
    return None


def _normal(url: str) -> tuple[str, str, str, str]:
    parts = urlsplit(url)
    port = parts.port
    host = (parts.hostname or "").lower()
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    authority = host if port is None or port == default else f"{host}:{port}"
    return parts.scheme.lower(), authority, parts.path or "/", parts.query


def same_resource(a: str, b: str) -> bool:
    """Equal after RFC 3986 §6.2.2-6.2.3 normalisation only (case of scheme/host, default port,
    empty path = '/').

    The leniency exists because pydantic-based MCP servers publish ``https://host/`` for a
    resource that clients call ``https://host``; the two are the same URL.
    """
    try:
        return _normal(a) == _normal(b)
    except ValueError:
        return False


def covers_resource(published: str, requested: str) -> bool:
    """``published`` is ``requested`` or a parent of it on the same origin (path-segment prefix).

    RFC 9728 §3.3 asks for identity; MCP servers commonly publish one document for the whole
    origin (resource ``https://host``) and point every endpoint's 401 at it. The MCP SDKs and
    draft-mcguinness-oauth-rfc9728bis accept that, and so does discovery here: the origin, which
    is what the security of §3.3 rests on, must still be identical.
    """
    if same_resource(published, requested):
        return True
    try:
        p_scheme, p_auth, p_path, p_query = _normal(published)
        r_scheme, r_auth, r_path, _ = _normal(requested)
    except ValueError:
        return False
    if (p_scheme, p_auth) != (r_scheme, r_auth) or p_query or "#" in published:
        return False
    parent = p_path.rstrip("/")
    return parent == "" or r_path == parent or r_path.startswith(parent + "/")


def fetch_resource_metadata_at(http: HttpClient, metadata_url: str, resource: str, *,
                               allow_parent: bool = False) -> ProtectedResourceMetadata:
    """Fetch the document at ``metadata_url`` and check that it describes ``resource`` (§3.3).

    ``allow_parent`` also accepts a document for a parent of ``resource`` on the same origin
    (see :func:`covers_resource`).
    """
    try:
        response = http.request("GET", metadata_url)
    except ProtocolError as exc:
        if isinstance(exc, DiscoveryError):
            raise
        raise DiscoveryError(f"RFC 9728: protected resource metadata for '{show_url(resource)}' could not be "
                             f"fetched: {exc.message}", status=exc.status, url=metadata_url) from None
    return _read(response, metadata_url, resource, allow_parent)


def _read(response: httpx.Response, metadata_url: str, resource: str,
          allow_parent: bool) -> ProtectedResourceMetadata:
    shown = show_url(metadata_url)
    if response.status_code != 200:
        raise DiscoveryError(f"RFC 9728 §3.2: no protected resource metadata at '{shown}'",
                             status=response.status_code, body=body_excerpt(response), url=metadata_url)
    data = parse_json(response.content)
    if data is NOT_JSON or not isinstance(data, dict):
        raise DiscoveryError(f"RFC 9728 §3.2: the protected resource metadata at '{shown}' is not a JSON "
                             "object", status=200, body=body_excerpt(response), url=metadata_url)
    metadata = ProtectedResourceMetadata.from_document(data, url=metadata_url)
    matches = covers_resource if allow_parent else same_resource
    if not matches(metadata.resource, resource):
        raise DiscoveryError(
            f"RFC 9728 §3.3: resource in metadata '{show_url(metadata.resource)}' differs from "
            f"'{show_url(resource)}', so the metadata must not be used", url=metadata_url)
    return metadata


def fetch_resource_metadata(http: HttpClient, resource: str) -> ProtectedResourceMetadata:
    """The metadata published for ``resource`` at its well-known URL (§3.1), ``resource`` checked (§3.3)."""
    return fetch_resource_metadata_at(http, resource_metadata_url(resource), resource)
