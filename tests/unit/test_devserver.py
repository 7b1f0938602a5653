"""The embedded dev authorization server, exercised over real HTTP with raw httpx."""

from __future__ import annotations

import http.server
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from joserfc.jwk import ECKey, RSAKey
from support.cache import free_port

from clientreg.devserver import DevServer, DevServerSettings

IAT = "iat-0123456789-abcdefghijklmnop"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SYMMETRIC_KEY = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"


class FakeClock:
    """A clock the test moves, so expiry needs no sleeping."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- the secrets-never-logged guard, applied to every test -------------------------------------

@pytest.fixture
def seen_secrets() -> list[str]:
    return []


@pytest.fixture(autouse=True)
def no_secret_in_output(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
                        seen_secrets: list[str]) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    seen_secrets.append(IAT)
    yield
    captured = capsys.readouterr()
    # caplog.text holds only the current phase (teardown, here): read the call's records instead.
    records = caplog.get_records("setup") + caplog.get_records("call")
    output = "\n".join(record.getMessage() for record in records) + captured.out + captured.err
    for secret in seen_secrets:
        assert secret not in output, "a secret value reached the logs or the console"


class Api:
    """Raw HTTP against one dev server; remembers every secret it is handed for the log check."""

    def __init__(self, server: DevServer, seen_secrets: list[str]) -> None:
        self.server = server
        self.http = httpx.Client(timeout=10)
        self._seen = seen_secrets

    def remember(self, body: dict[str, Any]) -> dict[str, Any]:
        for key in ("client_secret", "registration_access_token", "access_token"):
            if isinstance(body.get(key), str):
                self._seen.append(body[key])
        return body

    def register(self, metadata: dict[str, Any], *, iat: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {iat}"} if iat else {}
        response = self.http.post(self.server.registration_endpoint, json=metadata, headers=headers)
        if response.status_code == 201:
            self.remember(response.json())
        return response

    def registered(self, metadata: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        response = self.register(metadata or {"client_name": "svc", "grant_types": ["client_credentials"]},
                                 **kwargs)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def configuration(self, method: str, client: dict[str, Any], *, token: str | None = None,
                      body: dict[str, Any] | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or client['registration_access_token']}"}
        response = self.http.request(method, client["registration_client_uri"], headers=headers, json=body)
        if response.status_code == 200:
            self.remember(response.json())
        return response

    def token(self, data: dict[str, str], **kwargs: Any) -> httpx.Response:
        form = {"grant_type": "client_credentials", **data}
        response = self.http.post(self.server.token_endpoint, data=form, **kwargs)
        if response.status_code == 200:
            self.remember(response.json())
        return response

    def basic_token(self, client: dict[str, Any], **data: str) -> httpx.Response:
        return self.token(data, auth=(client["client_id"], client["client_secret"]))

    def dev(self, path: str) -> Any:
        response = self.http.get(f"{self.server.dev_url}/{path}")
        assert response.status_code == 200, response.text
        return response.json()


@contextmanager
def start_api(seen_secrets: list[str], **settings: Any) -> Iterator[Api]:
    with DevServer(DevServerSettings(**settings)) as server:
        api = Api(server, seen_secrets)
        try:
            yield api
        finally:
            api.http.close()


@pytest.fixture
def api(tmp_path: Path, seen_secrets: list[str]) -> Iterator[Api]:
    with start_api(seen_secrets, db_path=tmp_path / "dev.db") as api:
        yield api


# --- discovery ---------------------------------------------------------------------------------

def test_metadata_documents_are_served_at_both_well_known_paths(api: Api) -> None:
    issuer = api.server.issuer
    rfc8414 = api.http.get(f"{issuer}/.well-known/oauth-authorization-server").json()
    oidc = api.http.get(f"{issuer}/.well-known/openid-configuration").json()

    assert rfc8414 == oidc
    assert rfc8414["issuer"] == issuer
    assert rfc8414["registration_endpoint"] == f"{issuer}/register"
    assert rfc8414["token_endpoint"] == f"{issuer}/token"
    assert rfc8414["grant_types_supported"] == ["client_credentials"]
    assert set(rfc8414["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
    assert rfc8414["client_id_metadata_document_supported"] is True  # CIMD clients are accepted
    AuthorizationServerMetadata(rfc8414).validate()


def test_issuer_with_a_path_serves_inserted_and_appended_discovery(tmp_path: Path,
                                                                  seen_secrets: list[str]) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/realms/tenant-a"
    with start_api(seen_secrets, port=port, issuer=issuer) as api:
        for path in ("/.well-known/oauth-authorization-server/realms/tenant-a",
                     "/.well-known/openid-configuration/realms/tenant-a",
                     "/realms/tenant-a/.well-known/openid-configuration"):
            document = api.http.get(f"http://127.0.0.1:{port}{path}").json()
            assert document["issuer"] == issuer
            assert document["registration_endpoint"] == f"{issuer}/register"
        client = api.registered()
        assert client["registration_client_uri"] == f"{issuer}/register/{client['client_id']}"
        assert api.configuration("GET", client).status_code == 200
        assert api.dev("clients") == [client["client_id"]]


# --- registration ------------------------------------------------------------------------------

def test_open_registration_answers_201_with_the_rfc7592_credentials(api: Api) -> None:
    client = api.registered({
        "client_name": "Billing", "client_name#ja": "請求", "redirect_uris": ["https://app.test/cb"],
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "scope": "openid profile", "contacts": ["ops@app.test"], "application_type": "web",
        "post_logout_redirect_uris": ["https://app.test/bye"], "x_vendor_field": {"keep": True},
        "software_statement": "not.a.jwt",
    })

    assert client["client_id"] and client["client_secret"]
    assert client["client_secret_expires_at"] == 0
    assert client["registration_client_uri"] == f"{api.server.registration_endpoint}/{client['client_id']}"
    assert client["registration_access_token"]
    assert client["token_endpoint_auth_method"] == "client_secret_basic"  # a default the server adds
    assert client["client_name#ja"] == "請求"
    assert client["x_vendor_field"] == {"keep": True}  # unknown metadata is kept as given
    assert "software_statement" not in client


def test_registration_requires_the_initial_access_token_when_set(tmp_path: Path,
                                                                 seen_secrets: list[str]) -> None:
    with start_api(seen_secrets, initial_access_token=IAT) as api:
        for iat in (None, "wrong-token"):
            refused = api.register({"client_name": "x"}, iat=iat)
            assert refused.status_code == 401
            assert refused.json()["error"] == "invalid_token"
            assert refused.headers["WWW-Authenticate"].startswith("Bearer ")
        assert api.register({"client_name": "x"}, iat=IAT).status_code == 201
        assert len(api.dev("clients")) == 1


@pytest.mark.parametrize(("metadata", "error"), [
    ({"redirect_uris": ["https://app.test/cb#fragment"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["/relative"]}, "invalid_redirect_uri"),
    ({"redirect_uris": "https://app.test/cb"}, "invalid_redirect_uri"),
    ({"token_endpoint_auth_method": "tls_client_auth"}, "invalid_client_metadata"),
    ({"client_uri": "not a url"}, "invalid_client_metadata"),
    ({"grant_types": "client_credentials"}, "invalid_client_metadata"),
    ({"jwks": {"keys": [{"kty": "oct", "k": SYMMETRIC_KEY}]}}, "invalid_client_metadata"),
])
def test_invalid_metadata_is_refused_with_rfc7591_errors(api: Api, metadata: dict[str, Any],
                                                         error: str) -> None:
    response = api.register(metadata)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert api.dev("clients") == []


def test_a_body_that_is_not_a_json_object_is_refused(api: Api) -> None:
    as_list = api.http.post(api.server.registration_endpoint, json=[{"client_name": "x"}])
    as_form = api.http.post(api.server.registration_endpoint, data={"client_name": "x"})
    assert (as_list.status_code, as_form.status_code) == (400, 400)
    assert as_list.json()["error"] == as_form.json()["error"] == "invalid_client_metadata"


def test_native_redirect_uris_with_private_use_schemes_are_accepted(api: Api) -> None:
    client = api.registered({"redirect_uris": ["com.example.app:/oauth2redirect", "http://127.0.0.1:8400/cb"]})
    assert client["redirect_uris"] == ["com.example.app:/oauth2redirect", "http://127.0.0.1:8400/cb"]


def test_allowed_scopes_silently_drops_other_scopes(tmp_path: Path, seen_secrets: list[str]) -> None:
    with start_api(seen_secrets, allowed_scopes=["read", "write"]) as api:
        metadata = api.http.get(f"{api.server.issuer}/.well-known/oauth-authorization-server").json()
        assert metadata["scopes_supported"] == ["read", "write"]

        client = api.registered({"grant_types": ["client_credentials"], "scope": "read admin"})
        assert client["scope"] == "read"
        assert api.configuration("GET", client).json()["scope"] == "read"

        token = api.basic_token(client)
        assert token.json()["scope"] == "read"
        assert api.basic_token(client, scope="admin").json()["error"] == "invalid_scope"

        nothing_left = api.registered({"grant_types": ["client_credentials"], "scope": "admin"})
        assert "scope" not in nothing_left


# --- the token endpoint ------------------------------------------------------------------------

def test_client_secret_basic_gets_an_opaque_bearer_token(api: Api) -> None:
    client = api.registered({"grant_types": ["client_credentials"], "scope": "read write"})

    response = api.basic_token(client, scope="read")

    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["scope"] == "read"
    assert len(token["access_token"]) >= 32
    wrong = api.token({}, auth=(client["client_id"], "not-the-secret"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"


def test_client_secret_post_gets_a_token_and_basic_does_not(api: Api) -> None:
    client = api.registered({"grant_types": ["client_credentials"],
                             "token_endpoint_auth_method": "client_secret_post"})

    by_post = api.token({"client_id": client["client_id"], "client_secret": client["client_secret"]})
    by_basic = api.basic_token(client)

    assert by_post.status_code == 200, by_post.text
    assert by_basic.status_code == 401  # not the method it registered


def test_a_client_without_the_grant_type_is_refused(api: Api) -> None:
    client = api.registered({"redirect_uris": ["https://app.test/cb"]})  # defaults to authorization_code
    response = api.basic_token(client)
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


def test_public_clients_get_no_secret_and_no_client_credentials_token(api: Api) -> None:
    client = api.registered({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"})

    assert "client_secret" not in client
    assert "client_secret_expires_at" not in client
    response = api.token({"client_id": client["client_id"]})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_private_key_jwt_with_registered_jwks(api: Api) -> None:
    key = RSAKey.generate_key(2048)
    client = api.registered({
        "grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.as_dict(private=False)]},
    })
    assert "client_secret" not in client
    assertion = private_key_jwt_sign(key, client["client_id"], api.server.token_endpoint)
    form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}

    first = api.token(form)
    replayed = api.token(form)
    forged = api.token({**form, "client_assertion": private_key_jwt_sign(
        RSAKey.generate_key(2048), client["client_id"], api.server.token_endpoint)})

    assert first.status_code == 200, first.text
    assert first.json()["token_type"] == "Bearer"
    assert replayed.json()["error"] == "invalid_client"  # RFC 7523 jti replay
    assert forged.json()["error"] == "invalid_client"


@pytest.mark.parametrize("allow_loopback", [True, False], ids=["test-switch", "default"])
def test_private_key_jwt_with_a_jwks_uri(seen_secrets: list[str], allow_loopback: bool) -> None:
    """jwks_uri is fetched under the SSRF guard: a loopback URL only behind the explicit test switch."""
    key = ECKey.generate_key("P-256")
    jwks = json.dumps({"keys": [key.as_dict(private=False)]}).encode()

    class JwksHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(jwks)

        def log_message(self, *args: Any) -> None:
            return None

    keys_server = http.server.HTTPServer(("127.0.0.1", 0), JwksHandler)
    threading.Thread(target=keys_server.serve_forever, daemon=True).start()
    try:
        with start_api(seen_secrets, fetch_allow_loopback=allow_loopback) as api:
            client = api.registered({
                "grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                "jwks_uri": f"http://127.0.0.1:{keys_server.server_port}/jwks.json",
            })
            assertion = private_key_jwt_sign(key, client["client_id"], api.server.issuer, alg="ES256")
            response = api.token({"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})
    finally:
        keys_server.shutdown()
        keys_server.server_close()
    if allow_loopback:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"
        assert "must use https" in response.json()["error_description"]


def test_an_expired_secret_is_refused_at_the_token_endpoint(tmp_path: Path, seen_secrets: list[str]) -> None:
    clock = FakeClock()
    with start_api(seen_secrets, secret_lifetime=60, clock=clock) as api:
        client = api.registered()
        assert client["client_id_issued_at"] == int(clock.now)
        assert client["client_secret_expires_at"] == int(clock.now) + 60
        assert api.basic_token(client).status_code == 200

        clock.advance(60)
        expired = api.basic_token(client)

        assert expired.status_code == 401
        assert expired.json()["error"] == "invalid_client"
        # RFC 7592 still works: the way out is to register a new client.
        assert api.configuration("GET", client).status_code == 200


def test_introspection_reports_active_and_unknown_tokens(api: Api) -> None:
    client = api.registered({"grant_types": ["client_credentials"], "scope": "read"})
    access_token = api.basic_token(client).json()["access_token"]
    introspect = f"{api.server.issuer}/introspect"
    auth = (client["client_id"], client["client_secret"])

    active = api.http.post(introspect, data={"token": access_token}, auth=auth).json()
    unknown = api.http.post(introspect, data={"token": "nope"}, auth=auth).json()

    assert active["active"] is True
    assert active["client_id"] == client["client_id"]
    assert active["scope"] == "read"
    assert unknown == {"active": False}


# --- RFC 7592 ----------------------------------------------------------------------------------

def test_read_returns_the_registration(api: Api) -> None:
    client = api.registered({"client_name": "svc", "grant_types": ["client_credentials"]})

    response = api.configuration("GET", client)

    assert response.status_code == 200
    read = response.json()
    assert read["client_id"] == client["client_id"]
    assert read["client_secret"] == client["client_secret"]
    assert read["client_name"] == "svc"
    assert read["registration_access_token"] == client["registration_access_token"]  # GET never rotates
    assert response.headers["Cache-Control"] == "no-store"


def test_put_replaces_metadata_and_rotates_the_registration_access_token(api: Api) -> None:
    client = api.registered({"client_name": "svc", "contacts": ["a@app.test"],
                             "grant_types": ["client_credentials"]})

    body = {"client_id": client["client_id"], "client_name": "renamed", "grant_types": ["client_credentials"]}
    response = api.configuration("PUT", client, body=body)

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["client_name"] == "renamed"
    assert "contacts" not in updated  # omitted means deleted
    assert updated["client_secret"] == client["client_secret"]
    assert updated["registration_access_token"] != client["registration_access_token"]
    assert api.configuration("GET", client).status_code == 401  # the old token is gone at once
    assert api.configuration("GET", updated).status_code == 200


def test_put_keeps_the_registration_access_token_when_rotation_is_off(tmp_path: Path,
                                                                      seen_secrets: list[str]) -> None:
    with start_api(seen_secrets, rotate_registration_access_token=False) as api:
        client = api.registered()
        body = {"client_id": client["client_id"], "client_name": "b"}
        updated = api.configuration("PUT", client, body=body)
        assert updated.status_code == 200, updated.text
        assert updated.json()["registration_access_token"] == client["registration_access_token"]
        assert api.configuration("GET", client).status_code == 200


@pytest.mark.parametrize("body", [
    {"client_name": "no client_id"},
    {"client_id": "someone-else", "client_name": "x"},
    {"client_id": "<own>", "client_secret": "not-the-current-one"},
    {"client_id": "<own>", "registration_access_token": "x"},
    {"client_id": "<own>", "redirect_uris": ["https://app.test/cb#frag"]},
])
def test_put_refuses_what_rfc7592_forbids(api: Api, body: dict[str, Any]) -> None:
    client = api.registered()
    body = {key: client["client_id"] if value == "<own>" else value for key, value in body.items()}

    response = api.configuration("PUT", client, body=body)

    assert response.status_code == 400
    assert response.json()["error"] in {"invalid_request", "invalid_redirect_uri"}
    assert api.configuration("GET", client).status_code == 200  # nothing changed, not even the token


def test_put_may_echo_the_current_secret(api: Api) -> None:
    client = api.registered()
    body = {"client_id": client["client_id"], "client_secret": client["client_secret"], "client_name": "same"}
    assert api.configuration("PUT", client, body=body).status_code == 200


def test_put_issues_or_drops_the_secret_when_the_auth_method_changes(api: Api) -> None:
    public = api.registered({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"})
    body = {"client_id": public["client_id"], "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_post"}

    confidential = api.configuration("PUT", public, body=body).json()

    assert confidential["client_secret"]
    assert confidential["client_secret_expires_at"] == 0
    token = api.token({"client_id": public["client_id"], "client_secret": confidential["client_secret"]})
    assert token.status_code == 200, token.text
    body["token_endpoint_auth_method"] = "none"
    public_again = api.configuration("PUT", confidential, body=body).json()
    assert "client_secret" not in public_again


def test_delete_answers_204_and_the_client_is_gone(api: Api) -> None:
    client = api.registered()

    deleted = api.configuration("DELETE", client)

    assert deleted.status_code == 204
    gone = api.configuration("GET", client)
    assert gone.status_code == 401
    assert gone.json()["error"] == "invalid_token"
    assert api.basic_token(client).status_code == 401
    assert api.dev("clients") == []


def test_a_bad_or_foreign_registration_access_token_is_401_invalid_token(api: Api) -> None:
    mine, theirs = api.registered(), api.registered()

    for token in ("not-a-token", theirs["registration_access_token"]):
        response = api.configuration("GET", mine, token=token)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        assert "Bearer" in response.headers["WWW-Authenticate"]
    no_token = api.http.get(mine["registration_client_uri"])
    assert no_token.status_code == 401
    unknown_uri = f"{api.server.registration_endpoint}/no-such-client"
    unknown = api.configuration("GET", {**mine, "registration_client_uri": unknown_uri})
    assert unknown.status_code == 401


# --- persistence and the /_dev/ helpers --------------------------------------------------------

def test_a_restart_with_the_same_database_keeps_clients(tmp_path: Path, seen_secrets: list[str]) -> None:
    db_path = tmp_path / "dev.db"
    with start_api(seen_secrets, db_path=db_path) as api:
        client = api.registered()
    with start_api(seen_secrets, db_path=db_path) as api:
        client_uri = f"{api.server.registration_endpoint}/{client['client_id']}"
        read = api.configuration("GET", {**client, "registration_client_uri": client_uri})
        assert read.status_code == 200
        assert read.json()["registration_client_uri"] == client_uri
        assert api.basic_token(client).status_code == 200
        assert api.dev("clients") == [client["client_id"]]
    stored = db_path.read_bytes()
    assert client["client_secret"].encode() in stored  # kept as issued: RFC 7592 reads return it
    assert client["registration_access_token"].encode() not in stored  # only its digest


def test_dev_endpoints_count_requests_by_route_template(api: Api) -> None:
    client = api.registered()
    api.http.post(f"{api.server.dev_url}/reset-counters").raise_for_status()

    for _ in range(3):
        api.configuration("GET", client)
    api.basic_token(client)

    assert api.dev("requests") == {"GET /register/<client_id>": 3, "POST /token": 1}
    assert api.dev("clients") == [client["client_id"]]
    assert api.http.post(f"{api.server.dev_url}/reset-counters").status_code == 204
    assert api.dev("requests") == {}


def test_concurrent_registrations_are_all_kept(api: Api) -> None:
    def register_five() -> None:
        for _ in range(5):
            api.registered()

    workers = [threading.Thread(target=register_five) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert len(set(api.dev("clients"))) == 30
    assert api.dev("requests") == {"POST /register": 30}


def test_dev_endpoints_can_be_switched_off(seen_secrets: list[str]) -> None:
    with start_api(seen_secrets, dev_endpoints=False) as api:
        response = api.http.get(f"{api.server.dev_url}/clients")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_serve_prints_the_issuer_but_never_the_initial_access_token() -> None:
    script = ("from clientreg.devserver import serve, DevServerSettings\n"
              f"serve(DevServerSettings(initial_access_token={IAT!r}))\n")
    process = subprocess.Popen([sys.executable, "-c", script], text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=20)
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert "issuer http://127.0.0.1:" in output
    assert "initial access token" in output
    assert IAT not in output
    assert output.rstrip().endswith("stopped")
