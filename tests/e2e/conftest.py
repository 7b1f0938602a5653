"""Shared e2e fixtures: one control plane per session, the chart installed with Helm, the operator as a
process under the chart's ServiceAccount, and real authorization servers on loopback."""

from __future__ import annotations

import base64
import contextlib
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from support.attacks import TALLY
from support.cache import unavailable
from support.kube import ComponentUnavailable, ControlPlane, ensure_helm, helm_env, skip_unless_ci
from support.operator_process import (
    CHART,
    OPERATOR_NAMESPACE,
    RELEASE,
    SERVICE_ACCOUNT,
    OperatorProcess,
    install_chart,
)
from support.pulumi_engine import PulumiUnavailable, ensure_pulumi

GROUP, VERSION = "clientreg.dev", "v1alpha1"
T = TypeVar("T")
#: OAuthClients carrying this label belong to a test module's own operator (tests/e2e/test_operator_faults.py):
#: the session's operators serve only OAuthClients without it (server-side filtered watch).
SHARD_LABEL = "test.clientreg.dev/shard"
PRIMARY_SHARD = ("--label-selector", f"!{SHARD_LABEL}")


def eventually(check: Callable[[], T | None], what: str, timeout: float = 60.0, interval: float = 0.25) -> T:
    """Poll until ``check`` returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (ApiException, httpx.HTTPError, KeyError, AssertionError) as exc:
            last_error = exc
        time.sleep(interval)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s" + (f" (last error: {last_error})"
                                                                   if last_error else ""))


@pytest.fixture(scope="session")
def pulumi_bin() -> Path:
    """The real Pulumi CLI, built once into the cache (every Pulumi e2e module shares it)."""
    try:
        return Path(ensure_pulumi())
    except PulumiUnavailable as exc:
        unavailable("the Pulumi engine", str(exc))


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    try:
        with ControlPlane() as cp:
            yield cp
    except ComponentUnavailable as exc:
        skip_unless_ci(str(exc))


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    try:
        return ensure_helm()
    except ComponentUnavailable as exc:
        skip_unless_ci(str(exc))


@pytest.fixture(scope="session")
def admin(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    api = control_plane.api_client()
    yield api
    api.close()


class Helm:
    def __init__(self, binary: Path, env: dict[str, str]) -> None:
        self.binary, self.env = binary, env

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result


@pytest.fixture(scope="session")
def helm(helm_binary: Path, control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_binary, helm_env(control_plane.env(), tmp_path_factory.mktemp("helm-home")))


@pytest.fixture(scope="session")
def chart_installed(helm: Helm, admin: client.ApiClient) -> str:
    install_chart(helm, admin)
    return RELEASE


@pytest.fixture(scope="session")
def operator_kubeconfig(control_plane: ControlPlane, chart_installed: str,
                        tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Credentials of the chart's ServiceAccount: the operator gets exactly what the chart's RBAC grants."""
    return control_plane.service_account_kubeconfig(OPERATOR_NAMESPACE, SERVICE_ACCOUNT,
                                                    tmp_path_factory.mktemp("sa") / "kubeconfig")


@pytest.fixture(scope="session")
def operator_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("operator-logs")


@pytest.fixture(scope="session")
def operator(operator_kubeconfig: Path, operator_logs: Path) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(operator_kubeconfig, operator_logs, identity="primary", extra=PRIMARY_SHARD).start()
    eventually(proc.is_leader, "the operator leading", timeout=60)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def dev_server() -> Iterator[Any]:
    from clientreg.devserver import DevServer, DevServerSettings

    with DevServer(DevServerSettings(port=0, initial_access_token="e2e-dev-iat")) as server:
        yield server


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[Any]:
    from support.oidc_provider import running_oidc_provider

    with running_oidc_provider(initial_access_token="e2e-op-iat") as peer:
        yield peer


class Kube:
    """Small admin-side helpers for the scenarios."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def namespace(self, name: str) -> str:
        with contextlib.suppress(ApiException):
            self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        return name

    def secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
        try:
            self.core.create_namespaced_secret(namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.replace_namespaced_secret(name, namespace, body)

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            found = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (found.data or {}).items()}

    def server(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "authorizationservers", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "AuthorizationServer",
            "metadata": {"name": name}, "spec": spec})

    def oauth_client(self, namespace: str, name: str, spec: dict[str, Any],
                     annotations: dict[str, str] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "oauthclients", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "OAuthClient",
                "metadata": {"name": name, "annotations": annotations or {}}, "spec": spec})
        return result

    def get_client(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace,
                                                                             "oauthclients", name)
            return found
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_client(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "oauthclients", name, patch,
                                                   _content_type="application/merge-patch+json")

    def delete_client(self, namespace: str, name: str) -> None:
        with contextlib.suppress(ApiException):
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "oauthclients", name)

    def condition(self, namespace: str, name: str, type_: str = "Ready") -> dict[str, Any] | None:
        body = self.get_client(namespace, name) or {}
        return next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)

    def wait_ready(self, namespace: str, name: str, timeout: float = 90) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            body = self.get_client(namespace, name)
            cond = self.condition(namespace, name)
            if body and cond and cond["status"] == "True" and cond["reason"] == "InSync" and \
                    body["status"].get("observedGeneration") == body["metadata"]["generation"]:
                return body
            return None
        return eventually(ready, f"OAuthClient {namespace}/{name} Ready", timeout=timeout)

    def events(self, namespace: str, name: str) -> list[Any]:
        found = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        return list(found.items)


@pytest.fixture(scope="session")
def kube(admin: client.ApiClient) -> Kube:
    return Kube(admin)


@pytest.fixture(scope="session")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="clientreg-e2e-") as folder:
        yield Path(folder)


# Test modules here are not a package (rootdir import mode), so they reach these helpers as fixtures.

@pytest.fixture(name="eventually", scope="session")
def eventually_fixture() -> Callable[..., Any]:
    return eventually


@pytest.fixture(scope="session")
def operator_factory(operator_kubeconfig: Path, operator_logs: Path) -> Callable[[str], OperatorProcess]:
    """Starts another operator process (a second replica) under the same identity and Lease."""
    def start(identity: str) -> OperatorProcess:
        return OperatorProcess(operator_kubeconfig, operator_logs, identity=identity, extra=PRIMARY_SHARD).start()
    return start


@pytest.fixture(scope="session")
def chart_path() -> Path:
    return CHART


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The attack tally of tests/e2e/test_tenancy.py (docs/reliability.md quotes it)."""
    lines = TALLY.lines()
    if lines:
        terminalreporter.section("tenancy attacks")
        for line in lines:
            terminalreporter.write_line(line)
