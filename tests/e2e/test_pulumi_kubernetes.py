"""``OAuthClient(kubernetes_secret=...)`` driven by the real Pulumi engine against the real test API server
and the dev AS: the credentials Secret follows create, rotation, out-of-band deletion and edits, and destroy.

One stack, one control plane (the session's). Assertions are about what the cluster, the AS and the state
hold, never about timings.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pulumi
import pytest
from clientreg_pulumi import KubernetesSecretArgs, OAuthClient
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pulumi import automation as auto
from pydantic import SecretStr
from support.kube import ControlPlane
from support.kube_secrets import core_api_in, data_of
from support.kube_secrets import read_secret as read_namespaced
from support.pulumi_engine import inline_stack

from clientreg.devserver import DevServer, DevServerSettings
from clientreg.http import HttpClient
from clientreg.record import RegistrationRecord
from clientreg.tokens import client_credentials_token

pytestmark = pytest.mark.e2e

RESOURCE_TYPE = "pulumi-python:dynamic/clientreg:OAuthClient"
NAMESPACE = "pulumi-secrets"
SECRET_NAME = "api-oauth"
PROJECT, STACK_NAME = "clientreg-kubernetes", "dev"
OWNER = f"pulumi:{PROJECT}/{STACK_NAME}/api"


@pytest.fixture(scope="module")
def core(control_plane: ControlPlane) -> Iterator[client.CoreV1Api]:
    with core_api_in(control_plane, NAMESPACE) as core:
        yield core


def read_secret(core: client.CoreV1Api) -> client.V1Secret | None:
    return read_namespaced(core, SECRET_NAME, NAMESPACE)


def token_works(http: HttpClient, data: dict[str, str]) -> bool:
    record = RegistrationRecord(client_id=data["CLIENT_ID"], client_secret=SecretStr(data["CLIENT_SECRET"]),
                                token_endpoint=data["token_endpoint"])
    return bool(client_credentials_token(http, record).access_token.get_secret_value())


def clients_at(server: DevServer) -> set[str]:
    return set(httpx.get(f"{server.dev_url}/clients", timeout=10).json())


def changes(counts: dict[Any, int] | None) -> dict[str, int]:
    named = {str(getattr(kind, "value", kind)): count for kind, count in (counts or {}).items()}
    return {kind: count for kind, count in named.items() if kind != "same"}


def state_of(stack: auto.Stack) -> dict[str, Any]:
    deployment = stack.export_stack().deployment or {}
    found = [r for r in deployment.get("resources", []) if r["type"] == RESOURCE_TYPE]
    return found[0]["outputs"] if found else {}


def backend_text(state_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (state_dir / "backend").rglob("*") if p.is_file())


def test_secret_follows_the_client(pulumi_bin: Path, control_plane: ControlPlane, core: client.CoreV1Api,
                                   tmp_path: Path) -> None:
    iat = secrets.token_urlsafe(18)
    server = DevServer(DevServerSettings(initial_access_token=iat)).start()
    http = HttpClient()
    knobs: dict[str, Any] = {"rotation_trigger": None}
    kubeconfig = str(control_plane.kubeconfig)

    def program() -> None:
        api = OAuthClient(
            "api", issuer=server.issuer, client_name="API", grant_types=["client_credentials"], response_types=[],
            initial_access_token=iat, rotation_trigger=knobs["rotation_trigger"], grace_period="1h",
            kubernetes_secret=KubernetesSecretArgs(
                name=SECRET_NAME, namespace=NAMESPACE, kubeconfig=kubeconfig,
                client_id_key="CLIENT_ID", client_secret_key="CLIENT_SECRET", labels={"team": "payments"},
                extra_data={"config.json": '{"id": "{clientId}", "token_url": "{tokenEndpoint}"}'}))
        pulumi.export("client_id", api.client_id)
        pulumi.export("client_secret", api.client_secret)

    # A Secret of the same name that this resource does not manage: never taken over, nothing registered.
    core.create_namespaced_secret(NAMESPACE, client.V1Secret(
        metadata=client.V1ObjectMeta(name=SECRET_NAME), string_data={"CLIENT_ID": "someone-else"}))
    stack = inline_stack(PROJECT, STACK_NAME, program, tmp_path)
    try:
        with pytest.raises(auto.CommandError) as refused:
            stack.up()
        assert f"Secret {NAMESPACE}/{SECRET_NAME} already exists and is not managed by {OWNER}" in \
            str(refused.value)
        assert clients_at(server) == set()
        foreign = read_secret(core)
        assert foreign is not None and data_of(foreign) == {"CLIENT_ID": "someone-else"}
        core.delete_namespaced_secret(SECRET_NAME, NAMESPACE)

        # up: the Secret exists, shaped by the template, with credentials that work.
        up = stack.up()
        assert changes(up.summary.resource_changes) == {"create": 1}
        client_id, client_secret = up.outputs["client_id"].value, up.outputs["client_secret"].value
        assert up.outputs["client_secret"].secret
        created = read_secret(core)
        assert created is not None
        data = data_of(created)
        assert data == {"CLIENT_ID": client_id, "CLIENT_SECRET": client_secret, "issuer": server.issuer,
                        "token_endpoint": server.token_endpoint,
                        "config.json": f'{{"id": "{client_id}", "token_url": "{server.token_endpoint}"}}'}
        labels, annotations = created.metadata.labels or {}, created.metadata.annotations or {}
        assert labels["app.kubernetes.io/managed-by"] == "clientreg-pulumi" and labels["team"] == "payments"
        assert labels["clientreg.dev/role"] == "credentials"
        assert annotations["clientreg.dev/owner"] == OWNER
        assert token_works(http, data)
        assert state_of(stack)["status"] == "InSync"
        assert client_secret not in backend_text(tmp_path)

        # Rotation: the same up writes the new credentials into the Secret.
        knobs["rotation_trigger"] = "r1"
        rotated = stack.up()
        assert changes(rotated.summary.resource_changes) == {"update": 1}
        new_id, new_secret = rotated.outputs["client_id"].value, rotated.outputs["client_secret"].value
        assert new_id != client_id
        data = data_of(read_secret(core))  # type: ignore[arg-type]
        assert (data["CLIENT_ID"], data["CLIENT_SECRET"]) == (new_id, new_secret)
        assert token_works(http, data)

        # Deleted in the cluster: refresh notices, up restores it.
        core.delete_namespaced_secret(SECRET_NAME, NAMESPACE)
        refreshed = stack.refresh()
        assert changes(refreshed.summary.resource_changes) == {"update": 1}
        assert state_of(stack)["status"] == "KubernetesSecretDrift"
        assert "was deleted" in state_of(stack)["status_message"]
        restored = stack.up()
        assert changes(restored.summary.resource_changes) == {"update": 1}
        assert restored.outputs["client_id"].value == new_id  # no rotation, just the Secret
        data = data_of(read_secret(core))  # type: ignore[arg-type]
        assert (data["CLIENT_ID"], data["CLIENT_SECRET"]) == (new_id, new_secret)
        assert state_of(stack)["status"] == "InSync"

        # Edited in the cluster: the same.
        core.patch_namespaced_secret(SECRET_NAME, NAMESPACE, {"stringData": {"CLIENT_SECRET": "tampered"}})
        stack.refresh()
        assert state_of(stack)["status"] == "KubernetesSecretDrift"
        assert "was changed" in state_of(stack)["status_message"]
        stack.up()
        assert data_of(read_secret(core))["CLIENT_SECRET"] == new_secret  # type: ignore[arg-type]
        assert new_secret not in backend_text(tmp_path) and "tampered" not in backend_text(tmp_path)

        # destroy: the Secret goes with the client.
        destroyed = stack.destroy()
        assert changes(destroyed.summary.resource_changes) == {"delete": 2}  # the client and the Stack
        assert read_secret(core) is None
        assert clients_at(server) == set()
    finally:
        with contextlib.suppress(auto.CommandError):
            if state_of(stack):
                stack.destroy()
        with contextlib.suppress(ApiException):
            core.delete_namespaced_secret(SECRET_NAME, NAMESPACE)
        http.close()
        server.stop()
