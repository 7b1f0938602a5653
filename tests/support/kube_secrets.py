"""Reading the Secrets a front end publishes, on the test control plane (support.kube.ControlPlane)."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from support.kube import ControlPlane


@contextlib.contextmanager
def core_api_in(control_plane: ControlPlane, namespace: str) -> Iterator[client.CoreV1Api]:
    """The admin's CoreV1Api, with ``namespace`` created (or already there)."""
    api = control_plane.api_client()
    core = client.CoreV1Api(api)
    with contextlib.suppress(ApiException):
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        yield core
    finally:
        api.close()


def read_secret(core: client.CoreV1Api, name: str, namespace: str) -> client.V1Secret | None:
    """The Secret, or None when there is none."""
    try:
        return core.read_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def data_of(secret: client.V1Secret) -> dict[str, str]:
    """The Secret's data, decoded."""
    return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}
