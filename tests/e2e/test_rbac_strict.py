"""secrets.watchCredentials=false end to end: a release whose RBAC has no list/watch on Secrets at all, and an
operator (--no-watch-credentials) under exactly that ServiceAccount that still registers, publishes and heals.

Proves the stricter mode is sufficient (a Secret watch would fail with 403 forever if anything still asked
for one) and that healing then happens at the drift check instead of through the watch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from support.operator_process import OperatorProcess

pytestmark = pytest.mark.e2e

RELEASE, HOME, SERVED = "strict", "clientreg-strict", "strict-tenant"
SHARD = ("test.clientreg.dev/shard", "strict")
M2M = {"grantTypes": ["client_credentials"], "tokenEndpointAuthMethod": "client_secret_basic"}


@pytest.fixture(scope="module")
def strict_release(helm: Any, kube: Any, control_plane: Any, chart_installed: str, chart_path: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The chart installed a second time in the strict mode, serving one namespace; its SA's kubeconfig."""
    kube.namespace(SERVED)
    helm("install", RELEASE, str(chart_path), "--namespace", HOME, "--create-namespace",
         "--set", "secrets.watchCredentials=false", "--set", f"watchNamespaces={{{SERVED}}}",
         "--set", f"leaderElection.leaseName={RELEASE}", "--set", "image.repository=example.invalid/clientreg-operator")
    try:
        yield control_plane.service_account_kubeconfig(HOME, f"{RELEASE}-clientreg",
                                                       tmp_path_factory.mktemp("strict") / "kubeconfig")
    finally:
        helm("uninstall", RELEASE, "--namespace", HOME)


def test_the_strict_release_cannot_list_or_watch_any_secret(strict_release: Path) -> None:
    api = config.new_client_from_config(config_file=str(strict_release))
    auth = client.AuthorizationV1Api(api)

    def can(verb: str, namespace: str) -> bool:
        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(verb=verb, resource="secrets", namespace=namespace)))
        status = auth.create_self_subject_access_review(review).status
        return bool(status is not None and status.allowed)

    try:
        assert can("get", SERVED) and can("create", SERVED) and can("update", SERVED)
        for verb in ("list", "watch"):
            assert not can(verb, SERVED), f"{verb} on Secrets must be dropped in the strict mode"
        assert not can("get", "default") and not can("get", "kube-system")
    finally:
        api.close()


def test_an_operator_without_the_secret_watch_registers_and_heals_at_the_drift_check(
        strict_release: Path, kube: Any, dev_server: Any, operator_logs: Path, eventually: Any) -> None:
    operator = OperatorProcess(strict_release, operator_logs, identity="strict", namespaces=(SERVED,), extra=(
        "--no-watch-credentials", "--label-selector", f"{SHARD[0]}={SHARD[1]}", "--lease-name", RELEASE,
        # This release's namespace holds its Lease and the platform's Secrets; nothing is granted elsewhere.
        "--lease-namespace", HOME, "--cluster-resource-namespace", HOME, "--records-namespace", HOME)).start()
    try:
        eventually(operator.is_leader, "the strict operator leading")
        kube.secret(SERVED, "dev-iat", {"token": "e2e-dev-iat"})
        with contextlib.suppress(client.exceptions.ApiException):
            kube.server(SERVED, "dev", {"issuer": dev_server.issuer,
                                        "initialAccessToken": {"secretKeyRef": {"name": "dev-iat", "key": "token"}}})
        kube.custom.create_namespaced_custom_object("clientreg.dev", "v1alpha1", SERVED, "oauthclients", {
            "apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
            "metadata": {"name": "calm", "labels": {SHARD[0]: SHARD[1]}},
            "spec": {"serverRef": {"name": "dev"}, **M2M}})
        kube.wait_ready(SERVED, "calm")
        good = eventually(lambda: kube.read_secret(SERVED, "calm-oauth"), "credentials Secret")
        core = client.CoreV1Api(kube.api)
        core.patch_namespaced_secret("calm-oauth", SERVED, {"stringData": {"client_secret": "tampered"}},
                                     _content_type="application/merge-patch+json")
        eventually(lambda: kube.read_secret(SERVED, "calm-oauth") == good, "edited Secret restored by the drift check")
        core.delete_namespaced_secret("calm-oauth", SERVED)
        eventually(lambda: kube.read_secret(SERVED, "calm-oauth") == good, "deleted Secret restored by the drift check")
        assert "forbidden" not in operator.log_text().lower(), operator.log_tail()
    finally:
        # Deleted while the operator still runs: its finalizer goes with the client at the AS.
        kube.delete_client(SERVED, "calm")
        with contextlib.suppress(pytest.fail.Exception):
            eventually(lambda: kube.get_client(SERVED, "calm") is None, "the strict client deleted")
        operator.stop()
