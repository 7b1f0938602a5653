"""private_key_jwt with keys clientreg holds, and Client ID Metadata Documents, end to end.

Every token here is a real client_credentials token from a real AS, obtained with an RFC 7523 assertion
signed by the key in clientreg's state: the dev AS (Authlib) for DCR and CIMD, node oidc-provider for CIMD.
Documents are written by ``clientreg apply --publish-dir`` and served from that folder by a loopback
HTTP(S) server, so what the AS fetches is exactly what the CLI wrote.
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clientreg.cli import main
from clientreg.devserver import DevServer, DevServerSettings
from clientreg.engine import Desired, Reason, fetch_published, reconcile
from clientreg.http import HttpClient, HttpSettings
from clientreg.keys import ASSERTION_TYPE, client_assertion, generate
from clientreg.record import ClientKey, RegistrationRecord
from clientreg.server import ServerConnection
from clientreg.spec import AuthorizationServerSpec, OAuthClient, parse_document
from clientreg.tokens import client_credentials_token

pytestmark = pytest.mark.interop
IAT = "iat-for-key-tests"


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def record_of(state: Path, name: str) -> RegistrationRecord:
    data = json.loads((state / "records" / "team" / f"{name}.json").read_text())
    return RegistrationRecord.from_storage(data["record"])


def server_doc(issuer: str) -> str:
    return f"""
