"""The redirect policy is enforced at every door, before any request: the engine (DCR and CIMD, new and
registered clients), `clientreg plan` and `apply`, the operator's reconciler and the Pulumi provider
(preview's check and up). The rules themselves are in test_redirects.py.

    pytest tests/unit/test_redirects_enforcement.py -q
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from clientreg.cli import main
from clientreg.engine import Desired, reconcile
from clientreg.http import HttpClient, HttpSettings
from clientreg.record import RegistrationRecord
from clientreg.redirects import RedirectNotPermitted
from clientreg.server import ServerConnection
from clientreg.spec import AuthorizationServerSpec, OAuthClient, parse_document
from clientreg.store import Entry, LocalStore

TENANT = ["*.tenant-a.example.com"]
ISSUER = "http://127.0.0.1:9"  # never dialled: every test that could send fails on the first request


def server_spec() -> AuthorizationServerSpec:
    return AuthorizationServerSpec(issuer=ISSUER, allowed_redirect_hosts=TENANT)


class NoNetwork:
    """Counts attempts to send anything; the tests assert there were none (and that a sanity case had one)."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.attempts.append(f"{request.method} {request.url}")
        raise AssertionError(f"a request was sent: {request.method} {request.url}")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[NoNetwork]:
    guard = NoNetwork()

    def send(self: httpx.Client, request: httpx.Request, **_kw: Any) -> httpx.Response:
        return guard(request)

    monkeypatch.setattr(httpx.Client, "send", send)
    yield guard


def client(**spec: Any) -> OAuthClient:
    doc = parse_document({"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
                          "metadata": {"name": "web", "namespace": "tenant-a"},
                          "spec": {"serverRef": {"name": "as"}, **spec}})
    assert isinstance(doc, OAuthClient)
    return doc


CIMD = {"registration": "cimd", "clientIdUrl": "https://app.tenant-a.example.com/client.json",
        "tokenEndpointAuthMethod": "none", "grantTypes": ["authorization_code"]}


@pytest.mark.parametrize("registration", ["dcr", "cimd"])
@pytest.mark.parametrize("with_record", [False, True])
def test_engine_refuses_before_any_request_for_dcr_and_cimd(registration: str, with_record: bool) -> None:
    guard = NoNetwork()
    http = HttpClient(HttpSettings(retries=0), transport=httpx.MockTransport(guard))
    server = ServerConnection(server_spec(), http, name="AuthorizationServer/as")
    spec = CIMD if registration == "cimd" else {"grantTypes": ["authorization_code"]}
    desired = Desired.from_client(client(**spec, redirectUris=["com.evil.app:/cb"]))
    record = RegistrationRecord(client_id="c1", registration=registration, spec_hash="old",
                                registration_client_uri=f"{ISSUER}/register/c1",
                                registration_access_token=SecretStr("rat")) if with_record else None
    saved: list[Any] = []
    with pytest.raises(RedirectNotPermitted) as caught:
        reconcile(desired, record, server, saved.append, fetch=lambda url: guard(httpx.Request("GET", url)))
    assert caught.value.rule == "allowedRedirectSchemes" and caught.value.field == "spec.redirectUris[0]"
    assert guard.attempts == [] and saved == []


SERVER_YAML = f"""apiVersion: clientreg.dev/v1alpha1
kind: AuthorizationServer
metadata: {{name: as, namespace: tenant-a}}
spec:
  issuer: {ISSUER}
  allowedRedirectHosts: ["*.tenant-a.example.com"]
"""


def _plan(tmp_path: Path, redirect: str, registration: str) -> Any:
    folder = tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    spec = dict(CIMD) if registration == "cimd" else {"grantTypes": ["authorization_code"]}
    spec.update(serverRef={"name": "as"}, redirectUris=[redirect])
    (folder / "server.yaml").write_text(SERVER_YAML)
    (folder / "client.yaml").write_text(json.dumps({
        "apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
        "metadata": {"name": "web", "namespace": "tenant-a"}, "spec": spec}))
    # A client registered before: planning it means a read (DCR) or a fetch (CIMD) unless the policy stops it.
    store = LocalStore(tmp_path / "state")
    client_id = CIMD["clientIdUrl"] if registration == "cimd" else "c1"
    store.write(Entry("tenant-a", "web", RegistrationRecord(
        client_id=client_id, registration=registration, spec_hash="old",
        registration_client_uri=f"{ISSUER}/register/c1", registration_access_token=SecretStr("rat"),
        server_metadata={"client_id": client_id})))
    return CliRunner().invoke(main, ["plan", "-f", str(folder), "--state-dir", str(tmp_path / "state")])


