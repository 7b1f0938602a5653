"""What a kubectl / GitOps user meets at admission, on the real API server with the chart's CRDs (issue 15).

* ``spec.serverRef`` can be fixed until a client is registered (a root-level transition rule that reads
  ``status.clientId``), and is refused with an accurate message afterwards;
* redirect URIs are refused at admission for what needs no server (fragment, characters, scheme);
* ``secretTemplate.omitKeys`` is admitted for the optional keys only;
* the Expires column is served as text, not as a date kubectl would print as ``<invalid>``.

The objects carry the shard label the suite's primary operator ignores, so that nothing writes their
status but this module. No operator is needed.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.e2e

GROUP, VERSION, PLURAL = "clientreg.dev", "v1alpha1", "oauthclients"
NAMESPACE = "admission-ux"
SHARD_LABEL = "test.clientreg.dev/shard"  # tests/e2e/conftest.py: the primary operator skips these
Kube = Any  # tests/e2e/conftest.py


@pytest.fixture(scope="module")
def custom(kube: Kube, chart_installed: str) -> client.CustomObjectsApi:
    with contextlib.suppress(ApiException):
        kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    api: client.CustomObjectsApi = kube.custom
    return api


def _client(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "OAuthClient",
            "metadata": {"name": name, "labels": {SHARD_LABEL: "admission-ux"}},
            "spec": {"serverRef": {"name": "dev"}, "grantTypes": ["client_credentials"], **spec}}


def _create(custom: client.CustomObjectsApi, body: dict[str, Any], *, dry_run: bool = True) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body,
                                           dry_run="All" if dry_run else None)


def _refused(custom: client.CustomObjectsApi, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as caught:
        _create(custom, body)
    assert caught.value.status == 422, caught.value.body
    message: str = json.loads(str(caught.value.body))["message"]
    return message


def _patch(custom: client.CustomObjectsApi, name: str, patch: dict[str, Any]) -> None:
    custom.patch_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name, patch,
                                          _content_type="application/merge-patch+json")


def _patch_status(custom: client.CustomObjectsApi, name: str, status: dict[str, Any]) -> None:
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, NAMESPACE, PLURAL, name, {"status": status},
                                                 _content_type="application/merge-patch+json")


def _delete(custom: client.CustomObjectsApi, name: str) -> None:
    with contextlib.suppress(ApiException):
        custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)


# --- serverRef -------------------------------------------------------------------------------------------

def test_server_ref_can_be_fixed_until_a_client_is_registered(custom: client.CustomObjectsApi) -> None:
    name = "typo"
    _delete(custom, name)
    _create(custom, _client(name, serverRef={"name": "tenant-auht"}), dry_run=False)
    try:
        _patch(custom, name, {"spec": {"serverRef": {"name": "tenant-auth"}}})  # no status at all
        # A status without a client ID (the operator reported a failure): still nothing registered.
        _patch_status(custom, name, {"conditions": [{"type": "Ready", "status": "False", "reason": "Waiting",
                                                     "message": "no such server", "lastTransitionTime":
                                                     "2026-01-01T00:00:00Z"}]})
        _patch(custom, name, {"spec": {"serverRef": {"name": "platform-auth", "kind": "ClusterAuthorizationServer"}}})
        _patch_status(custom, name, {"clientId": "c-123"})
        with pytest.raises(ApiException) as caught:
            _patch(custom, name, {"spec": {"serverRef": {"name": "elsewhere"}}})
        assert caught.value.status == 422
        message = json.loads(str(caught.value.body))["message"]
        assert "spec.serverRef cannot change once a client is registered" in message
        body = cast(dict[str, Any], custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name))
        assert body["spec"]["serverRef"] == {"name": "platform-auth", "kind": "ClusterAuthorizationServer"}
        # Other edits of a registered client stay possible (the rule compares serverRef only).
        _patch(custom, name, {"spec": {"clientName": "Portal"}})
    finally:
        _delete(custom, name)


# --- redirect URIs -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "says"), [
    ("https://app.example.com/cb#top", "fragment"),
    ("http://app.example.com/cb", "loopback"),
    ("http://localhost.evil.example/cb", "loopback"),
    ("myapp:/cb", "private-use scheme"),
    ("javascript:alert(1)", "private-use scheme"),
    ("https://app.example.com\\@evil.example/", "backslash"),
    ("https://app.example.com/a b", "whitespace"),
    ("https://ex\u00e4mple.com/cb", "non-ASCII"),
], ids=ascii)
def test_admission_refuses_a_redirect_uri_the_operator_would_refuse(custom: client.CustomObjectsApi, uri: str,
                                                                     says: str) -> None:
    message = _refused(custom, _client(grantTypes=["authorization_code"], redirectUris=[uri]))
    assert "spec.redirectUris[0]" in message and says in message
    message = _refused(custom, _client(postLogoutRedirectUris=[uri]))
    assert "spec.postLogoutRedirectUris[0]" in message


def test_admission_accepts_good_redirect_uris(custom: client.CustomObjectsApi) -> None:
    uris = ["https://app.example.com/cb?x=%2F", "HTTPS://app.example.com/cb", "http://127.0.0.1:8080/cb",
            "http://[::1]/cb", "http://localhost/cb", "com.example.app:/oauth2redirect"]
    _create(custom, _client(grantTypes=["authorization_code"], redirectUris=uris, postLogoutRedirectUris=uris))


def test_redirect_lists_are_bounded(custom: client.CustomObjectsApi) -> None:
    message = _refused(custom, _client(grantTypes=["authorization_code"],
                                       redirectUris=[f"https://app.example.com/{i}" for i in range(65)]))
    assert "spec.redirectUris" in message and "64" in message
    message = _refused(custom, _client(grantTypes=["authorization_code"],
                                       redirectUris=["https://app.example.com/" + "a" * 4096]))
    assert "4096" in message


# --- omitKeys ---------------------------------------------------------------------------------------------

def test_omit_keys_takes_the_optional_keys_only(custom: client.CustomObjectsApi) -> None:
    _create(custom, _client(secretTemplate={"omitKeys": ["issuer", "tokenEndpoint"]}))
    message = _refused(custom, _client(secretTemplate={"omitKeys": ["clientSecret"]}))
    assert "spec.secretTemplate.omitKeys[0]" in message
    message = _refused(custom, _client(secretTemplate={"omitKeys": ["issuer", "issuer"]}))
    assert "omitKeys" in message


# --- printer columns ----------------------------------------------------------------------------------------

def test_expires_is_served_as_text(custom: client.CustomObjectsApi, admin: client.ApiClient) -> None:
    name = "columns"
    _delete(custom, name)
    _create(custom, _client(name), dry_run=False)
    try:
        _patch_status(custom, name, {"clientId": "c-1", "secretExpiresAt": "2099-01-01T00:00:00Z",
                                     "nextRotation": "2098-09-01T00:00:00Z"})
        # What kubectl get receives: the server's Table, column types included (kubectl prints a `date`
        # column as an age, and a future one as <invalid>).
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}/{name}"
        response = admin.call_api("GET", admin.configuration.host + path,
                                  header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
        response.read()
        assert response.status == 200 and response.data is not None, response.data
        table = json.loads(response.data)
        columns = [c["name"] for c in table["columnDefinitions"]]
        types = {c["name"]: c["type"] for c in table["columnDefinitions"]}
        assert types["Expires"] == "string" and types["Next Rotation"] == "string"
        cells = dict(zip(columns, table["rows"][0]["cells"], strict=True))
        assert cells["Expires"] == "2099-01-01T00:00:00Z"
        assert cells["Next Rotation"] == "2098-09-01T00:00:00Z"
    finally:
        _delete(custom, name)
