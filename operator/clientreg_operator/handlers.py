"""Kopf handlers: every trigger ends in :class:`~clientreg_operator.runtime.Runtime`.

Registered into an explicit registry (not at import time) so the drift interval, the label selector
and the namespaces come from the command line, and tests can build as many operators as they like.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from clientreg.resolve import DEFAULT_CLUSTER_RESOURCE_NAMESPACE
from clientreg.spec import GROUP, VERSION
from clientreg_kube.conventions import (
    AUTHORIZATIONSERVERS,
    CLIENT_ANNOTATION,
    CLIENT_FINALIZER,
    CLUSTERAUTHORIZATIONSERVERS,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OAUTHCLIENTS,
    ROLE_LABEL,
    ROLE_RECORD,
    ROTATE_ANNOTATION,
)

from .config import DEFAULT_ADDRESS_POLICIES, ServerAddressPolicies
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
    # kopf starts one worker per object with events and keeps it until it has been idle for idle_timeout. A
    # burst (1,000 new OAuthClients) would hold a worker, its bodies and tasks per object at once; reconciles
    # run on a fixed pool of threads anyway. A slot is busy for the object's events plus idle_timeout, so the
    # limit caps kopf at QUEUE_WORKERS / idle_timeout objects per second: far above what the API server
    # sustains (~12 new OAuthClients/s in bench/converge.py), where 32 slots and kopf's 5 s halved throughput.
    settings.queueing.worker_limit = QUEUE_WORKERS
    settings.queueing.idle_timeout = 1.0
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    return settings


def connection_info(configuration: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from a configured kubernetes client (``kubernetes.client.Configuration``)."""
    header = (configuration.get_api_key_with_prefix("BearerToken")
              or configuration.get_api_key_with_prefix("authorization"))
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return kopf.ConnectionInfo(server=configuration.host, ca_path=configuration.ssl_ca_cert,
                               insecure=not configuration.verify_ssl, scheme=scheme, token=token,
                               certificate_path=configuration.cert_file, private_key_path=configuration.key_file,
                               username=configuration.username or None, password=configuration.password or None)


#: kopf's per-object workers at once (its default is unbounded).
QUEUE_WORKERS = 64
#: Connections kopf may open besides its watch streams (patches of finalizers and bookkeeping annotations).
REQUEST_CONNECTIONS = 8


def limited_session(info: kopf.ConnectionInfo, *, watch_streams: int) -> kopf.AiohttpSession:
    """kopf's HTTP session, with a bounded connection pool.

    kopf's own session has no connection limit, so a burst of patches (1,000 new OAuthClients) opens as many
    TLS connections as there are patches in flight, and each costs asyncio a 256 KiB buffer plus OpenSSL's
    own; the high-water mark stays in the process. Watch streams each hold a connection for as long as they
    run, so the limit must leave room for them or patches would wait forever.
    """
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=watch_streams + REQUEST_CONNECTIONS, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(), proxy=info.proxy_url, trust_env=info.trust_env)
    return kopf.AiohttpSession(server=info.server, default_namespace=info.default_namespace,
                               expiration=info.expiration, priority=info.priority, aiohttp_session=session)


def watch_streams_for(namespaces: tuple[str, ...], *, watch_credentials: bool = True) -> int:
    """How many watches kopf keeps open: OAuthClients, AuthorizationServers and (unless turned off) owned
    Secrets per namespace (or once, cluster-wide), plus ClusterAuthorizationServers."""
    return (3 if watch_credentials else 2) * max(1, len(namespaces)) + 1


