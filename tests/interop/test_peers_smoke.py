"""Raw-HTTP smoke tests of the real peers: what the RFCs promise, and where each server deviates.

These pin the server behaviour clientreg is written against, with no clientreg code involved, so
that a failing clientreg interop test can be told apart from a changed server.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from support.cache import free_port
from support.hydra import running_hydra
from support.oidc_provider import running_oidc_provider
from support.peers import PeerServer

pytestmark = pytest.mark.interop

# RFC 7592 §2.2: what a client must not send back in a PUT.
PUT_FORBIDDEN = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)


@dataclass
class Lifecycle:
    """What one register → read → update → token → delete round trip observed."""

    discovery: dict[str, int] = field(default_factory=dict)
    registered: dict[str, Any] = field(default_factory=dict)
    read: dict[str, Any] = field(default_factory=dict)
    read_status: int = 0
    updated: dict[str, Any] = field(default_factory=dict)
    update_status: int = 0
    rat_rotated_on_put: bool = False
    rat_rotated_on_get: bool = False
    token: dict[str, Any] = field(default_factory=dict)
    token_status: int = 0
    delete_status: int = 0
    get_after_delete: httpx.Response | None = None
    old_rat_after_put: int = 0


def _discovery_urls(issuer: str) -> dict[str, str]:
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    return {
        "oauth-authorization-server inserted (RFC 8414)": (f"{origin}/.well-known/oauth-authorization-server{path}"),
        "oauth-authorization-server appended": f"{origin}{path}/.well-known/oauth-authorization-server",
        "openid-configuration appended (OIDC Discovery)": f"{origin}{path}/.well-known/openid-configuration",
        "openid-configuration inserted": f"{origin}/.well-known/openid-configuration{path}",
    }


def _discover(http: httpx.Client, issuer: str) -> dict[str, int]:
    seen: dict[str, int] = {}
    for label, url in _discovery_urls(issuer).items():
        resp = http.get(url)
        seen[label] = resp.status_code
        if resp.status_code == 200:
            # RFC 8414 §3.3: metadata whose issuer differs from the one asked for must not be used.
            assert resp.json()["issuer"] == issuer, (label, resp.json()["issuer"])
    return seen


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _registration_body(name: str) -> dict[str, Any]:
    return {
        "client_name": name,
        "grant_types": ["client_credentials"],
        # oidc-provider defaults response_types to ["code"], which then demands redirect_uris;
        # a pure machine client has to say "none" explicitly.
        "response_types": [],
        "redirect_uris": [],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": "api:read",
    }


def _register(http: httpx.Client, peer: PeerServer, body: dict[str, Any]) -> httpx.Response:
    headers = _bearer(peer.initial_access_token) if peer.initial_access_token else {}
    return http.post(peer.registration_endpoint, json=body, headers=headers)


def _update_body(client: dict[str, Any], declared: dict[str, Any], **changes: Any) -> dict[str, Any]:
    # RFC 7592 §2.2: the full metadata with client_id, none of the server-managed fields and no
    # secret (oidc-provider accepts only the current one, Hydra refuses any). Built from what was
    # declared, not echoed from the response: Hydra refuses its own `metadata: {}` back.
    return {**declared, "client_id": client["client_id"], **changes}


def _echo_body(client: dict[str, Any]) -> dict[str, Any]:
    """The server's last answer minus what RFC 7592 forbids: the naive way to build a PUT."""
    return {k: v for k, v in client.items() if k not in (*PUT_FORBIDDEN, "client_secret")}


def _put(http: httpx.Client, client: dict[str, Any], body: dict[str, Any], rat: str | None = None) -> httpx.Response:
    token = rat or client["registration_access_token"]
    return http.put(client["registration_client_uri"], json=body, headers=_bearer(token))


def _client_credentials(http: httpx.Client, peer: PeerServer, client: dict[str, Any], scope: str) -> httpx.Response:
    return http.post(
        peer.token_endpoint,
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client["client_id"], client["client_secret"]),
    )


