"""The OAuthClient controller: watch events in, one work queue, reconciles in worker threads.

What triggers a full reconcile (:meth:`Reconciler.reconcile`): an OAuthClient seen for the first time
(the start of the operator included: every client is looked at once), a new ``metadata.generation``
(a spec change), a deletion, a rotate annotation value not yet honoured, and the next due time the
last reconcile asked for (drift check, rotation ahead of expiry, end of a grace period, retry). Its
own status and finalizer writes change neither generation nor annotations, so they trigger nothing.
A change to a Secret the operator owns asks for :meth:`Reconciler.heal` only, which restores the
credentials Secret from the record without asking the authorization server anything.

Reconciles read the OAuthClient from the watch's cache, not with a GET (:meth:`ClientController.read_client`).
What a read that lags can cause, and why that is safe: the registration's truth is the record Secret,
which is always read from the API server (records.py), never the OAuthClient's status, so a lagging
body can never make a client registered twice or lost. A lagging spec is reconciled as it was a moment
ago, and the event of the newer one queues the next reconcile (nothing else at the AS changes meanwhile:
one reconcile per object at a time). The one thing a lagging body would get wrong is the status patch,
a merge patch computed against the status read (fields equal to it are not sent): computed against a
status older than the operator's own last write, it could leave a field of that write in place (and a
lagging ``status.secretName`` would only cost a 409 and a read: the credentials Secret's writer refuses
one not its own). So after every status write the object is read with a GET until the watch has brought
that write back; nothing else writes an OAuthClient's status, and a new leader starts from a fresh list.

The finalizer is added by the worker in the same pass, before the reconcile (so a client is never
registered at the AS without it), and only when missing; it is removed once a deletion is finished.
No bookkeeping of the controller's own is written anywhere: its state is the queue, in memory, and
is rebuilt from the first list after a restart.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from typing import Any

from clientreg_kube.cluster import Body
from clientreg_kube.conventions import (
    CLIENT_ANNOTATION,
    CLIENT_FINALIZER,
    ROLE_LABEL,
    ROLE_RECORD,
    ROTATE_ANNOTATION,
)

from .informer import Key, key_of
from .reconciler import Reconciler
from .result import Result
from .rollout import restart_consumers
from .workqueue import WorkQueue

log = logging.getLogger(__name__)


def keep_client(obj: Body) -> Body:
    """What the OAuthClient cache holds of an object: what a reconcile reads (metadata, spec, status), without
    managedFields (most of a body's bytes). Reconciles read it instead of a GET (controller-runtime's way)."""
    kept: Body = {k: obj[k] for k in ("apiVersion", "kind", "spec", "status") if k in obj}
    kept["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return kept


def keep_nothing(obj: Body) -> Body:
    """Owned Secrets are only compared by resourceVersion (after a relist): no data is cached."""
    meta = obj.get("metadata") or {}
    return {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                         "resourceVersion": meta.get("resourceVersion")}}


def owning_client(secret: Body, records_namespace: str) -> Key | None:
    """(namespace, name) of the OAuthClient a watched Secret belongs to: its controller ownerReference (a
    credentials Secret, or a record an older operator left in the tenant's namespace), or for a record in
    the records namespace its annotation. Only records there are believed: a tenant may label a Secret of
    its own namespace like a record and name another namespace's OAuthClient in it."""
    meta = secret.get("metadata") or {}
    owner = next((ref for ref in meta.get("ownerReferences") or []
                  if ref.get("kind") == "OAuthClient" and ref.get("controller")), None)
    if owner is not None:
        return str(meta.get("namespace")), str(owner["name"])
    if meta.get("namespace") != records_namespace or (meta.get("labels") or {}).get(ROLE_LABEL) != ROLE_RECORD:
        return None
    namespace, _, name = str((meta.get("annotations") or {}).get(CLIENT_ANNOTATION) or "").partition("/")
    return (namespace, name) if namespace and name else None


class ClientController:
    def __init__(self, reconciler: Reconciler, *, workers: int = 8, restart_deployments: bool = False,
                 records_namespace: str = "clientreg") -> None:
        self.reconciler = reconciler
        self.workers = workers
        self.restart_deployments = restart_deployments
        self.records_namespace = records_namespace
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        # A due time (drift check, rotation, retry) asks for a full reconcile.
        self.queue: WorkQueue[Key] = WorkQueue(backoff_base=1.0, backoff_max=reconciler.backoff_max,
                                               on_due=lambda key: self.request(key, full=True))
        #: The OAuthClient cache (the informers' stores, merged): what is served, as the watches last said.
        self.clients: dict[Key, Body] = {}
        #: Keys whose next pass must be a full reconcile (absent: a heal is enough).
        self._full: set[Key] = set()
        #: The last rotate annotation value each object was reconciled promptly for.
        self._rotation_requests: dict[Key, str] = {}
        #: resourceVersion of this process's last status write of each object, until the watch brings it back.
        self._written: dict[Key, str] = {}

    # --- events ---------------------------------------------------------------------------------------------

    def on_client(self, kind: str, obj: Body, old: Body | None) -> None:
        key = key_of(obj)
        if kind == "DELETED":  # deleted, or no longer matching this shard's selector: not ours any more
            self.clients.pop(key, None)
            self.forget(key)
            return
        previous = self.clients.get(key)
        new = self.clients[key] = keep_client(obj)
        meta, before = new["metadata"], (previous or {}).get("metadata") or {}
        if self._written.get(key) == meta.get("resourceVersion"):
            self._written.pop(key, None)  # our last status write is in the cache now
        deleting = bool(meta.get("deletionTimestamp"))
        rotation = self._rotation_requested(key, new)  # noted even when something else triggers this reconcile
        if (rotation or previous is None or meta.get("generation") != before.get("generation")
                or (deleting and not before.get("deletionTimestamp"))
                or (not deleting and CLIENT_FINALIZER not in (meta.get("finalizers") or []))):
            self.request(key, full=True)

    def _rotation_requested(self, key: Key, new: Body) -> bool:
        """A rotate annotation the status does not report as done yet, not asked for in this process before:
        once per value, so a failing rotation follows its backoff however many events the object sees."""
        meta = new["metadata"]
        requested = (meta.get("annotations") or {}).get(ROTATE_ANNOTATION)
        if (not requested or requested == (new.get("status") or {}).get("lastRotationRequest")
                or meta.get("deletionTimestamp")):
            return False
        if self._rotation_requests.get(key) == requested:
            return False
        self._rotation_requests[key] = requested
        return True

    def read_client(self, namespace: str, name: str) -> Body | None:
        """The OAuthClient as a reconcile reads it (from a worker thread): the cache, or a GET while the
        cache does not hold this process's last status write of it yet (see the module docstring), or when
        the cache does not hold it at all (deleted or out of this shard: the GET says which)."""
        key = (namespace, name)
        cached = self.clients.get(key)
        if cached is not None and key not in self._written:
            return cached
        body = self.reconciler.cluster.get_client(namespace, name)  # linearizable: it holds every write so far
        self._written.pop(key, None)
        return body

    def status_written(self, namespace: str, name: str, version: str | None) -> None:
        """Called by a reconcile that patched the status (from its worker thread), with the new resourceVersion."""
        key = (namespace, name)
        if not version or (self.clients.get(key) or {}).get("metadata", {}).get("resourceVersion") != version:
            self._written[key] = version or ""

    def on_owned_secret(self, kind: str, obj: Body, old: Body | None) -> None:
        if kind not in ("MODIFIED", "DELETED"):
            return  # ADDED is our own write (or the first list, which the clients' own first list covers)
        key = owning_client(obj, self.records_namespace)
        if key is not None and key in self.clients:  # in the cache: in a served namespace, in this shard
            self.request(key, full=False)

    def request(self, key: Key, *, full: bool) -> None:
        if full:
            self._full.add(key)
        self.queue.add(key)

    def forget(self, key: Key) -> None:
        self.queue.cancel_after(key)
        self.queue.forget(key)
        self._full.discard(key)
        self._rotation_requests.pop(key, None)
        self._written.pop(key, None)
        self.reconciler.forget(*key)

    # --- work -----------------------------------------------------------------------------------------------

    async def work(self) -> None:
        """One worker: take a key, process it, until cancelled."""
        while True:
            key = await self.queue.get()
            try:
                await self.process(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API server away, a bug: the key comes back after a backoff
                delay = self.queue.retry(key)
                self._full.add(key)
                # The type and HTTP status only: an API error's text may echo a body, and bodies hold Secrets.
                status = getattr(exc, "status", None)
                log.warning("processing OAuthClient %s/%s failed (%s%s); again in %.0fs", *key, type(exc).__name__,
                            f" HTTP {status}" if status else "", delay)
            finally:
                self.queue.done(key)

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def process(self, key: Key) -> None:
        cached = self.clients.get(key)
        full = key in self._full
        self._full.discard(key)
        if cached is None:
            return  # deleted, or out of this shard, since it was queued
        meta = cached["metadata"]
        deleting = bool(meta.get("deletionTimestamp"))
        finalizers = list(meta.get("finalizers") or [])
        if CLIENT_FINALIZER not in finalizers:
            if deleting:
                return  # our part is done (or never began): other finalizers are not ours to wait for
            if not await self._add_finalizer(key, finalizers):
                return
            full = True
        if not full:
            await self._in_thread(self.reconciler.heal, *key)
            return
        result: Result = await self._in_thread(self.reconciler.reconcile, *key)
        self.queue.forget(key)
        if deleting and result.finished:
            await self._remove_finalizer(key)
            self.forget(key)
            return
        if deleting:  # the client still exists at the AS: the finalizer stays, the deletion is tried again
            log.info("OAuthClient %s/%s: client not deleted yet (%s); again in %.0fs", *key, result.reason,
                     result.requeue_after or 30)
            self.queue.add_after(key, result.requeue_after or 30)
            self._full.add(key)
            return
        if result.requeue_after is None:
            self.queue.cancel_after(key)
        else:
            self.queue.add_after(key, result.requeue_after)
        if result.rotated and self.restart_deployments and result.secret_name:
            await self._restart(key[0], result.secret_name, result.client_id or "")

    async def _add_finalizer(self, key: Key, finalizers: list[str]) -> bool:
        """True when the finalizer is on the object now. kopf's way: a merge patch of the whole list. Sent from a
        reconcile thread, through the reconciles' transport: the one HTTP stack per request that is cheapest."""
        patched = await self._in_thread(self.reconciler.cluster.patch_client, *key,
                                        {"metadata": {"finalizers": [*finalizers, CLIENT_FINALIZER]}})
        if patched is None:
            return False  # deleted meanwhile
        if key in self.clients:
            self.clients[key] = keep_client(patched)
        return True

    async def _remove_finalizer(self, key: Key) -> None:
        await self._in_thread(self._remove_finalizer_now, key)

    def _remove_finalizer_now(self, key: Key) -> None:
        cluster = self.reconciler.cluster
        current = cluster.get_client(*key)
        finalizers = ((current or {}).get("metadata") or {}).get("finalizers") or []
        if current is not None and CLIENT_FINALIZER in finalizers:
            # With the resourceVersion read: a finalizer someone added meanwhile is not dropped (409, retried).
            cluster.patch_client(*key, {"metadata": {
                "finalizers": [f for f in finalizers if f != CLIENT_FINALIZER],
                "resourceVersion": current["metadata"]["resourceVersion"]}})

    async def _restart(self, namespace: str, secret_name: str, client_id: str) -> None:
        try:
            await asyncio.to_thread(restart_consumers, self.reconciler.cluster, namespace, secret_name, client_id)
        except Exception as exc:  # a failed restart must not undo a successful rotation
            log.warning("could not restart consumers of Secret %s/%s: %s", namespace, secret_name, exc)

    def close(self) -> None:
        # Not waiting: a reconcile in progress finishes in its thread (the interpreter joins them at exit), so
        # a registration the AS just answered is still written to its record Secret.
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.reconciler.connections.close()
