"""What a kubectl / GitOps user meets: keys left out of the Secret in every apply mode, readable printer
columns, a serverRef that can be fixed until a client exists, redirect URIs refused at admission, and a
SECRET column that names a Secret only when one was written."""

from __future__ import annotations

import re
from typing import Any

import pytest
from clientreg_operator import crds
from test_operator_reconciler import World, _secret_body

from clientreg.errors import ConfigurationError
from clientreg.record import RegistrationRecord
from clientreg.redirects import parse_redirect_uri
from clientreg.spec import SecretTemplate, parse_document
from clientreg_kube import crds as generator
from clientreg_kube.secrets import credentials_data, decode, render_credentials


def _oauthclient_crd() -> dict[str, Any]:
    return next(c for c in crds.crds() if c["spec"]["names"]["kind"] == "OAuthClient")


def _root() -> dict[str, Any]:
    return _oauthclient_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _record() -> RegistrationRecord:
    return RegistrationRecord(client_id="c1", client_secret="s1", issuer="https://as.example",
                              token_endpoint="https://as.example/token")


# --- 1. omitKeys ------------------------------------------------------------------------------------

def test_omit_keys_leaves_the_optional_keys_out_of_the_secret() -> None:
    template = SecretTemplate.model_validate({"omitKeys": ["issuer", "tokenEndpoint"]})
    data = credentials_data(_record(), template)
    assert data == {"client_id": "c1", "client_secret": "s1"}
    only_issuer = credentials_data(_record(), SecretTemplate.model_validate({"omitKeys": ["issuer"],
                                                                             "tokenEndpointKey": "TOKEN_URL"}))
    assert set(only_issuer) == {"client_id", "client_secret", "TOKEN_URL"}


def test_omit_keys_wins_over_a_renamed_key_and_null_still_works() -> None:
    renamed = SecretTemplate.model_validate({"issuerKey": "OIDC_ISSUER", "omitKeys": ["issuer"]})
    secret = render_credentials(_record(), renamed, name="web-oauth", namespace="ns", client_name="web")
    assert "OIDC_ISSUER" not in decode(secret) and "issuer" not in decode(secret)
    nulled = SecretTemplate.model_validate({"issuerKey": None})  # server-side apply keeps the null
    assert "issuer" not in credentials_data(_record(), nulled)


def test_omit_keys_accepts_only_the_optional_values() -> None:
    doc = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient", "metadata": {"name": "web"},
           "spec": {"serverRef": {"name": "as"}, "grantTypes": ["client_credentials"],
                    "secretTemplate": {"omitKeys": ["clientSecret"]}}}
    with pytest.raises(ConfigurationError, match="omitKeys"):
        parse_document(doc)


def test_the_crd_declares_omit_keys_as_a_bounded_set() -> None:
    template = _root()["properties"]["spec"]["properties"]["secretTemplate"]["properties"]
    omit = template["omitKeys"]
    assert omit["items"]["enum"] == ["issuer", "tokenEndpoint"]
    assert omit["x-kubernetes-list-type"] == "set" and omit["maxItems"] == 2
    assert "omitKeys" in template["issuerKey"]["description"]


def test_pulumi_kubernetes_secret_takes_omit_keys() -> None:
    from clientreg_pulumi.args import secret_place
    place = secret_place({"kubernetes_secret": {"name": "web", "omit_keys": ["tokenEndpoint"]}})
    assert place is not None and place.template.optional_key("tokenEndpoint") is None
    assert place.template.optional_key("issuer") == "issuer"


# --- 2. printer columns -----------------------------------------------------------------------------

def test_future_timestamps_are_printed_as_text_not_as_an_age() -> None:
    columns = {c["name"]: c for c in _oauthclient_crd()["spec"]["versions"][0]["additionalPrinterColumns"]}
    # kubectl renders a `date` column as an age, and a future one as <invalid>.
    assert columns["Expires"]["type"] == "string" and columns["Expires"]["jsonPath"] == ".status.secretExpiresAt"
    assert columns["Next Rotation"]["type"] == "string"
    assert columns["Age"]["type"] == "date"  # a past time: an age reads well


# --- 3. serverRef ------------------------------------------------------------------------------------

def test_server_ref_may_change_until_a_client_is_registered() -> None:
    spec = _root()["properties"]["spec"]
    assert "x-kubernetes-validations" not in spec["properties"]["serverRef"]
    rules = _root()["x-kubernetes-validations"]
    rule = next(r for r in rules if "serverRef" in r["rule"])
    assert "!has(oldSelf.status.clientId)" in rule["rule"] and "!has(oldSelf.status)" in rule["rule"]
    assert "once a client is registered" in rule["message"]