def _lifecycle(peer: PeerServer) -> Lifecycle:
    seen = Lifecycle()
    with httpx.Client(timeout=10.0) as http:
        seen.discovery = _discover(http, peer.issuer)

        declared = _registration_body("smoke")
        resp = _register(http, peer, declared)
        # RFC 7591 §3.2.1: 201 Created.
        assert resp.status_code == 201, resp.text
        client = resp.json()
        seen.registered = client
        assert client["client_id"]
        assert client["client_secret"]
        assert client["registration_access_token"]
        assert client["registration_client_uri"]
        rat: str = client["registration_access_token"]
        uri: str = client["registration_client_uri"]

        read = http.get(uri, headers=_bearer(rat))
        seen.read_status = read.status_code
        seen.read = read.json()
        new_rat = seen.read.get("registration_access_token")
        seen.rat_rotated_on_get = bool(new_rat) and new_rat != rat
        rat = new_rat or rat

        token = _client_credentials(http, peer, client, "api:read")
        seen.token_status = token.status_code
        seen.token = token.json()

        put = http.put(uri, json=_update_body(client, declared, client_name="smoke renamed"), headers=_bearer(rat))
        seen.update_status = put.status_code
        seen.updated = put.json()
        put_rat = seen.updated.get("registration_access_token")
        seen.rat_rotated_on_put = bool(put_rat) and put_rat != rat
        seen.old_rat_after_put = http.get(uri, headers=_bearer(rat)).status_code
        rat = put_rat or rat

        delete = http.delete(uri, headers=_bearer(rat))
        seen.delete_status = delete.status_code
        seen.get_after_delete = http.get(uri, headers=_bearer(rat))
    return seen


# --- node oidc-provider ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[PeerServer]:
    with running_oidc_provider() as peer:
        yield peer


def test_oidc_provider_lifecycle(oidc_provider: PeerServer) -> None:
    seen = _lifecycle(oidc_provider)

    # Issuer without a path: every well-known form answers (appended == inserted).
    assert set(seen.discovery.values()) == {200}, seen.discovery
    assert oidc_provider.extra["metadata"]["registration_endpoint"] == oidc_provider.registration_endpoint

    registered = seen.registered
    assert registered["client_secret_expires_at"] == 0
    assert registered["scope"] == "api:read"
    # Defaults the server adds on its own: drift detection must ignore what was not declared.
    assert registered["application_type"] == "web"
    assert registered["id_token_signed_response_alg"] == "RS256"

    # GET returns everything: secret, RAT (unchanged) and registration_client_uri.
    assert seen.read_status == 200
    assert seen.read["client_secret"] == registered["client_secret"]
    assert seen.read["registration_client_uri"] == registered["registration_client_uri"]
    assert not seen.rat_rotated_on_get

    assert seen.token_status == 200, seen.token
    assert seen.token["token_type"] == "Bearer"
    assert seen.token["scope"] == "api:read"

    # PUT: 200, same secret, RAT rotated (rotateRegistrationAccessToken defaults to true) and the
    # old RAT is dead at once.
    assert seen.update_status == 200, seen.updated
    assert seen.updated["client_name"] == "smoke renamed"
    assert seen.updated["client_secret"] == registered["client_secret"]
    assert seen.rat_rotated_on_put
    assert seen.old_rat_after_put == 401

    # RFC 7592 §2.3: 204; afterwards the RAT is gone with the client: 401 invalid_token.
    assert seen.delete_status == 204
    after = seen.get_after_delete
    assert after is not None
    assert after.status_code == 401
    assert after.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in after.headers["www-authenticate"]


