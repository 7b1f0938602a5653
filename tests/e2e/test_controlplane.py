"""Smoke test of the test control plane and Helm: what the operator's e2e tests rely on really works."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from support.kube import (
    HELM_VERSION,
    KUBERNETES_VERSION,
    ControlPlane,
    helm_env,
)

pytestmark = pytest.mark.e2e

# Unique, so that reruns against a long-lived cluster (KUBECONFIG=kind) do not collide.
NAMESPACE = f"smoke-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def plane(control_plane: ControlPlane) -> ControlPlane:
    # The session's plane (and `helm_binary`) come from conftest.py: a second plane would only
    # cost CI time.
    return control_plane


@pytest.fixture(scope="module")
def api(plane: ControlPlane) -> Iterator[client.ApiClient]:
    api = plane.api_client()
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    yield api
    with contextlib.suppress(ApiException):
        core.delete_namespace(NAMESPACE)
    api.close()


def _eventually(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s")


def _gone(read: Callable[[], object]) -> bool:
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def test_owner_reference_garbage_collection(plane: ControlPlane, api: client.ApiClient) -> None:
    if not plane.has_controller_manager:
        pytest.skip("no kube-controller-manager in KUBEBUILDER_ASSETS, so no garbage collector")
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map(
        NAMESPACE, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"), data={"a": "b"})
    )
    ref = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    core.create_namespaced_secret(
        NAMESPACE,
        client.V1Secret(metadata=client.V1ObjectMeta(name="owned", owner_references=[ref]), string_data={"k": "v"}),
    )
    core.delete_namespaced_config_map("owner", NAMESPACE)
    _eventually(
        lambda: _gone(lambda: core.read_namespaced_secret("owned", NAMESPACE)),
        "garbage collection of the Secret owned by the deleted ConfigMap",
    )


def test_service_account_rbac_is_enforced(plane: ControlPlane, api: client.ApiClient, tmp_path: Path) -> None:
    core = client.CoreV1Api(api)
    rbac = client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(
        NAMESPACE, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    rbac.create_namespaced_role(
        NAMESPACE,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="get-secrets"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["get"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        NAMESPACE,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader-get-secrets"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="get-secrets"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=NAMESPACE)],
        ),
    )
    core.create_namespaced_secret(
        NAMESPACE, client.V1Secret(metadata=client.V1ObjectMeta(name="readable"), string_data={"k": "v"})
    )

    from kubernetes import config

    kubeconfig = plane.service_account_kubeconfig(NAMESPACE, "reader", tmp_path / "reader.kubeconfig")
    as_reader = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        reader = client.CoreV1Api(as_reader)
        assert reader.read_namespaced_secret("readable", NAMESPACE).data["k"]
        with pytest.raises(ApiException) as denied:
            reader.list_namespaced_secret(NAMESPACE)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{NAMESPACE}:reader" in str(denied.value.body)
    finally:
        as_reader.close()


def test_server_reports_its_real_version(plane: ControlPlane, api: client.ApiClient) -> None:
    info = client.VersionApi(api).get_code()
    if plane.external or os.environ.get("KUBEBUILDER_ASSETS"):
        assert info.git_version.startswith("v1."), info
    else:
        # Proves the version ldflags reached the build (without them: v0.0.0-master).
        assert info.git_version == KUBERNETES_VERSION, info


def _chart(root: Path) -> Path:
    chart = root / "smoke-chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: smoke\nversion: 0.1.0\nappVersion: '1.0'\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: {{ .Release.Name }}-greeting\n"
        "data:\n"
        "  greeting: {{ .Values.greeting | quote }}\n"
    )
    return chart


def test_helm_version_template_and_install(
    plane: ControlPlane, api: client.ApiClient, helm_binary: Path, tmp_path: Path
) -> None:
    env = helm_env(plane.env(), tmp_path / "helm-home")

    def run(*args: str) -> str:
        done = subprocess.run([str(helm_binary), *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"helm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    assert run("version", "--short").strip() == HELM_VERSION

    chart = _chart(tmp_path)
    rendered = run("template", "demo", str(chart), "--set", "greeting=hi there")
    assert "name: demo-greeting" in rendered
    assert 'greeting: "hi there"' in rendered

    run("install", "demo", str(chart), "--namespace", NAMESPACE, "--wait", "--timeout", "60s")
    cm = client.CoreV1Api(api).read_namespaced_config_map("demo-greeting", NAMESPACE)
    assert cm.data == {"greeting": "hello"}
    assert "demo" in run("list", "--namespace", NAMESPACE, "--short").split()


def test_namespace_deletion_finishes(plane: ControlPlane, api: client.ApiClient) -> None:
    if not plane.has_controller_manager:
        pytest.skip("no kube-controller-manager in KUBEBUILDER_ASSETS, so namespaces never finish deleting")
    core = client.CoreV1Api(api)
    doomed = f"{NAMESPACE}-doomed"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=doomed)))
    core.create_namespaced_config_map(
        doomed, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="content"), data={"a": "b"})
    )
    core.delete_namespace(doomed)
    # Finishing needs the namespace controller to empty it and remove the kubernetes finalizer.
    _eventually(lambda: _gone(lambda: core.read_namespace(doomed)), f"deletion of namespace {doomed}")
