"""The redirect policy's rules (clientreg/redirects.py): every known dodge of allowedRedirectHosts is refused
with a message naming the field and the rule, the allowed cases still pass, patterns and schemes are
validated strictly, and what the policy accepts has one host for every parser. Enforcement at every front
end is in test_redirects_enforcement.py.

    pytest tests/unit/test_redirects.py -q
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from clientreg.errors import ConfigurationError, PolicyViolation
from clientreg.redirects import (
    RedirectNotPermitted,
    check_pattern,
    check_redirects,
    host_allowed,
    parse_redirect_uri,
)
from clientreg.spec import AuthorizationServerSpec, parse_document

TENANT = ["*.tenant-a.example.com"]
ISSUER = "http://127.0.0.1:9"  # never dialled: every test that could send fails on the first request


def server_spec(hosts: list[str] | None = None, schemes: list[str] | None = None) -> AuthorizationServerSpec:
    return AuthorizationServerSpec(issuer=ISSUER, allowed_redirect_hosts=TENANT if hosts is None else hosts,
                                   allowed_redirect_schemes=schemes or [])


def refused(metadata: dict[str, Any], spec: AuthorizationServerSpec | None = None) -> RedirectNotPermitted:
    with pytest.raises(RedirectNotPermitted) as caught:
        check_redirects(spec or server_spec(), metadata, document="AuthorizationServer/tenant-a")
    return caught.value


# --- the dodges ---------------------------------------------------------------------------------------------

R = "spec.redirectUris[0]"
SYNTAX = "RFC 6749 §3.1.2, RFC 8252 §7"
HOSTS = "allowedRedirectHosts"
# (id, redirect URI, the rule, words the message must contain), all against *.tenant-a.example.com
DODGES: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("backslash-in-host", "https://evil.test\\.tenant-a.example.com/cb", SYNTAX, ("backslash",)),
    ("backslash-before-userinfo", "https://evil.test\\@app.tenant-a.example.com/cb", SYNTAX, ("backslash",)),
    ("backslash-as-slash", "https://app.tenant-a.example.com\\\\evil.test/cb", SYNTAX, ("backslash",)),
    ("encoded-backslash-in-host", "https://evil.test%5c.tenant-a.example.com/cb", SYNTAX, ("percent-encoded",)),
    ("encoded-backslash-upper", "https://evil.test%5C.tenant-a.example.com/cb", SYNTAX, ("percent-encoded",)),
    ("encoded-dot-in-host", "https://evil%2etest.tenant-a.example.com/cb", SYNTAX, ("percent-encoded",)),
    ("encoded-host", "https://%65vil.test/cb", SYNTAX, ("percent-encoded",)),
    ("userinfo-host-lookalike", "https://tenant-a.example.com@evil.test/cb", SYNTAX, ("userinfo",)),
    ("userinfo-subdomain", "https://app.tenant-a.example.com@evil.test/cb", SYNTAX, ("userinfo",)),
    ("userinfo-with-port", "https://app.tenant-a.example.com:443@evil.test/cb", SYNTAX, ("userinfo",)),
    ("userinfo-empty", "https://@evil.test/cb", SYNTAX, ("userinfo",)),
    ("cyrillic-a", "https://app.tenant-\u0430.example.com/cb", SYNTAX, ("U+0430", "A-label")),
    ("cyrillic-a-as-a-label", "https://app." + "tenant-\u0430".encode("idna").decode() + ".example.com/cb",
     HOSTS, ("matches none",)),
    ("bogus-a-label", "https://xn--abc.tenant-a.example.com/cb", SYNTAX, ("A-label",)),
    ("fullwidth-dot", "https://evil.test\uff0etenant-a.example.com/cb", SYNTAX, ("U+FF0E",)),
    ("ideographic-dot", "https://evil.test\u3002tenant-a.example.com/cb", SYNTAX, ("U+3002",)),
    ("fullwidth-letters", "https://\uff45vil.test/cb", SYNTAX, ("U+FF45",)),
    ("trailing-dot", "https://app.tenant-a.example.com./cb", SYNTAX, ("end with a dot",)),
    ("trailing-dot-suffix", "https://tenant-a.example.com./cb", SYNTAX, ("end with a dot",)),
    ("empty-label", "https://app..tenant-a.example.com/cb", SYNTAX, ("empty label",)),
    ("leading-dot", "https://.tenant-a.example.com/cb", SYNTAX, ("empty label",)),
    ("uppercase-elsewhere", "https://EVIL.TEST/cb", HOSTS, ("'evil.test'", "matches none")),
    ("suffix-then-evil", "https://tenant-a.example.com.evil.test/cb", HOSTS, ("matches none",)),
    ("prefix-glued", "https://evil-tenant-a.example.com/cb", HOSTS, ("matches none",)),
    ("prefix-glued-no-dash", "https://eviltenant-a.example.com/cb", HOSTS, ("matches none",)),
    ("wildcard-needs-a-label", "https://tenant-a.example.com/cb", HOSTS, ("matches none",)),
    ("underscore-label", "https://evil_test.tenant-a.example.com/cb", SYNTAX, ("not a host name label",)),
    ("ipv6-literal", "https://[::1]/cb", HOSTS, ("matches none",)),
    ("ipv6-zone", "https://[fe80::1%25eth0]/cb", SYNTAX, ("percent-encoded",)),
    ("ipv4-mapped", "https://[::ffff:127.0.0.1]/cb", SYNTAX, ("IPv4-mapped",)),
    ("ipvfuture", "https://[v1.tenant-a.example.com]/cb", SYNTAX, ("not an IPv6 address",)),
    ("unclosed-bracket", "https://[::1/cb", SYNTAX, ("not a valid URI",)),
    ("text-after-literal", "https://[::1]evil.test/cb", SYNTAX, ("after the IPv6",)),
    ("short-ipv4", "https://127.1/cb", SYNTAX, ("IPv4",)),
    ("hex-ipv4", "https://0x7f.0.0.1/cb", SYNTAX, ("IPv4",)),
    ("integer-ipv4", "https://2130706433/cb", SYNTAX, ("IPv4",)),
    ("octal-ipv4", "https://0177.0.0.1/cb", SYNTAX, ("IPv4",)),
    ("numeric-tail", "https://evil.tenant-a.example.com.1/cb", SYNTAX, ("IPv4",)),
    ("port-too-big", "https://app.tenant-a.example.com:99999/cb", SYNTAX, ("not a port",)),
    ("port-leading-zero", "https://app.tenant-a.example.com:0443/cb", SYNTAX, ("not a port",)),
    ("port-empty", "https://app.tenant-a.example.com:/cb", SYNTAX, ("not a port",)),
    ("port-plus", "https://app.tenant-a.example.com:+443/cb", SYNTAX, ("not a port",)),
    ("port-twice", "https://app.tenant-a.example.com:443:80/cb", SYNTAX, ("not a port",)),
    ("port-hex", "https://app.tenant-a.example.com:0x1bb/cb", SYNTAX, ("not a port",)),
    ("host-in-port", "https://evil.test:app.tenant-a.example.com/cb", SYNTAX, ("not a port",)),
    ("one-slash", "https:/evil.test/cb", SYNTAX, ("no host",)),
    ("three-slashes", "https:///evil.test/cb", SYNTAX, ("no host",)),
    ("no-slash", "https:evil.test/cb", SYNTAX, ("no host",)),
    ("plain-http", "http://app.tenant-a.example.com/cb", SYNTAX, ("plain http",)),
    ("fragment", "https://app.tenant-a.example.com/cb#x", SYNTAX, ("fragment",)),
    ("space", "https://app.tenant-a.example.com /cb", SYNTAX, ("whitespace",)),
    ("tab-in-host", "https://evil.test\t.tenant-a.example.com/cb", SYNTAX, ("whitespace", "U+0009")),
    ("nbsp", "https://evil.test\u00a0.tenant-a.example.com/cb", SYNTAX, ("whitespace", "U+00A0")),
    ("rlo", "https://app.tenant-a.example.com/\u202ebc/", SYNTAX, ("bidirectional", "U+202E")),
    ("lre", "https://\u202aapp.tenant-a.example.com/cb", SYNTAX, ("bidirectional", "U+202A")),
    ("rli", "https://app.tenant-a.example.com/\u2067cb", SYNTAX, ("bidirectional", "U+2067")),
    ("pdi", "https://app.tenant-a.example.com/cb?\u2069", SYNTAX, ("bidirectional", "U+2069")),
    ("rlm", "https://app.tenant-a.example.com\u200f/cb", SYNTAX, ("bidirectional", "U+200F")),
    ("lrm", "https://app.tenant-a.example.com/\u200ecb", SYNTAX, ("bidirectional", "U+200E")),
    ("arabic-letter-mark", "https://app.tenant-a.example.com/\u061ccb", SYNTAX, ("bidirectional", "U+061C")),
    ("zero-width-space", "https://evil.test\u200b.tenant-a.example.com/cb", SYNTAX, ("invisible", "U+200B")),
    ("nul", "https://app.tenant-a.example.com/\x00", SYNTAX, ("control", "U+0000")),
    ("del", "https://app.tenant-a.example.com/\x7f", SYNTAX, ("control", "U+007F")),
    ("c1-control", "https://app.tenant-a.example.com/\x85", SYNTAX, ("control", "U+0085")),
    ("markup-in-path", "https://app.tenant-a.example.com/[/red]", SYNTAX, ("%5B",)),
    ("bracket-in-query", "https://app.tenant-a.example.com/cb?a[]=1", SYNTAX, ("%5B",)),
    ("quote-in-path", 'https://app.tenant-a.example.com/"cb', SYNTAX, ("RFC 3986 §2",)),
    ("bad-percent", "https://app.tenant-a.example.com/%zz", SYNTAX, ("percent-encoded byte",)),
    ("relative", "//evil.test/cb", SYNTAX, ("absolute",)),
    ("javascript", "javascript:alert(1)", SYNTAX, ("reverse domain",)),
    ("private-use-no-schemes", "com.evil.app:/cb", "allowedRedirectSchemes",
     ("com.evil.app", "no allowedRedirectSchemes")),
    ("private-use-with-allowed-host", "com.evil.app://app.tenant-a.example.com/cb", "allowedRedirectSchemes",
     ("com.evil.app",)),
    ("private-use-triple-slash", "com.evil.app:///cb", "allowedRedirectSchemes", ("com.evil.app",)),
    ("private-use-backslash", "com.evil.app:/\\cb", SYNTAX, ("backslash",)),
    ("too-long", "https://app.tenant-a.example.com/" + "a" * 5000, SYNTAX, ("longer than",)),
]


@pytest.mark.parametrize(("uri", "rule", "words"), [pytest.param(u, r, w, id=i) for i, u, r, w in DODGES])
def test_dodges_of_allowed_redirect_hosts_are_refused_naming_field_and_rule(uri: str, rule: str,
                                                                            words: tuple[str, ...]) -> None:
    error = refused({"redirect_uris": ["https://app.tenant-a.example.com/ok", uri]})
    assert isinstance(error, PolicyViolation) and error.reason == "NotPermitted" and error.exit_code == 2
    assert error.field == "spec.redirectUris[1]" and error.rule == rule
    assert error.document == "AuthorizationServer/tenant-a"
    message = str(error)
    assert message.startswith("AuthorizationServer/tenant-a: spec.redirectUris[1]: "), message
    for word in words:
        assert word in message, (word, message)
    # The hostile URI is quoted escaped: no raw control or bidi character reaches a log or a status.
    assert not any(c in message for c in "\r\n\t\x00\x7f\x85\u202a\u202e\u2067\u2069\u200e\u200f\u061c\u200b")


SYNTAX_DODGES = [pytest.param(u, w, id=i) for i, u, r, w in DODGES if r == SYNTAX]


@pytest.mark.parametrize(("uri", "words"), SYNTAX_DODGES)
def test_syntax_dodges_are_refused_by_the_spec_itself(uri: str, words: tuple[str, ...]) -> None:
    doc = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient", "metadata": {"name": "web"},
           "spec": {"serverRef": {"name": "as"}, "redirectUris": [uri]}}
    with pytest.raises(ConfigurationError) as caught:
        parse_document(doc, source="clients.yaml")
    assert caught.value.field == "spec.redirectUris.0"
    assert words[0] in str(caught.value), str(caught.value)


ALLOWED: list[tuple[str, list[str], list[str], str]] = [
    ("subdomain", TENANT, [], "https://app.tenant-a.example.com/cb"),
    ("deep-subdomain-port-query", TENANT, [], "https://a.b.tenant-a.example.com:8443/cb?x=1&y=%2F"),
    ("uppercase", TENANT, [], "HTTPS://APP.Tenant-A.example.com/cb"),
    ("uppercase-pattern", ["*.TENANT-A.Example.com"], [], "https://app.tenant-a.example.com/cb"),
    ("encoded-backslash-in-path", TENANT, [], "https://app.tenant-a.example.com/%5Ccb"),
    ("at-in-path", TENANT, [], "https://app.tenant-a.example.com/users/@me"),
    ("idn-a-label", TENANT, [], "https://xn--bcher-kva.tenant-a.example.com/cb"),
    ("idn-pattern", ["xn--bcher-kva.example"], [], "https://xn--bcher-kva.example/cb"),
    ("exact-host", ["tenant-a.example.com"], [], "https://tenant-a.example.com/cb"),
    ("loopback-ipv4", ["127.0.0.1"], [], "http://127.0.0.1:8080/cb"),
    ("loopback-ipv6", ["[::1]"], [], "http://[::1]:8080/cb"),
    ("loopback-ipv6-long-form", ["::1"], [], "http://[0:0:0:0:0:0:0:1]/cb"),
    ("localhost", ["localhost"], [], "http://localhost:5000/cb"),
    ("private-use-listed", TENANT, ["com.tenant-a.app"], "com.tenant-a.app:/oauth2redirect"),
    ("private-use-case", TENANT, ["com.tenant-a.app"], "COM.Tenant-A.App:/cb"),
    ("private-use-without-policy", [], [], "com.evil.app:/cb"),
    ("any-host-without-policy", [], [], "https://evil.test/cb"),
    ("schemes-alone-leave-hosts-free", [], ["com.tenant-a.app"], "https://evil.test/cb"),
]


@pytest.mark.parametrize(("hosts", "schemes", "uri"), [pytest.param(h, s, u, id=i) for i, h, s, u in ALLOWED])
def test_allowed_redirect_uris_pass(hosts: list[str], schemes: list[str], uri: str) -> None:
    spec = server_spec(hosts, schemes)
    check_redirects(spec, {"redirect_uris": [uri], "post_logout_redirect_uris": [uri]})
    parse_document({"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient", "metadata": {"name": "web"},
                    "spec": {"serverRef": {"name": "as"}, "redirectUris": [uri]}})


def test_allowed_schemes_are_exact_and_bind_even_without_a_host_list() -> None:
    for uri in ("com.tenant-a.app.evil:/cb", "com.tenant-a:/cb", "app.tenant-a.com:/cb"):
        assert refused({"redirect_uris": [uri]}, server_spec(schemes=["com.tenant-a.app"])).rule == \
            "allowedRedirectSchemes"
    error = refused({"redirect_uris": ["com.evil.app:/cb"]}, server_spec(hosts=[], schemes=["com.tenant-a.app"]))
    assert "allowedRedirectSchemes ['com.tenant-a.app']" in str(error)


@pytest.mark.parametrize(("wire", "value", "field"), [
    ("post_logout_redirect_uris", ["https://evil.test/bye"], "spec.postLogoutRedirectUris[0]"),
    ("initiate_login_uri", "https://evil.test/login", "spec.initiateLoginUri"),
    ("frontchannel_logout_uri", "https://evil.test/fc", "spec.additionalMetadata.frontchannel_logout_uri"),
    ("backchannel_logout_uri", "https://evil.test/bc", "spec.additionalMetadata.backchannel_logout_uri"),
])
def test_every_uri_the_user_is_sent_to_is_covered(wire: str, value: Any, field: str) -> None:
    error = refused({"redirect_uris": ["https://app.tenant-a.example.com/cb"], wire: value})
    assert (error.field, error.rule) == (field, "allowedRedirectHosts")
    assert "'evil.test'" in str(error)


def test_a_non_string_uri_is_refused_not_crashed_on() -> None:
    error = refused({"frontchannel_logout_uri": {"url": "https://evil.test"}})
    assert error.field == "spec.additionalMetadata.frontchannel_logout_uri" and "a dict" in str(error)


def test_display_links_and_fetched_documents_are_outside_the_policy() -> None:
    # The AS shows or fetches these; it sends no user and no code there (see the module docstring).
    check_redirects(server_spec(), {"redirect_uris": ["https://app.tenant-a.example.com/cb"],
                                    "client_uri": "https://evil.test", "logo_uri": "https://evil.test/l.png",
                                    "jwks_uri": "https://keys.example.net/jwks"})


# --- the patterns -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value", "words"), [
    ("allowedRedirectHosts", "evil.test\\x", "backslash"),
    ("allowedRedirectHosts", "user@tenant-a.example.com", "userinfo"),
    ("allowedRedirectHosts", "tenant-a.example.com:443", "without a port"),
    ("allowedRedirectHosts", "[::1]:443", "without a port"),
    ("allowedRedirectHosts", "https://tenant-a.example.com", "no scheme"),
    ("allowedRedirectHosts", "tenant-a.example.com/cb", "no scheme, path"),
    ("allowedRedirectHosts", "%65vil.test", "percent-encoding"),
    ("allowedRedirectHosts", "a*.example.com", "whole leading label"),
    ("allowedRedirectHosts", "*.*.example.com", "whole leading label"),
    ("allowedRedirectHosts", "*", "whole leading label"),
    ("allowedRedirectHosts", "*.", "empty"),
    ("allowedRedirectHosts", "", "empty"),
    ("allowedRedirectHosts", "*.127.0.0.1", "not IP addresses"),
    ("allowedRedirectHosts", "*.::1", "not IP addresses"),
    ("allowedRedirectHosts", "tenant-\u0430.example.com", "xn--tenant--"),
    ("allowedRedirectHosts", "tenant-a.example.com.", "end with a dot"),
    ("allowedRedirectHosts", "tenant-a..example.com", "empty label"),
    ("allowedRedirectHosts", "127.1", "IPv4"),
    ("allowedRedirectHosts", "ex ample.com", "whitespace"),
    ("allowedRedirectHosts", "\u202etenant-a.example.com", "bidirectional"),
    ("allowedRedirectHosts", "xn--abc.example.com", "A-label"),
    ("allowedRedirectSchemes", "myapp", "reverse domain"),
    ("allowedRedirectSchemes", "com.example.app:", "reverse domain"),
    ("allowedRedirectSchemes", "com..app", "reverse domain"),
    ("allowedRedirectSchemes", ".com.app", "reverse domain"),
    ("allowedRedirectSchemes", "com.app.", "reverse domain"),
    ("allowedRedirectSchemes", "1com.app", "reverse domain"),
    ("allowedRedirectSchemes", "com.example/app", "reverse domain"),
])
def test_policy_entries_are_validated_strictly(field: str, value: str, words: str) -> None:
    doc = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "AuthorizationServer", "metadata": {"name": "as"},
           "spec": {"issuer": "https://as.example.com", field: [value]}}
    with pytest.raises(ConfigurationError) as caught:
        parse_document(doc, source="server.yaml")
    assert caught.value.field == f"spec.{field}.0"
    assert words in str(caught.value), str(caught.value)


@pytest.mark.parametrize(("pattern", "normalised"), [
    ("*.Tenant-A.example.com", "*.tenant-a.example.com"), ("[::1]", "::1"), ("0:0::1", "::1"),
    ("127.0.0.1", "127.0.0.1"), ("XN--BCHER-KVA.example", "xn--bcher-kva.example"), ("localhost", "localhost"),
])
def test_patterns_normalise_to_the_form_hosts_are_compared_in(pattern: str, normalised: str) -> None:
    assert check_pattern(pattern) == normalised
    AuthorizationServerSpec(issuer="https://as.example.com", allowed_redirect_hosts=[pattern])


def test_a_hand_built_spec_with_a_bad_pattern_is_refused_not_matched() -> None:
    spec = AuthorizationServerSpec.model_construct(issuer=ISSUER, allowed_redirect_hosts=["*.evil.test\\x"],
                                                   allowed_redirect_schemes=[])
    with pytest.raises(RedirectNotPermitted):
        check_redirects(spec, {"redirect_uris": ["https://a.evil.test/cb"]})
    with pytest.raises(ValidationError):
        AuthorizationServerSpec(issuer=ISSUER, allowed_redirect_hosts=["*.evil.test\\x"])


# --- every WebUrl refuses invisible and bidi characters too -------------------------------------------------

@pytest.mark.parametrize("kind_field", ["OAuthClient:clientUri", "OAuthClient:logoUri", "OAuthClient:jwksUri",
                                        "OAuthClient:initiateLoginUri", "AuthorizationServer:issuer",
                                        "AuthorizationServer:tokenEndpoint"])
@pytest.mark.parametrize(("char", "words"), [("\u202e", "bidirectional"), ("\u2066", "bidirectional"),
                                             ("\u200b", "invisible"), ("\\", "backslash"), ("\x1b", "control")])
def test_every_url_field_refuses_bidi_invisible_and_backslash_characters(kind_field: str, char: str,
                                                                         words: str) -> None:
    kind, field = kind_field.split(":")
    spec: dict[str, Any] = {"serverRef": {"name": "as"}, "grantTypes": ["client_credentials"]} \
        if kind == "OAuthClient" else {"issuer": "https://as.example.com"}
    spec[field] = f"https://docs.example.com/{char}x"
    doc = {"apiVersion": "clientreg.dev/v1alpha1", "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    with pytest.raises(ConfigurationError) as caught:
        parse_document(doc)
    assert caught.value.field == f"spec.{field}" and words in str(caught.value)


# --- hosts that every parser reads alike ---------------------------------------------------------------------

FRAGMENTS = ["evil.test", "tenant-a.example.com", "app", ".", "..", "-", "\\", "/", "@", ":", "443", "%5c", "%2e",
             "%", "[", "]", "::1", "::ffff:7f00:1", "127.1", "0x7f", "1", "\uff0e", "\u3002", "\u0430", "A", "xn--",
             "xn--bcher-kva", "#", "?", " ", "\t", "\u202e", "\u200b", "_", "*", "~", "!", "$", "'", ",", ";", "="]


def _same_address(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower() == b.lower()


def _parsers_agree(uri: str) -> bool:
    """For a URI the policy accepts, urllib, httpx (rfc3986 + IDNA) and the policy read one host and port, and
    a host allowed under the suffix is one httpx sends to under that suffix. Returns whether it was accepted."""
    try:
        target = parse_redirect_uri(uri)
    except ValueError:
        return False
    if target.host is None:
        return True
    assert _same_address(urlsplit(uri).hostname, target.host), uri
    assert urlsplit(uri).port == target.port, uri
    parsed = httpx.URL(uri)
    assert _same_address(parsed.raw_host.decode("ascii"), target.host), uri
    if target.kind == "https":
        assert (parsed.port or 443) == (target.port or 443), uri
    if host_allowed(target.host, [check_pattern(p) for p in TENANT]):
        assert parsed.raw_host.decode("ascii").lower().endswith(".tenant-a.example.com"), uri
    return True


hostile_hosts = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8).map("".join)
# Mostly valid host names, so that the property also runs on what the policy accepts.
labels = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
plausible_hosts = st.tuples(st.lists(labels, min_size=1, max_size=4).map(".".join),
                            st.sampled_from(["", ".tenant-a.example.com", ".example.com", "-tenant-a.example.com"]),
                            st.sampled_from(["", ":8443", ":443", ":1", ":65535"])).map("".join)


@given(st.one_of(hostile_hosts, plausible_hosts),
       st.sampled_from(["https://", "http://", "HTTPS://", "https:/", "com.example.app://"]),
       st.sampled_from(["/cb", "", "?x=1", "/a/b?c=%41"]))
def test_an_accepted_uri_has_one_host_for_every_parser(host: str, scheme: str, rest: str) -> None:
    _parsers_agree(scheme + host + rest)


@pytest.mark.parametrize("uri", [u for _i, _h, _s, u in ALLOWED] + [u for _i, u, _r, _w in DODGES])
def test_parsers_agree_on_every_tabled_uri(uri: str) -> None:
    accepted = _parsers_agree(uri)
    assert accepted == (uri in {u for _i, _h, _s, u in ALLOWED} or
                        any(u == uri and r != SYNTAX for _i, u, r, _w in DODGES))