def test_oidc_provider_put_semantics(oidc_provider: PeerServer) -> None:
    with httpx.Client(timeout=10.0) as http:
        client = _register(http, oidc_provider, _registration_body("put-semantics")).json()
        uri, rat = client["registration_client_uri"], client["registration_access_token"]
        minimal = {
            "client_id": client["client_id"],
            "grant_types": ["client_credentials"],
            "response_types": [],
        }

        # Each forbidden field is refused with 400 invalid_request naming the field.
        for name in PUT_FORBIDDEN:
            resp = http.put(uri, json={**minimal, name: client.get(name, "x")}, headers=_bearer(rat))
            assert resp.status_code == 400, (name, resp.text)
            assert resp.json()["error"] == "invalid_request"
            assert name in resp.json()["error_description"]
        # client_secret is allowed only when equal to the current one.
        resp = http.put(uri, json={**minimal, "client_secret": "not-it"}, headers=_bearer(rat))
        assert resp.status_code == 400
        assert resp.json()["error"] == "invalid_request"
        resp = http.put(uri, json={k: v for k, v in minimal.items() if k != "client_id"}, headers=_bearer(rat))
        assert resp.status_code == 400
        assert "client_id" in resp.json()["error_description"]

        # Full replacement: a PUT without client_name and scope deletes them; without a scope
        # the client may then ask for any scope the server supports.
        resp = http.put(uri, json=minimal, headers=_bearer(rat))
        assert resp.status_code == 200, resp.text
        updated = resp.json()
        assert "client_name" not in updated
        assert "scope" not in updated
        token = _client_credentials(http, oidc_provider, client, "api:write")
        assert token.status_code == 200, token.text

        # Unknown metadata is dropped silently; a client-chosen client_id on POST is replaced.
        resp = _register(http, oidc_provider, {**_registration_body("extras"), "client_id": "mine", "x_unknown": "v"})
        assert resp.status_code == 201, resp.text
        assert resp.json()["client_id"] != "mine"
        assert "x_unknown" not in resp.json()

        # A scope the server does not support: 400 invalid_client_metadata.
        resp = _register(http, oidc_provider, {**_registration_body("bad-scope"), "scope": "api:admin"})
        assert resp.status_code == 400
        assert resp.json()["error"] == "invalid_client_metadata"

        # While the client still has scope api:read, another scope is refused at the token endpoint.
        scoped = _register(http, oidc_provider, _registration_body("scoped")).json()
        token = _client_credentials(http, oidc_provider, scoped, "api:write")
        assert token.status_code == 400
        assert token.json()["error"] == "invalid_scope"


def test_oidc_provider_requires_initial_access_token(oidc_provider: PeerServer) -> None:
    with httpx.Client(timeout=10.0) as http:
        for headers in ({}, _bearer("wrong-token")):
            resp = http.post(oidc_provider.registration_endpoint, json=_registration_body("anon"), headers=headers)
            # RFC 6750 style: 401 with error="invalid_token" in the body and WWW-Authenticate.
            assert resp.status_code == 401, resp.text
            assert resp.json()["error"] == "invalid_token"
            assert resp.headers["www-authenticate"].startswith("Bearer ")


def test_oidc_provider_open_registration_and_fixed_rat() -> None:
    with (
        running_oidc_provider(initial_access_token=None, rotate_registration_access_token=False) as peer,
        httpx.Client(timeout=10.0) as http,
    ):
        assert peer.initial_access_token is None
        resp = http.post(peer.registration_endpoint, json=_registration_body("open"))
        assert resp.status_code == 201, resp.text
        client = resp.json()
        put = _put(http, client, _echo_body(client) | {"client_name": "open renamed"})
        assert put.status_code == 200, put.text
        assert put.json()["registration_access_token"] == client["registration_access_token"]


def test_oidc_provider_policy_drops_scopes_silently() -> None:
    with (
        running_oidc_provider(initial_access_token="fixed-iat", allowed_scopes=["api:read"]) as peer,
        httpx.Client(timeout=10.0) as http,
    ):
        assert peer.initial_access_token == "fixed-iat"
        body = {**_registration_body("policy"), "scope": "api:read api:write"}
        resp = _register(http, peer, body)
        # Success, with a value different from the request: the response is the truth.
        assert resp.status_code == 201, resp.text
        client = resp.json()
        assert client["scope"] == "api:read"
        # The RAT inherits the IAT's policies: asking again on PUT is dropped again, no error,
        # so re-sending the declared value would loop forever.
        put = _put(http, client, _update_body(client, body, scope="api:read api:write"))
        assert put.status_code == 200, put.text
        assert put.json()["scope"] == "api:read"