def register(registry: kopf.OperatorRegistry, runtime: Runtime, *, label_selector: str | None = None,
             cluster_resource_namespace: str = "clientreg", client_configuration: Any = None,
             address_policies: ServerAddressPolicies = DEFAULT_ADDRESS_POLICIES,
             watch_streams: int = watch_streams_for(()),
             records_namespace: str = DEFAULT_CLUSTER_RESOURCE_NAMESPACE, watch_credentials: bool = True) -> None:
    """``watch_credentials=False``: no watch on Secrets at all, so the operator needs no list/watch on Secrets
    (RBAC cannot narrow those to the operator's own by label); a changed or deleted credentials Secret is then
    restored by the next full reconcile, which republishes it (at the latest one drift interval later)."""
    shard = LabelSelector.parse(label_selector)

    @kopf.on.login(registry=registry, id="login")
    async def login(**kwargs: Any) -> kopf.AiohttpSession:
        # The same credentials as the reconciler's client. kopf's own login_via_client only knows the in-cluster
        # ServiceAccount and the default kubeconfig (whose path the kubernetes library fixes at import time),
        # so --kubeconfig must be handed over explicitly.
        if client_configuration is not None:
            info = connection_info(client_configuration)
        else:
            found = kopf.login_via_client(**kwargs)
            if found is None:
                raise kopf.LoginError("no Kubernetes credentials: neither in-cluster nor a kubeconfig")
            info = found
        return limited_session(info, watch_streams=watch_streams)

    # Explicit ids: kopf keys its bookkeeping annotations by them (clientreg.dev/reconcile, …).
    @kopf.on.resume(GROUP, VERSION, OAUTHCLIENTS, registry=registry, id="reconcile")
    @kopf.on.create(GROUP, VERSION, OAUTHCLIENTS, registry=registry, id="reconcile")
    @kopf.on.update(GROUP, VERSION, OAUTHCLIENTS, registry=registry, id="reconcile")
    async def client_changed(namespace: str | None, name: str, **_: Any) -> None:
        await runtime.reconcile(_namespaced(namespace, name), name)

    @kopf.on.delete(GROUP, VERSION, OAUTHCLIENTS, registry=registry, id="delete")
    async def client_deleted(namespace: str | None, name: str, **_: Any) -> None:
        namespace = _namespaced(namespace, name)
        result = await runtime.reconcile(namespace, name)
        if not result.finished:
            # Kopf keeps the finalizer and calls again: the client still exists at the AS.
            raise kopf.TemporaryError(f"client not deleted yet ({result.reason})",
                                      delay=result.requeue_after or 30)
        runtime.forget(namespace, name)

    # kopf leaves every annotation under its storage prefix (ours, clientreg.dev/) out of the state it diffs,
    # so setting the rotate annotation alone fires no update handler: without this, a rotation would wait for
    # the next drift check (10 minutes by default).
    @kopf.on.event(GROUP, VERSION, OAUTHCLIENTS, registry=registry, id="rotate-request", when=_rotation_pending)
    async def rotation_requested(body: kopf.Body, **_: Any) -> None:
        runtime.request_rotation(body["metadata"]["namespace"], body["metadata"]["name"],
                                 body["metadata"]["annotations"][ROTATE_ANNOTATION])

    @kopf.daemon(GROUP, VERSION, OAUTHCLIENTS, registry=registry, id="schedule", cancellation_timeout=1.0)
    async def client_schedule(namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any) -> None:
        # Drift checks, rotations ahead of expiry, the end of grace periods, retries after failures.
        await runtime.keep_on_schedule(_namespaced(namespace, name), name, stopped.wait(), stopped.is_set)

    async def owned_secret_changed(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type not in ("MODIFIED", "DELETED"):
            return  # ADDED is our own write; the initial listing is covered by the resume handlers
        found = _owning_client(body, records_namespace)
        if found is None:
            return
        namespace, name = found
        if not shard.everything:
            client = await _client_labels(runtime, namespace, name)
            if client is None or not shard.matches(client):
                return
        await runtime.heal(namespace, name)

    if watch_credentials:
        kopf.on.event("", "v1", "secrets", registry=registry, id="owned-secret",
                      labels={MANAGED_BY_LABEL: MANAGED_BY})(owned_secret_changed)

    # Event handlers, not create/update/resume: those make kopf keep its bookkeeping in annotations of the
    # (Cluster)AuthorizationServer, which needs patch on a resource the operator otherwise only reads and
    # writes status of. Every watch event (the initial listing included) looks at the server again.
    checker = ServerChecker(runtime, cluster_resource_namespace=cluster_resource_namespace,
                            address_policies=address_policies)
    for plural in (AUTHORIZATIONSERVERS, CLUSTERAUTHORIZATIONSERVERS):
        @kopf.on.event(GROUP, VERSION, plural, registry=registry, id=f"{plural}-status")
        async def server_event(type: str | None, body: kopf.Body, **_: Any) -> None:
            await checker.on_event(type, dict(body))


class ServerChecker:
    """Writes (Cluster)AuthorizationServer status; a failing server is looked at again after a delay."""

    def __init__(self, runtime: Runtime, *, cluster_resource_namespace: str, retry_after: float = 30.0,
                 address_policies: ServerAddressPolicies = DEFAULT_ADDRESS_POLICIES) -> None:
        self.runtime = runtime
        self.cluster_resource_namespace = cluster_resource_namespace
        self.address_policies = address_policies
        self.retry_after = retry_after
        self._retries: dict[tuple[str, str | None, str], asyncio.Task[None]] = {}

    async def on_event(self, type: str | None, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(body.get("kind")), meta.get("namespace"), str(meta.get("name")))
        retry = self._retries.pop(key, None)
        if retry is not None and retry is not asyncio.current_task():
            retry.cancel()
        if type == "DELETED" or meta.get("deletionTimestamp"):
            return
        await self._check(key, body)

    async def _check(self, key: tuple[str, str | None, str], body: dict[str, Any]) -> None:
        from .servers import check_server

        cluster = self.runtime.reconciler.cluster
        error: Exception | None
        try:
            error = await asyncio.to_thread(check_server, cluster, body,
                                            cluster_resource_namespace=self.cluster_resource_namespace,
                                            address_policies=self.address_policies)
        except Exception as exc:  # e.g. the API server briefly unreachable: look again later
            error = exc
        if error is not None:
            self._retries[key] = asyncio.create_task(self._again(key))

    async def _again(self, key: tuple[str, str | None, str]) -> None:
        # A later Secret or a reachable server turns it Ready (the IAT Secret is not watched).
        await asyncio.sleep(self.retry_after)
        if self._retries.get(key) is not asyncio.current_task():
            return  # superseded by a newer event
        del self._retries[key]
        kind, namespace, name = key
        try:
            body = await asyncio.to_thread(self.runtime.reconciler.cluster.get_server, kind, namespace, name)
        except Exception:  # the API server briefly unreachable: try again later
            self._retries[key] = asyncio.create_task(self._again(key))
            return
        if body is not None:
            await self._check(key, body)


def _namespaced(namespace: str | None, name: str) -> str:
    """kopf types ``namespace`` for every resource, cluster-scoped ones included; OAuthClients always have one."""
    if namespace is None:
        raise kopf.PermanentError(f"OAuthClient {name} has no namespace (the CRD is namespaced)")
    return namespace


def _rotation_pending(body: kopf.Body, type: str | None = None, **_: Any) -> bool:
    """A rotate annotation the status does not report as done yet, on a live object."""
    meta = body.get("metadata") or {}
    requested = (meta.get("annotations") or {}).get(ROTATE_ANNOTATION)
    done = (body.get("status") or {}).get("lastRotationRequest")
    return bool(requested) and requested != done and type != "DELETED" and not meta.get("deletionTimestamp")


def _owning_client(body: kopf.Body, records_namespace: str) -> tuple[str, str] | None:
    """(namespace, name) of the OAuthClient a watched Secret belongs to: its controller ownerReference (a
    credentials Secret, or a record an older operator left in the tenant's namespace), or for a record in
    the records namespace its annotation. Only records there are believed: a tenant may label a Secret of
    its own namespace like a record and name another namespace's OAuthClient in it."""
    meta = body.get("metadata") or {}
    owner = next((ref for ref in meta.get("ownerReferences") or []
                  if ref.get("kind") == "OAuthClient" and ref.get("controller")), None)
    if owner is not None:
        return str(meta.get("namespace")), str(owner["name"])
    if meta.get("namespace") != records_namespace or (meta.get("labels") or {}).get(ROLE_LABEL) != ROLE_RECORD:
        return None
    namespace, _, name = str((meta.get("annotations") or {}).get(CLIENT_ANNOTATION) or "").partition("/")
    return (namespace, name) if namespace and name else None


async def _client_labels(runtime: Runtime, namespace: str, name: str) -> dict[str, str] | None:
    body = await asyncio.to_thread(runtime.reconciler.cluster.get_client, namespace, name)
    if body is None:
        return None
    labels: dict[str, str] = body.get("metadata", {}).get("labels") or {}
    return labels
