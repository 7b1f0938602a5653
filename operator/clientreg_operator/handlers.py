"""Kopf handlers: every trigger ends in :class:`~clientreg_operator.runtime.Runtime`.

Registered into an explicit registry (not at import time) so the drift interval, the label selector
and the namespaces come from the command line, and tests can build as many operators as they like.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from clientreg.spec import GROUP, VERSION

from .conventions import (
    AUTHORIZATIONSERVERS,
    CLIENT_FINALIZER,
    CLUSTERAUTHORIZATIONSERVERS,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OAUTHCLIENTS,
)
from .runtime import Runtime
from .selectors import LabelSelector


def settings_for(*, label_selector: str | None) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = CLIENT_FINALIZER
    # Kopf's bookkeeping in annotations under our own prefix; status belongs to the reconciler alone.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    # Events are posted by the reconciler, one per transition; kopf's per-handler events would be noise.
    settings.posting.enabled = False
    # No CRD/namespace scanning: fewer permissions, and the chart installs the CRDs before the operator.
    settings.scanning.disabled = True
    settings.peering.standalone = True  # one active replica through the Lease instead
    # The only Secrets the operator watches (and so holds in memory) are its own.
    settings.watching.label_selectors["", "v1", "secrets"] = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    if label_selector:
        settings.watching.label_selectors[GROUP, OAUTHCLIENTS] = label_selector
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    return settings


def register(registry: kopf.OperatorRegistry, runtime: Runtime, *, label_selector: str | None = None,
             cluster_resource_namespace: str = "clientreg") -> None:
    shard = LabelSelector.parse(label_selector)

    @kopf.on.login(registry=registry, id="login")
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as the reconciler's client: in-cluster ServiceAccount, else $KUBECONFIG.
        return kopf.login_via_client(**kwargs)

    # Explicit ids: kopf keys its bookkeeping annotations by them (clientreg.dev/reconcile, …).
    @kopf.on.resume(GROUP, VERSION, OAUTHCLIENTS, registry=registry, id="reconcile")
    @kopf.on.create(GROUP, VERSION, OAUTHCLIENTS, registry=registry, id="reconcile")
    @kopf.on.update(GROUP, VERSION, OAUTHCLIENTS, registry=registry, id="reconcile")
    async def client_changed(namespace: str, name: str, **_: Any) -> None:
        await runtime.reconcile(namespace, name)

    @kopf.on.delete(GROUP, VERSION, OAUTHCLIENTS, registry=registry, id="delete")
    async def client_deleted(namespace: str, name: str, **_: Any) -> None:
        result = await runtime.reconcile(namespace, name)
        if not result.finished:
            # Kopf keeps the finalizer and calls again: the client still exists at the AS.
            raise kopf.TemporaryError(f"client not deleted yet ({result.reason})",
                                      delay=result.requeue_after or 30)
        runtime.forget(namespace, name)

    @kopf.daemon(GROUP, VERSION, OAUTHCLIENTS, registry=registry, id="schedule", cancellation_timeout=1.0)
    async def client_schedule(namespace: str, name: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
        # Drift checks, rotations ahead of expiry, the end of grace periods, retries after failures.
        await runtime.keep_on_schedule(namespace, name, stopped.wait(), stopped.is_set)

    @kopf.on.event("", "v1", "secrets", registry=registry, id="owned-secret",
                   labels={MANAGED_BY_LABEL: MANAGED_BY})
    async def owned_secret_changed(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type not in ("MODIFIED", "DELETED"):
            return  # ADDED is our own write; the initial listing is covered by the resume handlers
        owner = next((ref for ref in body.get("metadata", {}).get("ownerReferences") or []
                      if ref.get("kind") == "OAuthClient" and ref.get("controller")), None)
        if owner is None:
            return
        namespace = body["metadata"]["namespace"]
        if not shard.everything:
            client = await _client_labels(runtime, namespace, owner["name"])
            if client is None or not shard.matches(client):
                return
        await runtime.heal(namespace, owner["name"])


    for plural in (AUTHORIZATIONSERVERS, CLUSTERAUTHORIZATIONSERVERS):
        @kopf.on.resume(GROUP, VERSION, plural, registry=registry, id="server-status")
        @kopf.on.create(GROUP, VERSION, plural, registry=registry, id="server-status")
        @kopf.on.update(GROUP, VERSION, plural, registry=registry, id="server-status")
        async def server_changed(body: kopf.Body, **_: Any) -> None:
            from .servers import check_server

            error = await asyncio.to_thread(check_server, runtime.reconciler.cluster, dict(body),
                                            cluster_resource_namespace=cluster_resource_namespace)
            if error is not None:
                # Kopf retries with this delay; a later Secret or a reachable server turns it Ready.
                raise kopf.TemporaryError(str(error), delay=30)


async def _client_labels(runtime: Runtime, namespace: str, name: str) -> dict[str, str] | None:
    body = await asyncio.to_thread(runtime.reconciler.cluster.get_client, namespace, name)
    if body is None:
        return None
    labels: dict[str, str] = body.get("metadata", {}).get("labels") or {}
    return labels
