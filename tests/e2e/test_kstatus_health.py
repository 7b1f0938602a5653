"""Flux-style health checks on real objects: the real kstatus library (sigs.k8s.io/cli-utils, built by
tests/support/kstatus_tool.py) reads OAuthClients and AuthorizationServers from the real API server.

A client whose spec passes admission but can never work (a redirect host the server's
allowedRedirectHosts refuses: NotPermitted) must be Failed, so a health check fails at once instead of
waiting for its timeout; the edit that fixes it makes it Current, like a good client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.cache import unavailable
from support.kstatus_tool import compute, ensure_kstatus
from support.kube import ComponentUnavailable
from support.operator_process import OperatorProcess

pytestmark = pytest.mark.e2e

GROUP, VERSION = "clientreg.dev", "v1alpha1"
Kube = Any  # tests/e2e/conftest.py; this folder is not a package
ALLOWED_HOST = "app.kstatus.example.com"
WEB = {"grantTypes": ["authorization_code"], "responseTypes": ["code"],
       "tokenEndpointAuthMethod": "client_secret_basic"}


@pytest.fixture(scope="module")
def kstatus() -> Path:
    try:
        return ensure_kstatus()
    except ComponentUnavailable as exc:
        unavailable("kstatus (sigs.k8s.io/cli-utils)", str(exc))


@pytest.fixture
def namespace(kube: Kube, dev_server: Any) -> str:
    namespace = kube.namespace("kstatus-health")
    kube.secret(namespace, "dev-iat", {"token": "e2e-dev-iat"})
    kube.server(namespace, "dev", {"issuer": dev_server.issuer, "allowedRedirectHosts": [ALLOWED_HOST],
                                   "initialAccessToken": {"secretKeyRef": {"name": "dev-iat", "key": "token"}}})
    return namespace


def _verdict(kstatus: Path, body: dict[str, Any] | None) -> dict[str, str] | None:
    return compute(kstatus, body)[0] if body else None


def test_kstatus_fails_a_refused_redirect_and_passes_a_good_client_and_the_fix(
        kube: Kube, operator: OperatorProcess, namespace: str, kstatus: Path, eventually: Any) -> None:
    kube.oauth_client(namespace, "good", {"serverRef": {"name": "dev"}, **WEB,
                                          "redirectUris": [f"https://{ALLOWED_HOST}/callback"]})
    kube.oauth_client(namespace, "refused", {"serverRef": {"name": "dev"}, **WEB,
                                             "redirectUris": ["https://elsewhere.kstatus.example.net/callback"]})
    try:
        def settled(name: str, want: str) -> dict[str, str] | None:
            verdict = _verdict(kstatus, kube.get_client(namespace, name))
            return verdict if verdict and verdict.get("status") == want else None

        eventually(lambda: settled("good", "Current"), "kstatus Current for the good client", timeout=120)
        kube.wait_ready(namespace, "good")  # Current means what it says: Ready, InSync, this generation

        failed = eventually(lambda: settled("refused", "Failed"), "kstatus Failed for the refused redirect",
                            timeout=120)
        ready = kube.condition(namespace, "refused")
        assert ready is not None and (ready["status"], ready["reason"]) == ("False", "NotPermitted")
        assert failed["message"] == ready["message"] and "allowedRedirectHosts" in failed["message"]

        server = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "authorizationservers", "dev")
        assert _verdict(kstatus, server) == {"status": "Current", "message": "Resource is Ready"}

        # The edit a person makes to fix the spec: InProgress or straight to Current, never Failed again.
        kube.patch_client(namespace, "refused", {"spec": {"redirectUris": [f"https://{ALLOWED_HOST}/other"]}})
        eventually(lambda: settled("refused", "Current"), "kstatus Current once the redirect is fixed", timeout=120)
        body = kube.get_client(namespace, "refused")
        assert body is not None and body["status"]["observedGeneration"] == body["metadata"]["generation"] == 2
        assert {c["type"] for c in body["status"]["conditions"]} == {"Ready", "Synced"}
    finally:
        kube.delete_client(namespace, "good")
        kube.delete_client(namespace, "refused")
