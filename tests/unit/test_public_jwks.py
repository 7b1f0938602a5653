"""Private or symmetric JWK members never get registered or published: refused in the models (hence the CLI,
the operator and the Pulumi provider), and refused again when a document is rendered for publication."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from clientreg_operator.documents import DocumentIndex
from clientreg_pulumi import OAuthClientError, OAuthClientProvider
from test_operator_reconciler import World

from clientreg import publish
from clientreg.cli import main
from clientreg.errors import ConfigurationError
from clientreg.jwks import PRIVATE_MEMBERS, problems
from clientreg.record import RegistrationRecord
from clientreg.spec import parse_document

PRIVATE = "private-SECRET-d-0123456789abcdef"
PUBLIC_EC = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "kid": "k1"}
PUBLIC_RSA = {"kty": "RSA", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS"
              "oc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368Q"
              "QMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPk"
              "sINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw", "e": "AQAB", "kid": "r1"}
SERVER = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "AuthorizationServer", "metadata": {"name": "dev"},
          "spec": {"registrationEndpoint": "http://127.0.0.1:9/register"}}


def client_document(jwks: Any) -> dict[str, Any]:
    return {"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient", "metadata": {"name": "svc"},
            "spec": {"serverRef": {"name": "dev"}, "grantTypes": ["client_credentials"],
                     "tokenEndpointAuthMethod": "private_key_jwt", "jwks": jwks}}


def with_member(key: dict[str, Any], member: str) -> dict[str, Any]:
    return {**key, member: PRIVATE if member != "oth" else [{"r": PRIVATE, "d": PRIVATE, "t": PRIVATE}]}


@pytest.mark.parametrize("member", PRIVATE_MEMBERS)
def test_a_private_member_in_spec_jwks_is_refused_naming_the_member(member: str) -> None:
    jwks = {"keys": [PUBLIC_EC, with_member(PUBLIC_RSA, member)]}
    with pytest.raises(ConfigurationError) as caught:
        parse_document(client_document(jwks), source="clients.yaml")
    assert caught.value.field == f"spec.jwks.keys[1].{member}"
    assert "RFC 7591 §2" in str(caught.value) and "private key member" in str(caught.value)
    assert PRIVATE not in str(caught.value)


def test_a_symmetric_key_in_spec_jwks_is_refused() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_document(client_document({"keys": [{"kty": "oct", "k": PRIVATE}]}))
    assert caught.value.field == "spec.jwks.keys[0].kty"
    assert "symmetric" in str(caught.value) and PRIVATE not in str(caught.value)


@pytest.mark.parametrize(("jwks", "field"), [({"kty": "EC"}, "spec.jwks.keys"), ({"keys": "x"}, "spec.jwks.keys"),
                                             ({"keys": [{"kid": "a"}]}, "spec.jwks.keys[0]"),
                                             ({"keys": ["x"]}, "spec.jwks.keys[0]")])
def test_a_jwks_that_is_not_a_jwk_set_is_refused(jwks: Any, field: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_document(client_document(jwks))
    assert caught.value.field == field and "RFC 7517" in str(caught.value)


def test_public_keys_pass_unchanged() -> None:
    okp = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    jwks = {"keys": [PUBLIC_EC, PUBLIC_RSA, okp]}
    parsed = parse_document(client_document(jwks))
    assert parsed.spec.wire_metadata()["jwks"] == jwks  # type: ignore[union-attr]


def test_the_cli_refuses_a_private_jwks_before_anything_is_sent(tmp_path: Path) -> None:
    folder, state = tmp_path / "docs", tmp_path / "state"
    folder.mkdir()
    (folder / "server.yaml").write_text(json.dumps(SERVER))
    (folder / "client.yaml").write_text(json.dumps(client_document({"keys": [with_member(PUBLIC_EC, "d")]})))
    result = CliRunner().invoke(main, ["apply", "-f", str(folder), "--state-dir", str(state)])
    assert result.exit_code == 2, result.output
    assert "spec.jwks.keys[0].d" in result.output and "RFC 7591" in result.output
    assert PRIVATE not in result.output and "Traceback" not in result.output
    assert not list(state.rglob("*.json"))


def test_the_operator_reports_a_private_jwks_as_an_invalid_spec() -> None:
    w = World()
    w.add_client(tokenEndpointAuthMethod="private_key_jwt", jwks={"keys": [with_member(PUBLIC_RSA, "p")]})
    w.reconcile()
    ready = {c["type"]: c for c in w.cluster.client()["status"]["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.jwks.keys[0].p" in ready["message"]
    assert dict(w.fake.calls) == {}, "the AS was contacted"
    visible = json.dumps(w.cluster.client()["status"]) + json.dumps(w.cluster.events)
    assert PRIVATE not in visible


def test_the_pulumi_provider_refuses_a_private_jwks_in_check_and_create() -> None:
    provider = OAuthClientProvider()
    news = {"issuer": "https://auth.example.com", "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [with_member(PUBLIC_EC, "d")]}}
    found = {f.property: f.reason for f in provider.check({}, news).failures}
    assert set(found) == {"jwks"} and found["jwks"].startswith("jwks.keys[0].d: ")
    assert PRIVATE not in found["jwks"]
    with pytest.raises(OAuthClientError) as caught:
        provider.create(news)
    assert "keys[0].d" in str(caught.value) and PRIVATE not in str(caught.value)


def test_render_refuses_a_document_holding_a_private_jwk_anywhere() -> None:
    for document in ({"keys": [PUBLIC_EC, with_member(PUBLIC_EC, "d")]},
                     {"client_id": "https://app.example.com/c.json", "jwks": {"keys": [with_member(PUBLIC_RSA, "qi")]}},
                     {"keys": [{"kty": "oct", "k": PRIVATE}]}):
        with pytest.raises(ConfigurationError) as caught:
            publish.render(document)
        assert "RFC 7591 §2" in str(caught.value) and PRIVATE not in str(caught.value)
    assert json.loads(publish.render({"keys": [PUBLIC_EC]})) == {"keys": [PUBLIC_EC]}
    assert problems({"jwks": {"keys": [with_member(PUBLIC_RSA, "dq")]}}) != []


def test_a_record_holding_a_private_member_is_never_served() -> None:
    # A CIMD record written before the models refused private members: its document is dropped, not served.
    record = RegistrationRecord(client_id="https://app.example.com/c.json", registration="cimd",
                                server_metadata={"client_id": "https://app.example.com/c.json",
                                                 "jwks": {"keys": [with_member(PUBLIC_EC, "d")]}})
    index = DocumentIndex()
    index.put("tenant-a", "svc", publish.documents(record))
    assert index.get("app.example.com/c.json") is None and index.paths() == []
    with pytest.raises(ConfigurationError):
        publish.write_tree(Path("/nonexistent-never-written"), publish.documents(record))
