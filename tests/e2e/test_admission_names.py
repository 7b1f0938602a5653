"""The real API server refuses hostile names and text at admission (issue 11, findings 1 and 8).

The chart installs the generated CRDs; each document here is sent by the admin with ``dryRun=All``
(admission and schema validation run in full, nothing is stored) and must come back 422 naming the
field. A good document passes the same way, so a refusal is the schema's doing, not the request's.
No operator is needed: what is tested is that a traversal never reaches one.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.e2e

GROUP, VERSION = "clientreg.dev", "v1alpha1"
NAMESPACE = "admission-names"
Kube = Any  # tests/e2e/conftest.py

TRAVERSALS = ["../../kube-system/secrets/platform-iat", "..%2f..%2fkube-system", "a/b", "%2e%2e", "Upper",
              "t\u0435nant", "web.", "", "a" * 254, "x\n", "\u202eweb"]


@pytest.fixture(scope="module")
def custom(kube: Kube, chart_installed: str) -> client.CustomObjectsApi:
    with contextlib.suppress(ApiException):
        kube.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    return kube.custom


def _server(kind: str = "AuthorizationServer", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": "dev"},
            "spec": {"issuer": "https://auth.example.com", **spec}}


def _client(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "OAuthClient", "metadata": {"name": "web"},
            "spec": {"serverRef": {"name": "dev"}, "grantTypes": ["client_credentials"], **spec}}


def _submit(custom: client.CustomObjectsApi, body: dict[str, Any]) -> None:
    plural = {"OAuthClient": "oauthclients", "AuthorizationServer": "authorizationservers",
              "ClusterAuthorizationServer": "clusterauthorizationservers"}[body["kind"]]
    if body["kind"] == "ClusterAuthorizationServer":
        custom.create_cluster_custom_object(GROUP, VERSION, plural, body, dry_run="All")
    else:
        custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, body, dry_run="All")


def _refused(custom: client.CustomObjectsApi, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as caught:
        _submit(custom, body)
    assert caught.value.status == 422, caught.value.body
    message: str = json.loads(caught.value.body)["message"]
    return message


def test_good_documents_are_admitted(custom: client.CustomObjectsApi) -> None:
    _submit(custom, _server(initialAccessToken={"secretKeyRef": {"name": "iat", "key": "token"}}))
    _submit(custom, _server("ClusterAuthorizationServer",
                            softwareStatement={"secretKeyRef": {"name": "ss.v1", "key": "JWT_1"}}))
    _submit(custom, _client(secretName="web-oauth", clientName="Caf\u00e9 \u2615", secretTemplate={
        "clientIdKey": "CLIENT_ID", "labels": {"app.kubernetes.io/part-of": "portal", "team": ""},
        "annotations": {"note": "any text"}, "extraData": {"config.env": "ID={clientId}\n"}}))


FIELDS = [
    ("spec.serverRef.name", lambda n: _client(serverRef={"name": n})),
    ("spec.secretName", lambda n: _client(secretName=n)),
    ("spec.initialAccessToken.secretKeyRef.name",
     lambda n: _server(initialAccessToken={"secretKeyRef": {"name": n, "key": "token"}})),
    ("spec.softwareStatement.secretKeyRef.name",
     lambda n: _server("ClusterAuthorizationServer", softwareStatement={"secretKeyRef": {"name": n, "key": "k"}})),
]


@pytest.mark.parametrize(("field", "document"), FIELDS, ids=[f for f, _ in FIELDS])
@pytest.mark.parametrize("name", TRAVERSALS, ids=ascii)
def test_a_traversal_in_a_name_field_is_refused_at_admission(custom: client.CustomObjectsApi, field: str,
                                                             document: Any, name: str) -> None:
    assert field in _refused(custom, document(name))


@pytest.mark.parametrize(("document", "field"), [
    (_server(initialAccessToken={"secretKeyRef": {"name": "iat", "key": "../token"}}),
     "spec.initialAccessToken.secretKeyRef.key"),
    (_client(secretTemplate={"clientIdKey": "a/b"}), "spec.secretTemplate.clientIdKey"),
    (_client(secretTemplate={"extraData": {"../x": "v"}}), "spec.secretTemplate.extraData"),
    (_client(secretTemplate={"labels": {"a b": "v"}}), "spec.secretTemplate.labels"),
    (_client(secretTemplate={"labels": {"team": "a/b"}}), "spec.secretTemplate.labels.team"),
    (_client(secretTemplate={"annotations": {"note": "\u202ex"}}), "spec.secretTemplate.annotations.note"),
    (_client(clientName="Portal\u202e"), "spec.clientName"),
    (_client(clientName="a" * 201), "spec.clientName"),
    (_client(contacts=["ops\n@example.com"]), "spec.contacts[0]"),
    (_client(softwareId="\u2066id"), "spec.softwareId"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_keys_and_text_are_refused_at_admission(custom: client.CustomObjectsApi, document: dict[str, Any],
                                                    field: str) -> None:
    assert field in _refused(custom, document)
