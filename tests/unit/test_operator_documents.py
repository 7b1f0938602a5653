"""The operator and published documents: private_key_jwt keys in the credentials Secret, CIMD and JWKS
documents served from its HTTP endpoint, DocumentNotPublished as Ready=False with an early requeue, and
the SSRF-guarded fetch of what tenants name."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import httpx
import pytest
from clientreg_operator.documents import DocumentIndex
from clientreg_operator.endpoints import serve
from clientreg_operator.reconciler import guarded_fetch
from support.fake_as import FakeAS
from test_operator_reconciler import NS, World

from clientreg import publish
from clientreg.errors import ProtocolError
from clientreg.ssrf import FetchRefused
from clientreg_kube.secrets import key_name

JWKS_URL = "https://keys.example.com/billing/jwks.json"
CIMD_URL = "https://App.example.com/clients/agent.json"


class CimdAS(FakeAS):
    """The fake AS, advertising Client ID Metadata Document support."""

    def handle(self, request: httpx.Request) -> httpx.Response:
        response = super().handle(request)
        if request.url.path == "/.well-known/oauth-authorization-server" and response.status_code == 200:
            return httpx.Response(200, json={**response.json(), "client_id_metadata_document_supported": True})
        return response


class Hosted:
    """A fetch that reads what the operator itself serves (as if the URLs were routed to it)."""

    def __init__(self, index: DocumentIndex) -> None:
        self.index = index
        self.down = False
        self.urls: list[str] = []

    def __call__(self, url: str) -> Any:
        self.urls.append(url)
        body = None if self.down else self.index.get(str(publish.static_path(url)))
        if body is None:
            raise ProtocolError(f"GET {url} answered HTTP 404", status=404, url=url)
        return json.loads(body)


def world(*, cimd: bool = False) -> tuple[World, DocumentIndex, Hosted]:
    w = World()
    if cimd:
        fake = CimdAS(iat=w.fake.iat, now=w.fake.now)
        w.fake = fake
        w.reconciler.connections.http_factory = lambda settings, server: fake.http()  # type: ignore[attr-defined]
    index = DocumentIndex()
    hosted = Hosted(index)
    w.reconciler.documents = index
    w.reconciler.fetch = hosted
    return w, index, hosted


def secret_values(w: World) -> set[str]:
    record = w.record()
    values = {k.private_key.get_secret_value() for k in record.keys}
    if record.client_secret is not None:
        values.add(record.client_secret.get_secret_value())
    if record.registration_access_token is not None:
        values.add(record.registration_access_token.get_secret_value())
    return values


def test_key_pair_client_gets_its_private_key_and_key_id_in_the_secret_only() -> None:
    w, _, _ = world()
    w.add_client(keyPair={}, tokenEndpointAuthMethod="private_key_jwt")
    w.reconcile()
    creds = w.credentials()
    key = w.record().current_key()
    assert creds["private_key"] == key.private_key.get_secret_value() and creds["key_id"] == key.kid
    assert creds["private_key"].startswith("-----BEGIN")
    assert w.condition()["status"] == "True"
    visible = json.dumps(w.cluster.client()["status"]) + json.dumps(w.cluster.events)
    assert not [s for s in secret_values(w) if s in visible]


def test_key_names_follow_the_template_style() -> None:
    w, _, _ = world()
    w.add_client(keyPair={}, tokenEndpointAuthMethod="private_key_jwt", secretName="creds",
                 secretTemplate={"clientIdKey": "CLIENT_ID", "clientSecretKey": "CLIENT_SECRET"})
    w.reconcile()
    assert {"PRIVATE_KEY", "KEY_ID"} <= set(w.credentials("creds"))
    assert key_name(("private", "key"), "clientId") == "privateKey"
    assert key_name(("key", "id"), "client-id") == "key-id"
    assert key_name(("key", "id"), "client_id") == "key_id"


def test_a_secret_client_gets_no_key_entries() -> None:
    w, index, _ = world()
    w.add_client()
    w.reconcile()
    assert not {"private_key", "key_id"} & set(w.credentials())
    assert index.paths() == []


def test_jwks_is_served_and_unpublished_means_not_ready_with_an_early_requeue() -> None:
    w, index, hosted = world()
    hosted.down = True
    w.add_client(keyPair={}, tokenEndpointAuthMethod="private_key_jwt", jwksUri=JWKS_URL)
    w.reconcile()
    result = w.reconcile()
    ready = w.condition()
    assert (ready["status"], ready["reason"]) == ("False", "DocumentNotPublished")
    assert result.requeue_after == 15.0
    assert "DocumentNotPublished" in [e["reason"] for e in w.cluster.events]
    body = index.get("keys.example.com/billing/jwks.json")
    assert body is not None and json.loads(body) == w.record().public_jwks()
    assert "PRIVATE KEY" not in body.decode() and '"d"' not in body.decode()
    hosted.down = False
    result = w.reconcile()
    assert (w.condition()["status"], w.condition()["reason"]) == ("True", "InSync")
    assert result.requeue_after == 600
    assert JWKS_URL in hosted.urls


def test_cimd_document_is_served_then_withdrawn_with_the_client() -> None:
    w, index, _ = world(cimd=True)
    w.add_client(registration="cimd", clientIdUrl=CIMD_URL, tokenEndpointAuthMethod="none")
    w.reconcile()
    w.reconcile()
    assert (w.condition()["status"], w.condition()["reason"]) == ("True", "InSync")
    path = str(publish.static_path(CIMD_URL))
    assert path == "app.example.com/clients/agent.json"
    document = json.loads(index.get("App.example.com/clients/agent.json") or b"null")
    assert document["client_id"] == w.record().client_id
    assert not w.fake.clients  # nothing registered: the AS reads the document
    w.cluster.client()["metadata"]["deletionTimestamp"] = "2026-11-28T12:00:00Z"
    w.reconcile()
    assert index.get(path) is None


def test_a_path_two_clients_claim_differently_stays_with_the_older_one() -> None:
    index = DocumentIndex()
    older = {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z", "uid": "u-a"}}
    newer = {"metadata": {"creationTimestamp": "2026-02-01T00:00:00Z", "uid": "u-b"}}
    index.put(NS, "b", {JWKS_URL: {"keys": [{"kid": "b"}]}}, owner=newer)
    index.put(NS, "a", {JWKS_URL: {"keys": [{"kid": "a"}]}}, owner=older)
    assert json.loads(index.get("keys.example.com/billing/jwks.json") or b"null") == {"keys": [{"kid": "a"}]}
    refused = index.refusal(NS, "b")
    assert refused is not None and refused.reason == "DocumentPathTaken" and index.refusal(NS, "a") is None
    index.drop(NS, "a")
    assert json.loads(index.get("keys.example.com/billing/jwks.json") or b"null") == {"keys": [{"kid": "b"}]}


def test_the_endpoint_serves_json_and_404s_everything_else() -> None:
    index = DocumentIndex()
    index.put(NS, "a", {JWKS_URL: {"keys": [{"kid": "a"}]}})

    async def run() -> list[tuple[int, str, bytes]]:
        runner = await serve("127.0.0.1:0", documents=index)
        try:
            port = runner.addresses[0][1]
            out = []
            async with aiohttp.ClientSession() as session:
                for path in ("/documents/keys.example.com/billing/jwks.json", "/documents/keys.example.com/nope",
                             "/metrics"):
                    async with session.get(f"http://127.0.0.1:{port}{path}", allow_redirects=False) as response:
                        out.append((response.status, response.content_type, await response.read()))
            return out
        finally:
            await runner.cleanup()

    found, missing, metrics = asyncio.run(run())
    assert found[:2] == (200, "application/json") and json.loads(found[2]) == {"keys": [{"kid": "a"}]}
    assert missing[0] == 404 and metrics[0] == 404  # only what was asked for is served


@pytest.mark.parametrize("url", ["https://10.0.0.1/jwks.json", "https://169.254.169.254/latest/meta-data",
                                 "http://kubernetes.default.svc/x.json"])
def test_the_default_fetch_refuses_cluster_internal_targets(url: str) -> None:
    with pytest.raises(FetchRefused):
        guarded_fetch(url)


def test_a_tenant_document_url_on_an_internal_address_is_never_fetched() -> None:
    w = World()  # the operator's default, guarded fetch
    w.add_client(keyPair={}, tokenEndpointAuthMethod="private_key_jwt", jwksUri="https://10.0.0.1/jwks.json")
    w.reconcile()
    w.reconcile()
    ready = w.condition()
    assert (ready["status"], ready["reason"]) == ("False", "DocumentNotPublished")
    assert "10.0.0.1" in ready["message"]
