"""RFC 8414 / OIDC / RFC 9728 discovery, in the MCP order, against servers that disagree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from clientreg.discovery import Discovery, discover, prefers_cimd, registration_endpoint_of
from clientreg.errors import ConfigurationError, DiscoveryError, PolicyViolation, TransportError
from clientreg.http import HttpClient, HttpSettings
from clientreg.rfc8414 import AuthorizationServerMetadata, fetch_server_metadata, metadata_urls
from clientreg.rfc9728 import (
    ProtectedResourceMetadata,
    covers_resource,
    fetch_resource_metadata,
    parse_resource_metadata_header,
    resource_metadata_url,
    same_resource,
)

Routes = Mapping[str, httpx.Response | dict[str, Any]]


class Site:
    """Serves fixed documents by URL (no query); everything else is 404. Records what was asked."""

    def __init__(self, routes: Routes) -> None:
        self.routes = routes
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.seen.append(url)
        answer = self.routes.get(url)
        if answer is None:
            return httpx.Response(404, text="Not Found")
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, json=answer)


def http_for(site: Site, **settings: Any) -> HttpClient:
    return HttpClient(HttpSettings(**settings), transport=httpx.MockTransport(site), sleep=lambda _s: None)


def as_doc(issuer: str, **extra: Any) -> dict[str, Any]:
    return {"issuer": issuer, "registration_endpoint": f"{issuer}/register",
            "token_endpoint": f"{issuer}/token", **extra}


# --- URL construction -----------------------------------------------------------------------

def test_metadata_urls_without_path() -> None:
    expected = ["https://as.example.com/.well-known/oauth-authorization-server",
                "https://as.example.com/.well-known/openid-configuration"]
    assert metadata_urls("https://as.example.com") == expected
    assert metadata_urls("https://as.example.com/") == expected


def test_metadata_urls_with_path_follow_the_mcp_order() -> None:
    expected = ["https://kc.example.com:8443/.well-known/oauth-authorization-server/realms/a",
                "https://kc.example.com:8443/.well-known/openid-configuration/realms/a",
                "https://kc.example.com:8443/realms/a/.well-known/openid-configuration"]
    assert metadata_urls("https://kc.example.com:8443/realms/a") == expected
    assert metadata_urls("https://kc.example.com:8443/realms/a/") == expected


@pytest.mark.parametrize("issuer", ["https://as.example.com/?tenant=a", "https://as.example.com/#x",
                                    "ftp://as.example.com", "as.example.com"])
def test_metadata_urls_refuse_what_rfc_8414_forbids(issuer: str) -> None:
    with pytest.raises(ConfigurationError):
        metadata_urls(issuer)


def test_resource_metadata_url_inserts_before_path_and_query() -> None:
    assert resource_metadata_url("https://mcp.example.com/mcp") == \
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    assert resource_metadata_url("https://mcp.example.com/") == \
        "https://mcp.example.com/.well-known/oauth-protected-resource"
    assert resource_metadata_url("https://r.example.com/api/?v=2") == \
        "https://r.example.com/.well-known/oauth-protected-resource/api?v=2"


def test_parse_resource_metadata_header() -> None:
    assert parse_resource_metadata_header(
        'Bearer error="invalid_token", resource_metadata="https://r.test/.well-known/oauth-protected-resource"'
    ) == "https://r.test/.well-known/oauth-protected-resource"
    assert parse_resource_metadata_header('Basic realm="x", Bearer resource_metadata="https://r/x"') == "https://r/x"
    assert parse_resource_metadata_header('Basic resource_metadata="https://r/x"') is None
    assert parse_resource_metadata_header('Bearer realm="x"') is None
    assert parse_resource_metadata_header("garbage ===") is None


def test_resource_comparisons() -> None:
    assert same_resource("https://MCP.example.com", "https://mcp.example.com/")
    assert same_resource("https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp")
    assert not same_resource("https://mcp.example.com/mcp", "https://mcp.example.com/mcp2")
    assert covers_resource("https://mcp.example.com", "https://mcp.example.com/api/mcp")
    assert covers_resource("https://mcp.example.com/api", "https://mcp.example.com/api/mcp")
    assert not covers_resource("https://mcp.example.com/ap", "https://mcp.example.com/api/mcp")
    assert not covers_resource("https://evil.example.com", "https://mcp.example.com/api/mcp")
    assert not covers_resource("http://mcp.example.com", "https://mcp.example.com/api/mcp")


# --- RFC 8414 -------------------------------------------------------------------------------

def test_hydra_style_openid_configuration_only() -> None:
    issuer = "https://hydra.example.com/"
    site = Site({"https://hydra.example.com/.well-known/openid-configuration": as_doc(issuer)})
    metadata = fetch_server_metadata(http_for(site), issuer)
    assert metadata.issuer == issuer
    assert site.seen == ["https://hydra.example.com/.well-known/oauth-authorization-server",
                         "https://hydra.example.com/.well-known/openid-configuration"]


def test_old_keycloak_and_oidc_provider_under_a_path_serve_the_appended_form() -> None:
    issuer = "https://kc.example.com/realms/a"
    site = Site({f"{issuer}/.well-known/openid-configuration": as_doc(issuer)})
    found = discover(http_for(site), issuer)
    assert found.metadata_url == f"{issuer}/.well-known/openid-configuration"
    assert found.resource is None and len(site.seen) == 3


def test_new_keycloak_serves_the_inserted_rfc_8414_form_first() -> None:
    issuer = "https://kc.example.com/realms/a"
    site = Site({"https://kc.example.com/.well-known/oauth-authorization-server/realms/a": as_doc(issuer),
                 f"{issuer}/.well-known/openid-configuration": as_doc(issuer, token_endpoint="ignored")})
    found = discover(http_for(site), issuer)
    assert found.server.token_endpoint == f"{issuer}/token" and len(site.seen) == 1


def test_issuer_mismatch_is_refused() -> None:
    issuer = "https://as.example.com"
    site = Site({"https://as.example.com/.well-known/oauth-authorization-server": as_doc("https://evil.example"),
                 "https://as.example.com/.well-known/openid-configuration": as_doc("https://evil.example")})
    with pytest.raises(DiscoveryError) as info:
        fetch_server_metadata(http_for(site), issuer)
    message = str(info.value)
    assert "RFC 8414 §3.3" in message and "https://evil.example" in message and issuer in message


def test_issuer_mismatch_at_one_url_does_not_hide_a_good_document_at_the_next() -> None:
    issuer = "https://as.example.com"
    site = Site({"https://as.example.com/.well-known/oauth-authorization-server": as_doc("https://other.example"),
                 "https://as.example.com/.well-known/openid-configuration": as_doc(issuer)})
    assert fetch_server_metadata(http_for(site), issuer).issuer == issuer


def test_trailing_slash_mismatch_says_how_to_fix_it() -> None:
    site = Site({"https://hydra.example.com/.well-known/openid-configuration": as_doc("https://hydra.example.com/")})
    with pytest.raises(DiscoveryError) as info:
        fetch_server_metadata(http_for(site), "https://hydra.example.com")
    assert "trailing '/'" in str(info.value) and "'https://hydra.example.com/'" in str(info.value)


def test_non_json_metadata_is_quoted_in_the_error() -> None:
    page = httpx.Response(200, text="<html><body>Welcome to the portal</body></html>")
    site = Site({"https://as.example.com/.well-known/oauth-authorization-server": page,
                 "https://as.example.com/.well-known/openid-configuration": page})
    with pytest.raises(DiscoveryError) as info:
        fetch_server_metadata(http_for(site), "https://as.example.com")
    assert "Welcome to the portal" in str(info.value) and "not JSON" in str(info.value)


def test_redirects_on_metadata_urls_are_reported_not_followed() -> None:
    moved = httpx.Response(301, headers={"Location": "https://elsewhere.example/.well-known/x"})
    site = Site({"https://as.example.com/.well-known/oauth-authorization-server": moved})
    with pytest.raises(DiscoveryError) as info:
        fetch_server_metadata(http_for(site), "https://as.example.com")
    assert "redirect" in str(info.value)
    assert not any("elsewhere" in url for url in site.seen)


def test_metadata_is_parsed_leniently() -> None:
    doc = {"issuer": "https://as.example.com", "registration_endpoint": "", "token_endpoint": None,
           "jwks_uri": 42, "scopes_supported": "openid profile", "grant_types_supported": ["a", 1, None, "b"],
           "client_id_metadata_document_supported": "true", "x_vendor": {"nested": [1, 2]}}
    metadata = AuthorizationServerMetadata.from_document(doc)
    assert metadata.registration_endpoint is None and metadata.token_endpoint is None
    assert metadata.jwks_uri is None and metadata.scopes_supported is None
    assert metadata.grant_types_supported == ["a", "b"]
    assert metadata.client_id_metadata_document_supported is True
    assert metadata.model_extra == {"x_vendor": {"nested": [1, 2]}}


@pytest.mark.parametrize("doc", [{}, {"issuer": None}, {"issuer": ""}, {"issuer": ["x"]}])
def test_metadata_without_issuer_is_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(DiscoveryError):
        AuthorizationServerMetadata.from_document(doc)


def test_plain_http_issuer_is_refused_before_any_request() -> None:
    site = Site({})
    with pytest.raises(PolicyViolation):
        discover(http_for(site), "http://as.example.com")
    assert site.seen == []


def test_loopback_http_issuer_works() -> None:
    issuer = "http://127.0.0.1:4444"
    site = Site({f"{issuer}/.well-known/openid-configuration": as_doc(issuer)})
    assert discover(http_for(site), issuer).server.issuer == issuer


def test_unreachable_server_is_a_transport_error_not_a_discovery_error() -> None:
    def down(_r: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    http = HttpClient(HttpSettings(retries=1), transport=httpx.MockTransport(down), sleep=lambda _s: None)
    with pytest.raises(TransportError):
        discover(http, "https://as.example.com")


def test_registration_endpoint_of() -> None:
    metadata = AuthorizationServerMetadata.from_document(as_doc("https://as.example.com"))
    found = Discovery(metadata, None, "https://as.example.com/.well-known/openid-configuration")
    assert registration_endpoint_of(found) == "https://as.example.com/register"
    assert not prefers_cimd(found)
    bare = Discovery(AuthorizationServerMetadata.from_document({"issuer": "https://as.example.com"}), None,
                     "https://as.example.com/.well-known/openid-configuration")
    with pytest.raises(DiscoveryError) as info:
        registration_endpoint_of(bare)
    assert "registration_endpoint (RFC 8414 §2)" in str(info.value)
    assert "spec.registrationEndpoint" in str(info.value)


def test_hydra_does_not_advertise_its_registration_endpoint() -> None:
    metadata = AuthorizationServerMetadata.from_document(
        {"issuer": "http://127.0.0.1:4444", "token_endpoint": "http://127.0.0.1:4444/oauth2/token"})
    with pytest.raises(DiscoveryError) as info:
        registration_endpoint_of(Discovery(metadata, None, "http://127.0.0.1:4444/.well-known/openid-configuration"))
    assert "'http://127.0.0.1:4444/oauth2/register'" in str(info.value)


# --- RFC 9728 -------------------------------------------------------------------------------

AS = "https://auth.example.com"
MCP = "https://mcp.example.com/mcp"


def test_mcp_url_via_well_known_resource_metadata() -> None:
    site = Site({"https://mcp.example.com/.well-known/oauth-protected-resource/mcp":
                 {"resource": MCP, "authorization_servers": [AS, "https://second.example.com"]},
                 f"{AS}/.well-known/oauth-authorization-server": as_doc(AS)})
    found = discover(http_for(site), MCP)
    assert found.server.issuer == AS
    assert found.resource is not None and found.resource.resource == MCP
    assert found.metadata_url == f"{AS}/.well-known/oauth-authorization-server"
    assert found.resource_metadata_url == "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    assert registration_endpoint_of(found) == f"{AS}/register"


def test_mcp_url_via_www_authenticate_hint() -> None:
    hint = "https://mcp.example.com/meta/prm.json"
    challenge = httpx.Response(401, headers={
        "WWW-Authenticate": f'Bearer realm="mcp", resource_metadata="{hint}"'})
    site = Site({MCP: challenge, hint: {"resource": MCP, "authorization_servers": [AS]},
                 f"{AS}/.well-known/openid-configuration": as_doc(AS)})
    found = discover(http_for(site), MCP)
    assert found.server.issuer == AS and found.resource_metadata_url == hint
    assert MCP in site.seen


def test_origin_wide_resource_document_is_accepted_for_a_path() -> None:
    # Many MCP servers publish one document for the origin and point every 401 at it.
    root = "https://mcp.example.com/.well-known/oauth-protected-resource"
    site = Site({root: {"resource": "https://mcp.example.com", "authorization_servers": [AS]},
                 f"{AS}/.well-known/oauth-authorization-server": as_doc(AS)})
    found = discover(http_for(site), MCP)
    assert found.resource is not None and found.resource_metadata_url == root


def test_resource_mismatch_is_refused() -> None:
    site = Site({"https://mcp.example.com/.well-known/oauth-protected-resource/mcp":
                 {"resource": "https://evil.example.com/mcp", "authorization_servers": ["https://evil.example.com"]},
                 "https://mcp.example.com/.well-known/oauth-protected-resource":
                 {"resource": "https://mcp.example.com/other", "authorization_servers": [AS]}})
    with pytest.raises(DiscoveryError) as info:
        discover(http_for(site), MCP)
    assert "RFC 9728 §3.3" in str(info.value) and "evil.example.com/mcp" in str(info.value)
    assert not any(url.startswith("https://evil.example.com") for url in site.seen)


def test_fetch_resource_metadata_checks_the_resource_strictly() -> None:
    site = Site({"https://mcp.example.com/.well-known/oauth-protected-resource/mcp":
                 {"resource": "https://mcp.example.com", "authorization_servers": [AS]}})
    with pytest.raises(DiscoveryError):
        fetch_resource_metadata(http_for(site), MCP)
    site = Site({"https://mcp.example.com/.well-known/oauth-protected-resource/mcp":
                 {"resource": MCP, "authorization_servers": [AS, 7, ""], "scopes_supported": None}})
    prm = fetch_resource_metadata(http_for(site), MCP)
    assert isinstance(prm, ProtectedResourceMetadata) and prm.authorization_servers == [AS]


def test_resource_without_authorization_servers() -> None:
    site = Site({"https://mcp.example.com/.well-known/oauth-protected-resource/mcp": {"resource": MCP}})
    with pytest.raises(DiscoveryError) as info:
        discover(http_for(site), MCP)
    assert "authorization_servers" in str(info.value)


def test_authorization_server_named_by_the_resource_must_match_its_issuer() -> None:
    site = Site({"https://mcp.example.com/.well-known/oauth-protected-resource/mcp":
                 {"resource": MCP, "authorization_servers": [AS]},
                 f"{AS}/.well-known/oauth-authorization-server": as_doc("https://evil.example.com")})
    with pytest.raises(DiscoveryError) as info:
        discover(http_for(site), MCP)
    assert "RFC 8414 §3.3" in str(info.value)


def test_insecure_authorization_server_named_by_the_resource_is_a_discovery_error() -> None:
    site = Site({"https://mcp.example.com/.well-known/oauth-protected-resource/mcp":
                 {"resource": MCP, "authorization_servers": ["http://auth.example.com"]}})
    with pytest.raises(DiscoveryError) as info:
        discover(http_for(site), MCP)
    assert "http://auth.example.com" in str(info.value)


def test_insecure_hint_is_not_followed() -> None:
    challenge = httpx.Response(401, headers={"WWW-Authenticate": 'Bearer resource_metadata="http://evil.test/x"'})
    site = Site({MCP: challenge})
    with pytest.raises(DiscoveryError) as info:
        discover(http_for(site), MCP)
    assert "refused" in str(info.value)
    assert not any("evil.test" in url for url in site.seen)


def test_nothing_anywhere_lists_what_was_tried() -> None:
    site = Site({})
    with pytest.raises(DiscoveryError) as info:
        discover(http_for(site), MCP)
    message = str(info.value)
    assert "as an issuer" in message and "as a protected resource" in message
    assert "spec.issuer" in message
