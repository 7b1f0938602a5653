"""Raw-HTTP smoke test of a real Keycloak: what RFC 7591/7592/8414 promise, and where it deviates.

No clientreg code is involved: this pins the server behaviour clientreg is written against, so a
failing clientreg interop test can be told apart from a changed Keycloak. Where Keycloak departs
from the RFCs the observed behaviour is asserted and the comment says so.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from support.keycloak import KeycloakServer, running_keycloak
from support.peers import PeerServer

pytestmark = pytest.mark.interop

REALM = "smoke"
SCOPE = "api.read"
# RFC 7592 §2.2: what a client must not send back in a PUT.
PUT_FORBIDDEN = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)


@pytest.fixture(scope="module")
def keycloak() -> Iterator[KeycloakServer]:
    with running_keycloak() as server:
        yield server


@pytest.fixture(scope="module")
def realm(keycloak: KeycloakServer) -> PeerServer:
    peer = keycloak.create_realm(REALM)
    keycloak.create_client_scope(REALM, SCOPE)
    return peer


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0) as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _register(http: httpx.Client, peer: PeerServer, body: dict[str, Any], token: str | None) -> httpx.Response:
    headers = _bearer(token) if token else {}
    return http.post(peer.registration_endpoint, json=body, headers=headers)


def _client_body(name: str) -> dict[str, Any]:
    return {
        "client_name": name,
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": SCOPE,
        "client_uri": "https://clientreg.example/app",
    }


def _jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_discovery(http: httpx.Client, realm: PeerServer) -> None:
    parts = urlsplit(realm.issuer)
    origin, path = f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
    urls = {
        "oauth-authorization-server inserted (RFC 8414)": f"{origin}/.well-known/oauth-authorization-server{path}",
        "oauth-authorization-server appended": f"{origin}{path}/.well-known/oauth-authorization-server",
        "openid-configuration appended (OIDC)": f"{origin}{path}/.well-known/openid-configuration",
        "openid-configuration inserted": f"{origin}/.well-known/openid-configuration{path}",
        "oauth-protected-resource inserted (RFC 9728)": f"{origin}/.well-known/oauth-protected-resource{path}",
        "oauth-protected-resource appended": f"{origin}{path}/.well-known/oauth-protected-resource",
    }
    seen: dict[str, int] = {}
    for label, url in urls.items():
        resp = http.get(url)
        seen[label] = resp.status_code
        if resp.status_code == 200:
            doc = resp.json()
            # RFC 8414 §3.3 / OIDC Discovery §4.3: the issuer must be exactly the one asked about.
            assert doc["issuer"] == realm.issuer, label
            assert doc["registration_endpoint"] == realm.registration_endpoint, label
            assert doc["token_endpoint"] == realm.token_endpoint, label
    print("keycloak discovery:", seen)
    assert seen == {
        "oauth-authorization-server inserted (RFC 8414)": 200,
        # Not in any spec, but served: harmless for clients that only try the standard forms.
        "oauth-authorization-server appended": 200,
        "openid-configuration appended (OIDC)": 200,
        "openid-configuration inserted": 404,
        # Keycloak publishes no RFC 9728 protected-resource metadata for a realm.
        "oauth-protected-resource inserted (RFC 9728)": 404,
        "oauth-protected-resource appended": 404,
    }
    assert realm.registration_endpoint == f"{realm.issuer}/clients-registrations/openid-connect"


def test_anonymous_registration_refused(http: httpx.Client, realm: PeerServer) -> None:
    resp = _register(http, realm, _client_body("anonymous"), token=None)
    print("anonymous registration:", resp.status_code, resp.text)
    # The realm's default "Trusted Hosts" policy refuses requests without a token, even from
    # loopback: an initial access token is needed. 403 insufficient_scope, not 401.
    assert resp.status_code == 403
    assert resp.json()["error"] == "insufficient_scope"
    assert "Trusted Hosts" in resp.json()["error_description"]


def test_unknown_metadata_rejected(http: httpx.Client, realm: PeerServer) -> None:
    assert realm.initial_access_token
    body = {**_client_body("unknown-field"), "frobnication_level": 3}
    resp = _register(http, realm, body, realm.initial_access_token)
    print("unknown field:", resp.status_code, resp.text)
    # RFC 7591 §2 says unknown metadata MUST be ignored; Keycloak refuses the request instead.
    # The sentence sits in `error` itself (no error_description): parse error bodies leniently.
    assert resp.status_code == 400
    assert "Unrecognized field" in resp.json()["error"]
    assert "error_description" not in resp.json()
    # Language-tagged metadata (RFC 7591 §2.2) is refused the same way.
    tagged = _register(http, realm, {**_client_body("tagged"), "client_name#ja": "名前"}, realm.initial_access_token)
    assert tagged.status_code == 400
    assert "Unrecognized field" in tagged.json()["error"]


def test_client_chosen_client_id_rejected(http: httpx.Client, realm: PeerServer) -> None:
    assert realm.initial_access_token
    body = {**_client_body("chosen-id"), "client_id": "i-chose-this"}
    resp = _register(http, realm, body, realm.initial_access_token)
    print("client-chosen client_id:", resp.status_code, resp.text)
    assert resp.status_code == 400
    assert resp.json() == {"error": "invalid_client_metadata", "error_description": "Client Identifier included"}


def test_scope_policy_rejection(http: httpx.Client, keycloak: KeycloakServer) -> None:
    realm_name = "smoke-policy"
    peer = keycloak.create_realm(realm_name)
    # Neither is a realm default/optional scope, so only the policy's list can allow one.
    keycloak.create_client_scope(realm_name, "api.allowed", realm_optional=False)
    keycloak.create_client_scope(realm_name, "api.forbidden", realm_optional=False)
    keycloak.set_allowed_client_scopes(realm_name, ["api.allowed"])
    assert peer.initial_access_token
    ok = _register(http, peer, {**_client_body("allowed"), "scope": "api.allowed"}, peer.initial_access_token)
    assert ok.status_code == 201, ok.text
    refused = _register(http, peer, {**_client_body("refused"), "scope": "api.forbidden"},
                        peer.initial_access_token)
    print("policy rejection:", refused.status_code, refused.text)
    # Not RFC 7591's 400 invalid_client_metadata: a policy refusal is 403 insufficient_scope.
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    assert "Allowed Client Scopes" in refused.json()["error_description"]
    # A scope that exists nowhere in the realm is refused the same way.
    unknown = _register(http, peer, {**_client_body("unknown"), "scope": "no.such.scope"}, peer.initial_access_token)
    assert unknown.status_code == 403 and unknown.json()["error"] == "insufficient_scope"


def test_lifecycle(http: httpx.Client, realm: PeerServer) -> None:
    assert realm.initial_access_token
    record: dict[str, Any] = {}

    # -- register (RFC 7591 §3.1) ------------------------------------------------------------
    resp = _register(http, realm, _client_body("smoke"), realm.initial_access_token)
    assert resp.status_code == 201, resp.text
    reg = resp.json()
    record["registered"] = reg
    client_id, secret = reg["client_id"], reg["client_secret"]
    rat, reg_uri = reg["registration_access_token"], reg["registration_client_uri"]
    assert reg_uri == f"{realm.registration_endpoint}/{client_id}"
    assert resp.headers["Location"] == reg_uri
    assert reg["client_name"] == "smoke"
    assert reg["grant_types"] == ["client_credentials"]
    assert reg["token_endpoint_auth_method"] == "client_secret_basic"
    assert reg["scope"].split() == [SCOPE]
    # RFC 7591: 0 means the secret never expires. Keycloak only sets an expiry when its
    # client-secret-rotation feature (preview, off by default) and a client policy say so.
    assert reg["client_secret_expires_at"] == 0
    assert isinstance(reg["client_id_issued_at"], int)
    # Defaults the server adds on its own; drift detection must only compare declared fields.
    assert reg["response_types"] == [] and reg["redirect_uris"] == []
    assert reg["subject_type"] == "public"
    # The RAT is a JWT that never expires; made with an IAT it is an "authenticated" one.
    rat_claims = _jwt_claims(rat)
    assert rat_claims["typ"] == "RegistrationAccessToken" and rat_claims["exp"] == 0
    assert rat_claims["registration_auth"] == "authenticated"

    # -- read (RFC 7592 §2.1) -----------------------------------------------------------------
    resp = http.get(reg_uri, headers=_bearer(rat))
    assert resp.status_code == 200, resp.text
    read = resp.json()
    record["read"] = read
    assert read["client_id"] == client_id and read["client_secret"] == secret
    # Not in the GET answer, unlike the registration answer.
    assert "client_id_issued_at" not in read
    # GET answers with the very same RAT: no rotation on read, and the old one keeps working.
    assert read["registration_access_token"] == rat
    assert http.get(reg_uri, headers=_bearer(rat)).status_code == 200

    # -- update (RFC 7592 §2.2): the full metadata, client_id included, no client_secret ------
    body = {k: v for k, v in read.items() if k not in PUT_FORBIDDEN and k != "client_secret"}
    body["client_name"] = "smoke renamed"
    resp = http.put(reg_uri, json=body, headers=_bearer(rat))
    assert resp.status_code == 200, resp.text
    updated = resp.json()
    record["updated"] = updated
    assert updated["client_name"] == "smoke renamed"
    assert updated["client_secret"] == secret, "PUT without client_secret must not rotate it"
    assert updated["registration_client_uri"] == reg_uri
    # Every PUT rotates the RAT, and every earlier RAT stops working at once.
    new_rat = updated["registration_access_token"]
    assert new_rat != rat
    old = http.get(reg_uri, headers=_bearer(rat))
    assert old.status_code == 401 and old.json()["error"] == "invalid_token"
    rat = new_rat

    # -- update omitting a field ------------------------------------------------------------------
    body = {k: v for k, v in updated.items()
            if k not in PUT_FORBIDDEN and k not in ("client_secret", "client_uri")}
    resp = http.put(reg_uri, json=body, headers=_bearer(rat))
    assert resp.status_code == 200, resp.text
    # RFC 7592 §2.2: an omitted field is to be deleted. Keycloak merges instead: client_uri stays.
    assert resp.json()["client_uri"] == "https://clientreg.example/app"
    rat = resp.json()["registration_access_token"]

    # -- token with client_credentials + client_secret_basic ----------------------------------
    # A DCR client asking for client_credentials gets a service account: the grant works.
    resp = http.post(realm.token_endpoint, data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    record["token"] = resp.json()
    assert resp.status_code == 200, resp.text
    assert _jwt_claims(resp.json()["access_token"])["azp"] == client_id
    # Registered `scope` values become *optional* client scopes in Keycloak: they are only granted
    # when the token request asks for them.
    assert resp.json()["scope"] == ""
    resp = http.post(realm.token_endpoint, data={"grant_type": "client_credentials", "scope": SCOPE},
                     auth=(client_id, secret))
    assert resp.status_code == 200, resp.text
    assert resp.json()["scope"].split() == [SCOPE]

    # -- delete (RFC 7592 §2.3) and read after delete -----------------------------------------
    resp = http.delete(reg_uri, headers=_bearer(rat))
    assert resp.status_code == 204, resp.text
    after = http.get(reg_uri, headers=_bearer(rat))
    record["get_after_delete"] = (after.status_code, after.text)
    print("keycloak lifecycle:", json.dumps(record, indent=1, default=str))
    # RFC 7592 §2.1: a RAT for a client that no longer exists is an invalid token (401), and
    # Keycloak sends no WWW-Authenticate header with it.
    assert after.status_code == 401
    assert after.json()["error"] == "invalid_token"
    assert "www-authenticate" not in after.headers
    again = http.delete(reg_uri, headers=_bearer(rat))
    assert again.status_code == 401
    gone = http.post(realm.token_endpoint, data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert gone.status_code == 401 and gone.json()["error"] == "invalid_client"


def test_put_edge_cases(http: httpx.Client, realm: PeerServer) -> None:
    assert realm.initial_access_token
    reg = _register(http, realm, _client_body("edges"), realm.initial_access_token).json()
    uri, rat, secret = reg["registration_client_uri"], reg["registration_access_token"], reg["client_secret"]
    full = {k: v for k, v in reg.items() if k not in PUT_FORBIDDEN and k != "client_secret"}

    # A different client_secret in a PUT is silently ignored (200, secret unchanged).
    resp = http.put(uri, json={**full, "client_secret": "chosen-by-the-client-0123456789"}, headers=_bearer(rat))
    assert resp.status_code == 200, resp.text
    assert resp.json()["client_secret"] == secret
    rat = resp.json()["registration_access_token"]

    # RFC 7592 says MUST NOT send these; Keycloak accepts and ignores them.
    with_read_only = {**full, "registration_access_token": rat, "client_id_issued_at": 1}
    resp = http.put(uri, json=with_read_only, headers=_bearer(rat))
    assert resp.status_code == 200, resp.text
    rat = resp.json()["registration_access_token"]

    # Unknown metadata: 400 with a human sentence in `error` and no error_description.
    resp = http.put(uri, json={**full, "frobnication_level": 3}, headers=_bearer(rat))
    assert resp.status_code == 400
    assert "Unrecognized field" in resp.json()["error"]

    # Without client_id (RFC 7592 requires it) Keycloak fails with a 500, not a 400.
    resp = http.put(uri, json={k: v for k, v in full.items() if k != "client_id"}, headers=_bearer(rat))
    assert resp.status_code == 500
    assert resp.json()["error"] == "unknown_error"

    # Omitting grant_types does not keep them: Keycloak falls back to its default and adds
    # authorization_code (the service account stays), widening the client.
    resp = http.put(uri, json={"client_id": reg["client_id"], "client_name": "edges"}, headers=_bearer(rat))
    assert resp.status_code == 200, resp.text
    assert sorted(resp.json()["grant_types"]) == ["authorization_code", "client_credentials"]
    assert resp.json()["scope"] == SCOPE and resp.json()["client_uri"] == full["client_uri"]


def test_initial_access_token_limits(http: httpx.Client, keycloak: KeycloakServer, realm: PeerServer) -> None:
    once = keycloak.initial_access_token(REALM, count=1)
    assert _register(http, realm, _client_body("iat-1"), once).status_code == 201
    spent = _register(http, realm, _client_body("iat-2"), once)
    assert spent.status_code == 401
    assert spent.json() == {"error": "invalid_token",
                            "error_description": "No remaining count on initial access token"}
    bad = _register(http, realm, _client_body("iat-bad"), "not-a-token")
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"
