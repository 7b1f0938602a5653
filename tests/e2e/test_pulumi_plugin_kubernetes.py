"""The plugin's ``kubernetesSecret`` option from a Pulumi YAML program, against the real test API server: the
credentials Secret is written with the client, owned by the resource (the same owner name as the dynamic
provider's), and deleted with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from support.cache import unavailable
from support.kube import ControlPlane
from support.kube_secrets import core_api_in, data_of, read_secret
from support.pulumi_hosts import HostUnavailable, ensure_yaml_host, project_env
from support.pulumi_project import ProjectRun

from clientreg.devserver import DevServer, DevServerSettings

pytestmark = pytest.mark.e2e

NAMESPACE = "pulumi-plugin-secrets"


@pytest.fixture(scope="module")
def core(control_plane: ControlPlane) -> Iterator[client.CoreV1Api]:
    with core_api_in(control_plane, NAMESPACE) as core:
        yield core


def secret_data(core: client.CoreV1Api, name: str) -> tuple[dict[str, str], dict[str, str]] | None:
    found = read_secret(core, name, NAMESPACE)
    return None if found is None else (data_of(found), dict(found.metadata.annotations or {}))


def test_yaml_program_publishes_the_credentials_in_a_secret(pulumi_bin: Path, control_plane: ControlPlane,
                                                            core: client.CoreV1Api, tmp_path: Path) -> None:
    try:
        env = project_env(tmp_path, ensure_yaml_host())
    except HostUnavailable as exc:
        unavailable("the Pulumi YAML language host", str(exc))
    folder = tmp_path / "project"
    folder.mkdir()
    program = {"name": "clientreg-kube", "runtime": "yaml", "resources": {"api": {
        "type": "clientreg:index:OAuthClient", "properties": {
            "clientName": "API", "grantTypes": ["client_credentials"],
            "kubernetesSecret": {"name": "api-oauth", "namespace": NAMESPACE,
                                 "kubeconfig": str(control_plane.kubeconfig), "clientIdKey": "CLIENT_ID"}}}},
        "outputs": {"clientId": "${api.clientId}", "clientSecret": "${api.clientSecret}"}}
    (folder / "Pulumi.yaml").write_text(json.dumps(program))
    run = ProjectRun(folder, tmp_path, base_env=env)
    with DevServer(DevServerSettings()) as server:
        run("stack", "init", "dev", with_stack=False)
        run("config", "set", "clientreg:issuer", server.issuer)
        run("up", "--yes")
        out = run.outputs()
        published = secret_data(core, "api-oauth")
        assert published is not None
        data, annotations = published
        assert data["CLIENT_ID"] == out["clientId"] and data["client_secret"] == out["clientSecret"]
        assert annotations["clientreg.dev/owner"] == "pulumi:clientreg-kube/dev/api"
        run("destroy", "--yes")
        assert secret_data(core, "api-oauth") is None
