"""The ``kubernetes_secret`` option: the operator's credentials Secret, written by the Pulumi provider.

Rendering and writing are the shared Kubernetes layer's (:mod:`clientreg_kube.secrets`, over
:class:`~clientreg_kube.cluster.KubeCluster`), the operator's too: the same keys, template and
write-only-when-different rules. What differs is ownership: no object in the cluster owns the Secret, so
it is claimed through the ``clientreg.dev/owner`` annotation (a stable name of the Pulumi resource) and
labelled ``app.kubernetes.io/managed-by: clientreg-pulumi``, which also keeps it out of the operator's watch.

The transport is built inside each call from plain values (a kubeconfig path, a context name), so the
pickled provider never carries one. Imported only when a resource sets ``kubernetes_secret``: the
``kubernetes`` package is needed for that option only.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
from collections.abc import Iterator

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from clientreg.errors import ConfigurationError
from clientreg.record import RegistrationRecord
from clientreg_kube.cluster import Body, KubeCluster
from clientreg_kube.conventions import MANAGED_BY_LABEL
from clientreg_kube.secrets import (
    ClaimedSecretWriter,
    SecretConflict,
    claim,
    claimed_by,
    is_current,
    render_credentials,
)
from clientreg_kube.transport import KubeTransport, UnsupportedConfiguration

from .args import SecretPlace

#: The managed-by value of Secrets this provider writes (the operator's are ``clientreg-operator``).
MANAGED_BY = "clientreg-pulumi"
#: Seconds any one API request may take: an unreachable cluster must not hang `pulumi up`.
REQUEST_TIMEOUT = 30.0


class KubeSecretError(Exception):
    """The Secret could not be read, written or deleted; the message names it and says why."""


def render(record: RegistrationRecord, place: SecretPlace, owner: str) -> Body:
    """The Secret as the operator would render it, claimed by ``owner`` and labelled as ours."""
    body = render_credentials(record, place.template, name=place.name, namespace=place.namespace,
                              client_name=owner.rsplit("/", 1)[-1])
    body["metadata"]["labels"][MANAGED_BY_LABEL] = MANAGED_BY
    return claim(body, owner)


def _configuration(place: SecretPlace) -> k8s.Configuration:
    configuration = k8s.Configuration()
    try:
        k8s_config.load_kube_config(
            config_file=os.path.expanduser(place.kubeconfig) if place.kubeconfig else None,
            context=place.context, client_configuration=configuration)
    except (ConfigException, OSError) as exc:
        if place.kubeconfig or place.context:
            raise KubeSecretError(f"cannot load kubeconfig {place.kubeconfig or '(default)'}"
                                  f"{' context ' + place.context if place.context else ''}: {exc}") from None
        # No kubeconfig anywhere: running inside a Pod (a CI job in the cluster) uses its ServiceAccount.
        try:
            k8s_config.load_incluster_config(
                client_configuration=configuration)
        except ConfigException:
            raise KubeSecretError(f"no kubeconfig found ({exc}) and not running in a cluster: set "
                                  "kubernetes_secret.kubeconfig or KUBECONFIG") from None
    return configuration


@contextlib.contextmanager
def _cluster(place: SecretPlace, secret_values: list[str]) -> Iterator[KubeCluster]:
    configuration = _configuration(place)
    where = f"Secret {place.namespace}/{place.name}"
    try:
        # No request may hang `pulumi up`: every connect and read is bounded.
        transport = KubeTransport(configuration, timeout=REQUEST_TIMEOUT)
    except UnsupportedConfiguration as exc:
        raise KubeSecretError(f"kubeconfig {place.kubeconfig or '(default)'}: {exc}") from None
    try:
        yield KubeCluster(transport)
    except (SecretConflict, ConfigurationError) as exc:  # ConfigurationError: a name unfit for an API path
        raise KubeSecretError(str(exc)) from None
    except ApiException as exc:
        raise KubeSecretError(f"{where}: {_api_error(exc, secret_values)}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:  # refused, timed out, TLS, cut off, not JSON
        raise KubeSecretError(f"{where}: cannot reach the Kubernetes API server {configuration.host}: "
                              f"{_scrub(type(exc).__name__ + ': ' + str(exc), secret_values)}") from None
    finally:
        transport.close()


def _api_error(exc: ApiException, secret_values: list[str]) -> str:
    """HTTP status and the API server's message: the request body (the credentials) is never quoted."""
    message = ""
    with contextlib.suppress(ValueError, TypeError):
        message = str(json.loads(exc.body or "{}").get("message") or "")
    return _scrub(f"HTTP {exc.status} {exc.reason}" + (f": {message}" if message else ""), secret_values)


def _scrub(text: str, secret_values: list[str]) -> str:
    for value in secret_values:
        if value:
            text = text.replace(value, "***")
    return text[:500]


def _secret_values(record: RegistrationRecord | None) -> list[str]:
    if record is None:
        return []
    values = [v.get_secret_value() for v in (record.client_secret, record.registration_access_token) if v]
    return [v for v in values if len(v) >= 4]


def check_free(place: SecretPlace, owners: tuple[str, ...], record: RegistrationRecord | None = None) -> None:
    """Fail before the AS is asked anything when the Secret's name is taken by a Secret that is not ours."""
    with _cluster(place, _secret_values(record)) as cluster:
        ClaimedSecretWriter(cluster, owners).check_claim(cluster.get_secret(place.namespace, place.name),
                                                         place.namespace, place.name)


def publish(record: RegistrationRecord, place: SecretPlace, owners: tuple[str, ...]) -> bool:
    """Create or update the Secret for ``record``; True when something was written."""
    with _cluster(place, _secret_values(record)) as cluster:
        return bool(ClaimedSecretWriter(cluster, owners).publish_claimed(render(record, place, owners[0])))


def withdraw(place: SecretPlace, owners: tuple[str, ...]) -> str | None:
    """Delete the Secret if it is ours. A note when it was left alone (gone already, or someone else's)."""
    with _cluster(place, []) as cluster:
        existing = cluster.get_secret(place.namespace, place.name)
        if existing is None:
            return None
        if not ClaimedSecretWriter(cluster, owners).withdraw(place.namespace, place.name):
            return (f"Secret {place.namespace}/{place.name} is managed by {claimed_by(existing) or 'someone else'} "
                    "now: left in place")
        return None


def out_of_date(record: RegistrationRecord, place: SecretPlace, owner: str) -> str | None:
    """Why the Secret in the cluster is not what the resource last wrote (deleted, edited), or None."""
    with _cluster(place, _secret_values(record)) as cluster:
        existing = cluster.get_secret(place.namespace, place.name)
    where = f"Secret {place.namespace}/{place.name}"
    if existing is None:
        return f"{where} was deleted"
    owned_by = claimed_by(existing)
    if owned_by != owner:
        return f"{where} is now managed by {owned_by or 'someone else'}"
    if not is_current(existing, render(record, place, owner)):
        return f"{where} was changed"
    return None