@pytest.mark.parametrize("registration", ["dcr", "cimd"])
@pytest.mark.parametrize(("redirect", "words"), [
    ("com.evil.app:/cb", ("NotPermitted", "spec.redirectUris[0]", "allowedRedirectSchemes")),
    ("https://tenant-a.example.com.evil.test/cb", ("NotPermitted", "spec.redirectUris[0]", "allowedRedirectHosts")),
    ("https://evil.test\\.tenant-a.example.com/cb", ("spec.redirectUris.0", "backslash")),  # refused on load
])
def test_clientreg_plan_reports_the_violation_without_sending_anything(
        tmp_path: Path, no_network: NoNetwork, registration: str, redirect: str, words: tuple[str, ...]) -> None:
    result = _plan(tmp_path, redirect, registration)
    assert no_network.attempts == [], result.output
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.output, (word, result.output)
    assert "Traceback" not in result.output


def test_clientreg_plan_of_an_allowed_client_does_reach_the_network(tmp_path: Path, no_network: NoNetwork) -> None:
    # The counterpart that shows the guard above would notice a request.
    _plan(tmp_path, "https://app.tenant-a.example.com/cb", "dcr")
    assert no_network.attempts, "plan of a registered client made no request: the tests above prove nothing"


def test_clientreg_apply_refuses_a_cimd_client(tmp_path: Path, no_network: NoNetwork) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "server.yaml").write_text(SERVER_YAML)
    (folder / "client.yaml").write_text(json.dumps({
        "apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient", "metadata": {"name": "web",
                                                                                     "namespace": "tenant-a"},
        "spec": {**CIMD, "serverRef": {"name": "as"}, "redirectUris": ["https://evil.test/cb"]}}))
    result = CliRunner().invoke(main, ["apply", "-f", str(folder), "--state-dir", str(tmp_path / "state"),
                                       "--publish-dir", str(tmp_path / "www")])
    assert result.exit_code == 2 and "allowedRedirectHosts" in result.output, result.output
    assert no_network.attempts == [] and not (tmp_path / "www").exists()


@pytest.mark.parametrize(("spec", "redirect"), [
    (CIMD, "https://tenant-a.example.com@evil.test/cb"),
    (CIMD, "com.evil.app:/cb"),
    ({"grantTypes": ["authorization_code"]}, "com.evil.app:/cb"),
])
def test_operator_sets_not_permitted_and_sends_nothing(spec: dict[str, Any], redirect: str) -> None:
    from test_operator_reconciler import NS, World

    w = World()
    body = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "AuthorizationServer",
            "metadata": {"name": "as", "namespace": NS},
            "spec": {"issuer": "https://as.example.com", "allowedRedirectHosts": TENANT,
                     "initialAccessToken": {"secretKeyRef": {"name": "as-iat", "key": "token"}}}}
    w.cluster.put("AuthorizationServer", body)
    w.add_client(**spec, redirectUris=[redirect])
    w.reconcile()
    ready = w.condition("Ready")
    assert ready["status"] == "False"
    if "@" in redirect:  # the spec refuses userinfo outright
        assert ready["reason"] == "InvalidSpec" and "userinfo" in ready["message"]
    else:
        assert ready["reason"] == "NotPermitted" and "allowedRedirectSchemes" in ready["message"]
    assert dict(w.fake.calls) == {}, "the AS was contacted for a client the policy refuses"


PULUMI = {"issuer": ISSUER, "allowed_redirect_hosts": TENANT, "client_name": "Web",
          "grant_types": ["authorization_code"]}


@pytest.mark.parametrize(("extra", "argument"), [
    ({"redirect_uris": ["com.evil.app:/cb"]}, "redirect_uris"),
    ({"redirect_uris": ["https://evil.test/cb"], "registration": "cimd", "token_endpoint_auth_method": "none",
      "client_id_url": "https://app.tenant-a.example.com/c.json"}, "redirect_uris"),
    ({"redirect_uris": ["https://app.tenant-a.example.com/cb"],
      "post_logout_redirect_uris": ["https://evil.test/bye"]}, "post_logout_redirect_uris"),
    ({"redirect_uris": ["https://app.tenant-a.example.com/cb"],
      "additional_metadata": {"frontchannel_logout_uri": "https://evil.test/fc"}}, "additional_metadata"),
])
def test_pulumi_preview_and_up_refuse_with_the_argument_named(no_network: NoNetwork, extra: dict[str, Any],
                                                              argument: str) -> None:
    from clientreg_pulumi import OAuthClientError, OAuthClientProvider, args

    props = {**PULUMI, **extra}
    found = dict(args.problems(props))  # `pulumi preview` runs check(): no request
    assert list(found) == [argument], found
    assert "allowed_redirect" in found[argument] and "allowedRedirect" not in found[argument]
    with pytest.raises(OAuthClientError) as caught:  # `up` with check skipped: refused before any request
        OAuthClientProvider().create(props)
    assert "allowed_redirect" in str(caught.value)
    assert no_network.attempts == []


def test_pulumi_accepts_allowed_redirect_schemes() -> None:
    from clientreg_pulumi import args

    props = {**PULUMI, "redirect_uris": ["com.tenant-a.app:/cb"], "allowed_redirect_schemes": ["com.tenant-a.app"]}
    assert args.problems(props) == []
    assert args.server_spec(props).allowed_redirect_schemes == ["com.tenant-a.app"]