def test_oidc_provider_secret_expiry_enforced_with_clock_tolerance() -> None:
    with (
        running_oidc_provider(secret_expires_in=2) as peer,
        httpx.Client(timeout=10.0) as http,
    ):
        resp = _register(http, peer, _registration_body("expiring"))
        assert resp.status_code == 201, resp.text
        client = resp.json()
        expires_at = client["client_secret_expires_at"]
        assert expires_at >= client["client_id_issued_at"] + 2
        assert _client_credentials(http, peer, client, "api:read").status_code == 200

        # oidc-provider's clockTolerance (15 s) also forgives an expired secret; rejected only
        # once now - 15 >= client_secret_expires_at.
        time.sleep(max(0.0, expires_at + 3 - time.time()))
        assert _client_credentials(http, peer, client, "api:read").status_code == 200
        time.sleep(max(0.0, expires_at + 16 - time.time()))
        token = _client_credentials(http, peer, client, "api:read")
        # Deviation: 400 (not the 401 RFC 6749 §5.2 asks for with Basic auth), and unlike a wrong
        # secret (401 "client authentication failed") the description says why.
        assert token.status_code == 400, token.text
        assert token.json()["error"] == "invalid_client"
        assert "expired" in token.json()["error_description"]

        # A PUT keeps the stored expiry (the policy only sets it at registration): the secret
        # stays expired, so rotation means registering a new client.
        put = _put(http, client, _echo_body(client))
        assert put.status_code == 200, put.text
        assert put.json()["client_secret_expires_at"] == expires_at
        assert put.json()["client_secret"] == client["client_secret"]


def test_oidc_provider_path_issuer_discovery() -> None:
    with running_oidc_provider(issuer_path="/op") as peer, httpx.Client(timeout=10.0) as http:
        assert peer.issuer.endswith("/op")
        seen = _discover(http, peer.issuer)
        # Appended forms only: the RFC 8414 inserted URL is not served by oidc-provider.
        assert seen == {
            "oauth-authorization-server inserted (RFC 8414)": 404,
            "oauth-authorization-server appended": 200,
            "openid-configuration appended (OIDC Discovery)": 200,
            "openid-configuration inserted": 404,
        }
        assert peer.registration_endpoint == f"{peer.issuer}/reg"
        resp = _register(http, peer, _registration_body("path"))
        assert resp.status_code == 201, resp.text
        assert resp.json()["registration_client_uri"].startswith(f"{peer.issuer}/reg/")