# --- 4. redirect URIs at admission ---------------------------------------------------------------------

def _cel_refuses(uri: str) -> bool:
    """The three CEL rules, evaluated with Python's re (RE2 reads these patterns the same)."""
    return ("#" in uri or not re.search(generator.REDIRECT_URI_CHARS, uri)
            or not re.search(generator.REDIRECT_URI_SCHEME, uri))


def _core_refuses(uri: str) -> bool:
    try:
        parse_redirect_uri(uri)
    except ValueError:
        return True
    return False


REFUSED_AT_ADMISSION = [
    "https://app.example.com/cb#frag", "http://app.example.com/cb", "http://localhost.evil.example/cb",
    "http://127.0.0.1.evil.example/cb", "ftp://files.example.com/", "myapp:/cb", "https://app.example.com/a b",
    "https://app.example.com\\@evil.example/", "https://exämple.com/cb", "https://app.example.com/\t",
    "javascript:alert(1)", "data:text/html,x", ".bad.scheme:/cb",
]
ACCEPTED_AT_ADMISSION = [
    "https://app.example.com/cb", "HTTPS://app.example.com/cb", "http://127.0.0.1:8080/cb", "http://localhost/cb",
    "http://[::1]:3000/cb", "http://LOCALHOST:9/x?y=1", "com.example.app:/oauth2redirect",
    "com.example.app://cb", "https://app.example.com/cb?x=%2F&y=(1)",
]


@pytest.mark.parametrize("uri", REFUSED_AT_ADMISSION, ids=ascii)
def test_admission_refuses_redirect_uris_the_operator_would_refuse(uri: str) -> None:
    assert _cel_refuses(uri)
    assert _core_refuses(uri), "admission must never be stricter than the operator"


@pytest.mark.parametrize("uri", ACCEPTED_AT_ADMISSION, ids=ascii)
def test_admission_accepts_good_redirect_uris(uri: str) -> None:
    assert not _cel_refuses(uri)
    assert not _core_refuses(uri)


@pytest.mark.parametrize("uri", [
    "https://a.example/ok", "http://127.1/cb", "http://127.0.0.01/cb", "https://x/%zz", "com..example:/cb",
    "http://[::ffff:127.0.0.1]/cb", "https://user@host.example/cb", "http://localhost:0/cb", "a.b:/",
    "https://[fe80::1%25eth0]/cb", "http://127.0.0.1:99999/", "HTTP://127.0.0.1/", "x.y://[::1]/",
])
def test_admission_is_never_stricter_than_the_operator(uri: str) -> None:
    assert not _cel_refuses(uri) or _core_refuses(uri)


def test_redirect_lists_are_bounded_for_the_cel_cost_budget() -> None:
    props = _root()["properties"]["spec"]["properties"]
    for name in ("redirectUris", "postLogoutRedirectUris"):
        field = props[name]
        assert field["maxItems"] and field["items"]["maxLength"] == 4096
        rules = [r["rule"] for r in field["items"]["x-kubernetes-validations"]]
        assert "!self.contains('#')" in rules
        assert f'self.matches(r"{generator.REDIRECT_URI_SCHEME}")' in rules


# --- 5. status.secretName -----------------------------------------------------------------------------

def test_no_secret_name_in_status_while_nothing_is_registered() -> None:
    w = World()
    w.add_client()
    w.fake.fail_next = [503] * 20
    w.reconcile()
    status = w.cluster.client()["status"]
    assert w.cluster.secret("billing-oauth") is None
    assert "secretName" not in status


def test_no_secret_name_in_status_when_a_foreign_secret_holds_the_name() -> None:
    w = World()
    w.cluster.put("Secret", _secret_body("billing-oauth", {"mine": "yes"}))
    w.add_client()
    w.reconcile()
    assert "secretName" not in w.cluster.client()["status"]


def test_secret_name_in_status_once_the_secret_is_written() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    assert w.cluster.secret("billing-oauth") is not None
    assert w.cluster.client()["status"]["secretName"] == "billing-oauth"


def test_an_unreadable_spec_keeps_the_registered_client_in_status() -> None:
    # status.clientId is what keeps serverRef fixed at admission: a spec the models refuse (the CRD
    # admitted it) must not wipe it while the client is still registered at the old server.
    w = World()
    w.add_client()
    w.reconcile()
    client_id = w.cluster.client()["status"]["clientId"]
    w.cluster.edit_client(grantTypes=["authorization_code"])  # no redirectUris: refused by the models
    w.reconcile()
    status = w.cluster.client()["status"]
    assert status["clientId"] == client_id and status["secretName"] == "billing-oauth"
    assert w.condition()["reason"] == "InvalidSpec"
