"""From one URL to an authorization server's metadata: an issuer, or an MCP server / protected resource.

The URL is first treated as an issuer (RFC 8414 / OIDC Discovery, in the MCP order). When no
document is found there, it is treated as a protected resource (RFC 9728): its metadata names
the AS, whose own metadata is then fetched with the usual exact issuer check.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import ConfigurationError, DiscoveryError, ProtocolError
from .http import HttpClient, check_url, show_url
from .rfc8414 import AuthorizationServerMetadata, MetadataProbe, probe_server_metadata
from .rfc9728 import (
    PROTECTED_RESOURCE_WELL_KNOWN,
    ProtectedResourceMetadata,
    fetch_resource_metadata_at,
    parse_resource_metadata_header,
    resource_metadata_url,
)

__all__ = ["Discovery", "discover", "prefers_cimd", "registration_endpoint_of"]


@dataclass(frozen=True)
class Discovery:
    """What discovery found. ``metadata_url`` is where the AS metadata came from."""

    server: AuthorizationServerMetadata
    resource: ProtectedResourceMetadata | None
    metadata_url: str
    #: Where the protected resource metadata came from, when discovery went through RFC 9728.
    resource_metadata_url: str | None = None


def discover(http: HttpClient, url: str) -> Discovery:
    """Find the AS behind ``url`` (an issuer, or an MCP server / protected resource URL).

    Transport failures (AS unreachable, TLS, rate limits) propagate at once: they say nothing
    about whether the URL is an issuer, and trying more URLs on the same host would not help.
    """
    check_url(url, allow_insecure_loopback=http.settings.allow_insecure_loopback)
    parts = urlsplit(url)
    as_issuer: MetadataProbe | None = None
    if not parts.query:
        # An issuer never has a query (RFC 8414 §2); a resource URL may.
        as_issuer = probe_server_metadata(http, url)
        if as_issuer.metadata is not None and as_issuer.url is not None:
            return Discovery(as_issuer.metadata, None, as_issuer.url)

    resource, resource_url, problems = _find_resource_metadata(http, url)
    if resource is None or resource_url is None:
        raise _nothing_found(url, as_issuer, problems)
    if not resource.authorization_servers:
        raise DiscoveryError(f"RFC 9728 §2: the protected resource metadata at '{show_url(resource_url)}' "
                             "names no authorization_servers; set spec.issuer to the AS itself", url=url)
    # MCP: the client picks; the first listed is the one the resource prefers.
    issuer = resource.authorization_servers[0]
    try:
        server = probe_server_metadata(http, issuer)
    except ConfigurationError as exc:
        # The issuer came from the resource's document, not from the user: a server-side problem.
        raise DiscoveryError(f"RFC 9728 §2: the authorization server '{show_url(issuer)}' named in "
                             f"'{show_url(resource_url)}' is not usable: {exc.message}", url=url) from None
    if server.metadata is None or server.url is None:
        raise server.error(issuer)
    return Discovery(server.metadata, resource, server.url, resource_url)


def _find_resource_metadata(http: HttpClient,
                            url: str) -> tuple[ProtectedResourceMetadata | None, str | None, list[str]]:
    """RFC 9728 in the order that costs least: path-inserted well-known URL, the 401 hint, the root."""
    problems: list[str] = []
    tried: set[str] = set()

    def attempt(metadata_url: str, *, allow_parent: bool) -> ProtectedResourceMetadata | None:
        if metadata_url in tried:
            return None
        tried.add(metadata_url)
        try:
            return fetch_resource_metadata_at(http, metadata_url, url, allow_parent=allow_parent)
        except ConfigurationError as exc:
            # Only a hint from the server can get here (the URL the user gave was checked already).
            problems.append(f"{show_url(metadata_url)}: refused ({exc.message})")
            return None
        except ProtocolError as exc:
            if exc.status is not None and exc.status != 200:
                problems.append(f"{show_url(metadata_url)}: HTTP {exc.status}")
            else:
                # The summary, not the message: a body excerpt nested in a message outlives every filter.
                problems.append(f"{show_url(metadata_url)}: {exc.summary()}")
            return None

    well_known = resource_metadata_url(url)
    found = attempt(well_known, allow_parent=False)
    if found is not None:
        return found, well_known, problems

    hint = _resource_metadata_hint(http, url, problems)
    if hint is not None:
        found = attempt(hint, allow_parent=True)
        if found is not None:
            return found, hint, problems

    parts = urlsplit(url)
    root = f"{parts.scheme}://{parts.netloc}{PROTECTED_RESOURCE_WELL_KNOWN}"
    found = attempt(root, allow_parent=True)
    if found is not None:
        return found, root, problems
    return None, None, problems


def _resource_metadata_hint(http: HttpClient, url: str, problems: list[str]) -> str | None:
    """RFC 9728 §5.1: an unauthenticated request to the resource may answer 401 with
    ``WWW-Authenticate: Bearer resource_metadata="…"``."""
    try:
        response = http.request("GET", url)
    except ProtocolError as exc:
        problems.append(f"{show_url(url)}: {exc.summary()}")
        return None
    if response.status_code != 401:
        problems.append(f"{show_url(url)}: HTTP {response.status_code}, not a 401 with a "
                        "resource_metadata hint")
        return None
    for value in response.headers.get_list("www-authenticate"):
        hint = parse_resource_metadata_header(value)
        if hint:
            return hint
    problems.append(f"{show_url(url)}: HTTP 401 without a Bearer resource_metadata parameter")
    return None


def _nothing_found(url: str, as_issuer: MetadataProbe | None, problems: list[str]) -> DiscoveryError:
    shown = show_url(url)
    if as_issuer is not None and as_issuer.mismatch:
        # The most actionable failure: a document exists but names another issuer.
        return DiscoveryError(f"{as_issuer.mismatch}; '{shown}' is not a protected resource either "
                              f"({'; '.join(problems)})", url=url)
    as_part = f"as an issuer: {'; '.join(as_issuer.attempts)}; " if as_issuer is not None else ""
    return DiscoveryError(
        f"no authorization server metadata found for '{shown}' ({as_part}as a protected resource "
        f"(RFC 9728): {'; '.join(problems)}); set spec.issuer to the AS's issuer, or "
        "spec.registrationEndpoint", body=as_issuer.unreadable if as_issuer else None, url=url)


def registration_endpoint_of(d: Discovery) -> str:
    """The RFC 7591 endpoint, or an error saying how to supply it."""
    endpoint = d.server.registration_endpoint
    if not endpoint:
        hint = ""
        token = d.server.token_endpoint or ""
        if token.endswith("/oauth2/token"):
            # Ory Hydra (v2.3) serves RFC 7591 there but never advertises it.
            hint = f" (Ory Hydra serves it at '{show_url(token[:-len('token')] + 'register')}' unadvertised)"
        raise DiscoveryError(
            f"the AS '{show_url(d.server.issuer)}' does not advertise registration_endpoint (RFC 8414 §2) "
            f"in '{show_url(d.metadata_url)}': dynamic registration may be disabled; if it is enabled, "
            f"set spec.registrationEndpoint{hint}", url=d.metadata_url)
    return endpoint


def prefers_cimd(d: Discovery) -> bool:
    """MCP (2025-11-25): use a client ID metadata document when the AS supports one, else DCR."""
    return d.server.client_id_metadata_document_supported