# --- CIMD -----------------------------------------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def cimd_document() -> Iterator[tuple[str, list[str]]]:
    """An https document server on loopback; yields the client_id URL and the paths fetched."""
    port = free_port()
    client_id = f"https://127.0.0.1:{port}/client.json"
    document = {
        "client_id": client_id,
        "client_name": "cimd smoke",
        "redirect_uris": ["http://127.0.0.1:9/cb"],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    fetched: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with tempfile.TemporaryDirectory() as tmp:
        cert, key = _self_signed(Path(tmp))
        server = HTTPServer(("127.0.0.1", port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield client_id, fetched
        finally:
            server.shutdown()
            server.server_close()


def _authorize(http: httpx.Client, peer: PeerServer, client_id: str) -> httpx.Response:
    return http.get(
        peer.extra["metadata"]["authorization_endpoint"],
        params={
            "client_id": client_id,
            "redirect_uri": "http://127.0.0.1:9/cb",
            "response_type": "code",
            "scope": "openid",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        },
    )


@pytest.mark.parametrize("allow_loopback", [True, False])
def test_oidc_provider_cimd(cimd_document: tuple[str, list[str]], allow_loopback: bool) -> None:
    client_id, fetched = cimd_document
    with (
        running_oidc_provider(cimd=True, cimd_fetch_allow_loopback=allow_loopback) as peer,
        httpx.Client(timeout=10.0) as http,
    ):
        assert peer.extra["cimd"] is True
        assert peer.extra["metadata"]["client_id_metadata_document_supported"] is True
        resp = _authorize(http, peer, client_id)
        if allow_loopback:
            # The client resolved from the document: on to the (dev) login interaction.
            assert resp.status_code == 303, resp.text[:500]
            assert "/interaction/" in resp.headers["location"]
            assert fetched == ["/client.json"]
        else:
            # By design oidc-provider refuses to fetch from special-use addresses (SSRF guard):
            # the socket is destroyed, the client is unknown, an HTML error page with 400.
            assert resp.status_code == 400
            assert fetched == []


def test_oidc_provider_without_cimd_flag(oidc_provider: PeerServer) -> None:
    assert oidc_provider.extra["cimd"] is False
    assert "client_id_metadata_document_supported" not in oidc_provider.extra["metadata"]


# --- Ory Hydra ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hydra() -> Iterator[PeerServer]:
    with running_hydra() as peer:
        yield peer


def test_hydra_lifecycle(hydra: PeerServer) -> None:
    assert hydra.initial_access_token is None
    # Deviation: dynamic client registration is enabled, yet discovery does not advertise it.
    assert "registration_endpoint" not in hydra.extra["metadata"]
    seen = _lifecycle(hydra)

    # Only OIDC discovery; no RFC 8414 document at all.
    assert seen.discovery == {
        "oauth-authorization-server inserted (RFC 8414)": 404,
        "oauth-authorization-server appended": 404,
        "openid-configuration appended (OIDC Discovery)": 200,
        "openid-configuration inserted": 200,  # the same URL: the issuer has no path
    }

    registered = seen.registered
    assert registered["client_secret_expires_at"] == 0
    assert registered["scope"] == "api:read"
    assert registered["registration_client_uri"] == f"{hydra.registration_endpoint}/{registered['client_id']}"
    # Hydra-specific fields with placeholder values come back on POST (contacts null, metadata {}).
    assert registered["contacts"] is None
    assert registered["metadata"] == {}
    assert registered["skip_consent"] is False

    # GET omits the secret, the RAT and registration_client_uri (and `metadata`); contacts turns
    # into []. The RAT is not rotated by GET.
    assert seen.read_status == 200
    for omitted in ("client_secret", "registration_access_token", "registration_client_uri", "metadata"):
        assert omitted not in seen.read, omitted
    assert seen.read["contacts"] == []
    assert not seen.rat_rotated_on_get

    # token_type in lower case; expires_in one second under the hour.
    assert seen.token_status == 200, seen.token
    assert seen.token["token_type"].lower() == "bearer"
    assert seen.token["scope"] == "api:read"

    # PUT: 200, a new RAT every time (the old one is dead at once); the answer omits
    # registration_client_uri and the secret, which stays the same.
    assert seen.update_status == 200, seen.updated
    assert seen.updated["client_name"] == "smoke renamed"
    assert seen.rat_rotated_on_put
    assert seen.old_rat_after_put == 401
    assert "registration_client_uri" not in seen.updated
    assert "client_secret" not in seen.updated

    assert seen.delete_status == 204
    after = seen.get_after_delete
    assert after is not None
    # 401 as RFC 7592 says, but no WWW-Authenticate and a human sentence in `error`.
    assert after.status_code == 401
    assert "www-authenticate" not in after.headers
    assert after.json()["error"] == "The request could not be authorized"


def test_hydra_put_semantics(hydra: PeerServer) -> None:
    with httpx.Client(timeout=10.0) as http:
        declared = _registration_body("hydra-put")
        client = _register(http, hydra, declared).json()
        rat = client["registration_access_token"]

        def put(body: dict[str, Any]) -> httpx.Response:
            nonlocal rat
            resp = _put(http, client, body, rat)
            # Every successful PUT rotates the RAT; losing one answer loses the client.
            if resp.status_code == 200:
                rat = resp.json()["registration_access_token"]
            return resp

        # Echoing the registration response back is refused: its own `metadata: {}` is not
        # allowed in a DCR request (400 invalid_client_metadata).
        resp = put(_echo_body(client))
        assert resp.status_code == 400
        assert resp.json()["error"] == "invalid_client_metadata"
        assert "'metadata' cannot be set" in resp.json()["error_description"]

        # A secret, even the current one: 403 with a sentence as `error`.
        resp = put(_update_body(client, declared, client_secret=client["client_secret"]))
        assert resp.status_code == 403
        assert resp.json()["error"] == "The requested action was forbidden"

        # Deviation: the fields RFC 7592 forbids are ignored, and client_id may be left out.
        for name in PUT_FORBIDDEN:
            resp = put(_update_body(client, declared, **{name: client.get(name, 0)}))
            assert resp.status_code == 200, (name, resp.text)
        resp = put(declared)
        assert resp.status_code == 200, resp.text

        # Full replacement, Hydra style: omitted strings come back "", lists null, and an omitted
        # scope becomes the configured default scope (not "no scope").
        resp = put({"client_id": client["client_id"], "grant_types": ["client_credentials"]})
        assert resp.status_code == 200, resp.text
        minimal = resp.json()
        assert minimal["client_name"] == ""
        assert minimal["redirect_uris"] is None
        assert minimal["scope"].split() == hydra.extra["default_scope"]
        assert minimal["token_endpoint_auth_method"] == "client_secret_basic"
        # The secret survives every PUT.
        assert _client_credentials(http, hydra, client, "api:write").status_code == 200

        # A bad RAT: 401, no WWW-Authenticate.
        resp = _put(http, client, _update_body(client, declared), "not-a-token")
        assert resp.status_code == 401
        assert "www-authenticate" not in resp.headers

        assert http.delete(client["registration_client_uri"], headers=_bearer(rat)).status_code == 204
        # Deleting again: 401 (the RAT went with the client), not 404.
        assert http.delete(client["registration_client_uri"], headers=_bearer(rat)).status_code == 401


def test_hydra_registration_rules(hydra: PeerServer) -> None:
    with httpx.Client(timeout=10.0) as http:
        base = _registration_body("hydra-rules")

        # Unknown metadata dropped and a client-chosen client_id replaced, silently.
        resp = _register(http, hydra, {**base, "client_id": "mine", "x_unknown": "v"})
        assert resp.status_code == 201, resp.text
        assert resp.json()["client_id"] != "mine"
        assert "x_unknown" not in resp.json()

        # No scope validation at registration: any string is stored...
        resp = _register(http, hydra, {**base, "scope": "api:admin"})
        assert resp.status_code == 201, resp.text
        assert resp.json()["scope"] == "api:admin"
        # ...and the token endpoint enforces the client's own scope list.
        token = _client_credentials(http, hydra, resp.json(), "api:read")
        assert token.status_code == 400
        assert token.json()["error"] == "invalid_scope"

        # Without scope: the configured default scope.
        resp = _register(http, hydra, {k: v for k, v in base.items() if k != "scope"})
        assert resp.status_code == 201
        assert resp.json()["scope"].split() == hydra.extra["default_scope"]

        # Refused fields and their answers; `error` is sometimes a sentence, not an RFC code.
        refused: dict[str, tuple[dict[str, Any], str]] = {
            "metadata": ({"metadata": {"a": 1}}, "invalid_client_metadata"),
            "skip_consent": ({"skip_consent": True}, "invalid_request"),
            "access_token_strategy": (
                {"access_token_strategy": "jwt"},
                "The request was malformed or contained invalid parameters",
            ),
            "client_secret": (
                {"client_secret": "a-secret-of-my-own-choosing"},
                "The request was malformed or contained invalid parameters",
            ),
            "redirect_uris": ({"redirect_uris": ["not a uri"]}, "invalid_redirect_uri"),
        }
        for name, (extra, error) in refused.items():
            resp = _register(http, hydra, {**base, **extra})
            assert resp.status_code == 400, (name, resp.text)
            assert resp.json()["error"] == error, (name, resp.text)