apiVersion: clientreg.dev/v1alpha1
kind: AuthorizationServer
metadata: {{name: dev, namespace: team}}
spec:
  issuer: {issuer}
  initialAccessToken: {{secretKeyRef: {{name: iat, key: token}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: iat, namespace: team}}
stringData: {{token: {IAT}}}
"""


def token_with(key: ClientKey, client_id: str, token_endpoint: str) -> httpx.Response:
    """A token request signed by ``key``, whatever clientreg currently considers current."""
    assertion = client_assertion(key, client_id, token_endpoint, now=dt.datetime.now(dt.UTC))
    return httpx.post(token_endpoint, data={"grant_type": "client_credentials", "client_id": client_id,
                                            "client_assertion_type": ASSERTION_TYPE,
                                            "client_assertion": assertion})


# --- (a) DCR + private_key_jwt with a generated key, and key rotation with an overlap -----------------

def test_dcr_private_key_jwt_token_and_key_rotation_with_grace(tmp_path: Path) -> None:
    with DevServer(DevServerSettings(initial_access_token=IAT)) as server:
        folder, state = tmp_path / "f", tmp_path / "state"
        folder.mkdir()
        (folder / "server.yaml").write_text(server_doc(server.issuer))
        (folder / "client.yaml").write_text("""
apiVersion: clientreg.dev/v1alpha1
kind: OAuthClient
metadata: {name: signer, namespace: team}
spec:
  serverRef: {name: dev}
  grantTypes: [client_credentials]
  tokenEndpointAuthMethod: private_key_jwt
  keyPair: {algorithm: ES256}
  rotation: {gracePeriod: 2s}
""")
        applied = run("apply", "-f", folder, "--state-dir", state)
        assert applied.exit_code == 0, applied.output
        first = record_of(state, "signer")
        key1 = first.current_key()
        assert key1 is not None and first.client_secret is None
        assert first.server_metadata["jwks"] == {"keys": [key1.public_jwk]}
        assert "d" not in key1.public_jwk  # only the public half ever reaches the AS

        creds = json.loads(run("credentials", "signer", "--state-dir", state).output)
        assert creds["client_secret"] is None and creds["key_id"] == key1.kid
        assert creds["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
        token = run("token", "signer", "--state-dir", state)
        assert token.exit_code == 0 and "token obtained" in token.output, token.output
        # The private key is printed only by `credentials`, never by apply or token.
        assert key1.private_key.get_secret_value() not in applied.output + token.output

        # Rotation: the same client, a new key; both keys in the AS's jwks during the grace period.
        rotated = run("rotate", "signer", "--state-dir", state, "-f", folder)
        assert rotated.exit_code == 0, rotated.output
        second = record_of(state, "signer")
        key2 = second.current_key()
        assert key2 is not None and key2.kid != key1.kid and second.client_id == first.client_id
        at_as = httpx.get(second.registration_client_uri or "", headers={
            "Authorization": f"Bearer {second.registration_access_token.get_secret_value()}"}).json()
        assert {k["kid"] for k in at_as["jwks"]["keys"]} == {key1.kid, key2.kid}
        assert run("token", "signer", "--state-dir", state).exit_code == 0  # the new key
        old_during_grace = token_with(key1, first.client_id, server.token_endpoint)
        assert old_during_grace.status_code == 200, old_during_grace.text

        # After the grace period the old key leaves the JWKS at the AS, and its assertions are refused.
        retired_at = next(k.remove_after for k in second.keys if k.kid == key1.kid)
        assert retired_at is not None
        time.sleep(max(0.0, (retired_at - dt.datetime.now(dt.UTC)).total_seconds()) + 0.5)
        after = run("apply", "-f", folder, "--state-dir", state)
        assert after.exit_code == 0, after.output
        third = record_of(state, "signer")
        assert [k.kid for k in third.keys] == [key2.kid]
        at_as = httpx.get(third.registration_client_uri or "", headers={
            "Authorization": f"Bearer {third.registration_access_token.get_secret_value()}"}).json()
        assert [k["kid"] for k in at_as["jwks"]["keys"]] == [key2.kid]
        refused = token_with(key1, first.client_id, server.token_endpoint)
        assert refused.status_code in (400, 401) and refused.json()["error"] == "invalid_client"
        assert token_with(key2, first.client_id, server.token_endpoint).status_code == 200


# --- (b) CIMD: documents written by the CLI, served from a folder, fetched by the dev AS ---------------

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        return None


@contextmanager
def serving(root: Path, *, tls: ssl.SSLContext | None = None) -> Iterator[http.server.ThreadingHTTPServer]:
    """Serve ``root/<host:port>/…`` (the layout --publish-dir writes) on a loopback port."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    host = f"127.0.0.1:{httpd.server_port}"
    httpd.RequestHandlerClass = functools.partial(_Quiet, directory=str(root / host))  # type: ignore[assignment]
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def cimd_client_doc(url: str, name: str = "Agent") -> str:
    return f"""
apiVersion: clientreg.dev/v1alpha1
kind: OAuthClient
metadata: {{name: agent, namespace: team}}
spec:
  serverRef: {{name: dev}}
  registration: cimd
  clientIdUrl: {url}
  clientName: {name}
  grantTypes: [client_credentials]
  tokenEndpointAuthMethod: private_key_jwt
  keyPair: {{}}
"""


def test_cimd_client_published_by_the_cli_gets_a_token_and_drift_is_seen(tmp_path: Path) -> None:
    site, folder, state = tmp_path / "site", tmp_path / "f", tmp_path / "state"
    site.mkdir()
    folder.mkdir()
    settings = DevServerSettings(initial_access_token=IAT, fetch_allow_loopback=True)
    with DevServer(settings) as server, serving(site) as docs:
        url = f"http://127.0.0.1:{docs.server_port}/clients/agent.json"
        (folder / "server.yaml").write_text(server_doc(server.issuer))
        (folder / "client.yaml").write_text(cimd_client_doc(url))

        # Without publishing, the client is not Ready: the AS could not find it.
        unpublished = run("apply", "-f", folder, "--state-dir", state)
        assert unpublished.exit_code == 3 and "DocumentNotPublished" in unpublished.output, unpublished.output

        published = run("apply", "-f", folder, "--state-dir", state, "--publish-dir", site)
        assert published.exit_code == 0, published.output
        served = httpx.get(url).json()
        record = record_of(state, "agent")
        key = record.current_key()
        assert key is not None
        assert served["client_id"] == url and served["jwks"] == {"keys": [key.public_jwk]}
        assert "client_secret" not in served and served["token_endpoint_auth_method"] == "private_key_jwt"
        assert dev_clients(server) == []  # nothing was registered: the URL is the client

        token = run("token", "agent", "--state-dir", state)
        assert token.exit_code == 0 and "token obtained" in token.output, token.output
        introspected = httpx.post(f"{server.issuer}/introspect", data={
            "token": client_credentials_token(HttpClient(), record).access_token.get_secret_value(),
            "client_id": url, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(key, url, server.token_endpoint, now=dt.datetime.now(dt.UTC))})
        assert introspected.json()["client_id"] == url

        # Someone edits the hosted document: plan sees it, apply (with --publish-dir) puts it back.
        path = site / f"127.0.0.1:{docs.server_port}" / "clients" / "agent.json"
        path.write_text(json.dumps({**served, "client_name": "Tampered"}))
        planned = run("plan", "-f", folder, "--state-dir", state, "-o", "json")
        assert json.loads(planned.output)[0]["reason"] == Reason.DOCUMENT_DIFFERS, planned.output
        assert "client_name" in json.loads(planned.output)[0]["message"]
        healed = run("apply", "-f", folder, "--state-dir", state, "--publish-dir", site)
        assert healed.exit_code == 0, healed.output
        assert httpx.get(url).json()["client_name"] == "Agent"

        # A document the AS must refuse: client_id not equal to the URL (CIMD §4.1).
        path.write_text(json.dumps({**served, "client_id": url + "x"}))
        refused = token_with(key, url, server.token_endpoint)
        assert refused.status_code in (400, 401) and refused.json()["error"] == "invalid_client"


def dev_clients(server: DevServer) -> list[str]:
    return list(httpx.get(f"{server.dev_url}/clients").json())


def test_dev_as_refuses_a_cimd_url_on_loopback_without_the_test_switch(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    with DevServer(DevServerSettings()) as server, serving(site) as docs:
        url = f"http://127.0.0.1:{docs.server_port}/clients/agent.json"
        response = httpx.post(server.token_endpoint, data={
            "grant_type": "client_credentials", "client_id": url,
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": "e30.e30.e30"})
        assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"


# --- (c) the same CIMD flow against node oidc-provider's experimental feature ---------------------------

def _self_signed_tls(tmp_path: Path) -> tuple[ssl.SSLContext, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clientreg test documents")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (tmp_path / "doc.crt").write_text(pem)
    (tmp_path / "doc.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "doc.crt", tmp_path / "doc.key")
    return context, pem


def test_cimd_client_gets_a_token_from_oidc_provider(tmp_path: Path) -> None:
    from support.oidc_provider import running_oidc_provider

    from clientreg.publish import documents, write_tree

    site = tmp_path / "site"
    site.mkdir()
    tls, ca_pem = _self_signed_tls(tmp_path)
    with running_oidc_provider(initial_access_token=None, cimd=True, cimd_fetch_allow_loopback=True) as op, \
            serving(site, tls=tls) as docs:
        assert op.extra["cimd"], "oidc-provider does not advertise client_id_metadata_document_supported"
        url = f"https://127.0.0.1:{docs.server_port}/clients/agent.json"
        doc = parse_document(json.loads(json.dumps({
            "apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
            "metadata": {"name": "agent", "namespace": "team"},
            "spec": {"serverRef": {"name": "op"}, "registration": "cimd", "clientIdUrl": url,
                     "clientName": "Agent", "grantTypes": ["client_credentials"],
                     "tokenEndpointAuthMethod": "private_key_jwt", "keyPair": {}}})))
        assert isinstance(doc, OAuthClient)
        saved: list[RegistrationRecord | None] = []
        with HttpClient(HttpSettings(ca_bundle=ca_pem)) as documents_http:
            fetch = fetch_published(documents_http)
            server = ServerConnection.for_spec(AuthorizationServerSpec(issuer=op.issuer), name="op")
            desired = Desired.from_client(doc)
            _, outcome = reconcile(desired, None, server, saved.append, fetch=fetch)
            assert outcome.reason == Reason.DOCUMENT_NOT_PUBLISHED and not outcome.ready
            record = outcome.record
            assert record is not None
            write_tree(site, documents(record))
            _, outcome = reconcile(desired, record, server, saved.append, fetch=fetch)
            assert outcome.ready, outcome.message
        with HttpClient() as http:
            token = client_credentials_token(http, record)
        assert token.token_type.lower() == "bearer"
        # oidc-provider verified the assertion against the document's jwks: another key is refused.
        stranger = generate("ES256", now=dt.datetime.now(dt.UTC))
        assert record.token_endpoint is not None
        refused = token_with(stranger, url, record.token_endpoint)
        assert refused.status_code in (400, 401) and refused.json()["error"] == "invalid_client", refused.text
