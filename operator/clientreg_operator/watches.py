"""Which resources the operator watches, and the tasks that run its controllers until told to stop.

Per served namespace (or once, cluster-wide): OAuthClients (filtered by the shard's label selector on
the API server), AuthorizationServers and, unless ``--no-watch-credentials``, the Secrets the operator
owns (label-selected: other Secrets are never sent, let alone held); and ClusterAuthorizationServers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from clientreg.names import path_segment
from clientreg.spec import GROUP, VERSION
from clientreg_kube.cluster import Body
from clientreg_kube.conventions import (
    AUTHORIZATIONSERVERS,
    CLUSTERAUTHORIZATIONSERVERS,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OAUTHCLIENTS,
)

from .controller import ClientController, keep_nothing
from .informer import Informer
from .kubeapi import AsyncKube
from .servers import ServerChecker


def watch_streams_for(namespaces: tuple[str, ...], *, watch_credentials: bool = True) -> int:
    """How many watches stay open: OAuthClients, AuthorizationServers and (unless turned off) owned Secrets
    per namespace (or once, cluster-wide), plus ClusterAuthorizationServers."""
    return (3 if watch_credentials else 2) * max(1, len(namespaces)) + 1


def _path(group: str, plural: str, namespace: str | None) -> str:
    prefix = f"/apis/{group}/{VERSION}" if group else "/api/v1"
    scope = "" if namespace is None else f"/namespaces/{path_segment(namespace, kind='namespace')}"
    return f"{prefix}{scope}/{plural}"


class ServerCache:
    """Where the reconciles read (Cluster)AuthorizationServers: the server watches' caches, once they have
    listed (a GET of the server per reconcile was one of five reads per new client); a GET before that, and
    for a server of a namespace this operator does not watch. Read from the reconcile threads: a dict lookup."""

    def __init__(self, fallback: Callable[[str, str | None, str], Body | None]) -> None:
        self.fallback = fallback
        #: (kind, namespace or None for every namespace) → the informer of those servers
        self.informers: dict[tuple[str, str | None], Informer] = {}

    def __call__(self, kind: str, namespace: str | None, name: str) -> Body | None:
        cluster_scoped = kind == "ClusterAuthorizationServer"
        scope = None if cluster_scoped or (kind, namespace) not in self.informers else namespace
        informer = self.informers.get((kind, scope))
        if informer is None or not informer.synced.is_set():
            return self.fallback(kind, namespace, name)
        return informer.store.get(("" if cluster_scoped else namespace or "", name))


class SecretIndex:
    """Which of the operator's own (labelled) Secrets exist, as its Secret watches last listed them."""

    def __init__(self) -> None:
        #: namespace (None for every namespace) → the informer of the operator's Secrets there
        self.informers: dict[str | None, Informer] = {}

    def absent(self, namespace: str, name: str) -> bool:
        """True only when a watch of that namespace has listed and holds no such Secret; False when unsure."""
        informer = self.informers.get(namespace) or self.informers.get(None)
        return informer is not None and informer.synced.is_set() and (namespace, name) not in informer.store


def informers(api: AsyncKube, controller: ClientController, checker: ServerChecker, *,
              namespaces: tuple[str, ...], label_selector: str | None, watch_credentials: bool,
              servers: ServerCache | None = None, secrets: SecretIndex | None = None) -> list[Informer]:
    """``servers``: filled with the server informers (which then keep whole objects: there are few);
    ``secrets``: with the owned-Secret informers."""
    found = []
    keep_server = keep_nothing if servers is None else _whole
    for namespace in namespaces or (None,):
        # The controller keeps the bodies (controller.clients); the informer only what a relist compares.
        found.append(Informer(api, _path(GROUP, OAUTHCLIENTS, namespace), controller.on_client,
                              label_selector=label_selector, keep=keep_nothing))
        found.append(Informer(api, _path(GROUP, AUTHORIZATIONSERVERS, namespace), checker.notify, keep=keep_server))
        if servers is not None:
            servers.informers["AuthorizationServer", namespace] = found[-1]
        if watch_credentials:
            found.append(Informer(api, _path("", "secrets", namespace), controller.on_owned_secret,
                                  label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}", keep=keep_nothing))
            if secrets is not None:
                secrets.informers[namespace] = found[-1]
    found.append(Informer(api, _path(GROUP, CLUSTERAUTHORIZATIONSERVERS, None), checker.notify, keep=keep_server))
    if servers is not None:
        servers.informers["ClusterAuthorizationServer", None] = found[-1]
    return found


def _whole(obj: Body) -> Body:
    return obj


async def run_until(stop: asyncio.Event, controller: ClientController, watched: list[Informer]) -> None:
    """Run the watches, the queue's timers and the workers until ``stop`` is set."""
    tasks = [asyncio.create_task(informer.run()) for informer in watched]
    tasks.append(asyncio.create_task(controller.queue.run_timers()))
    tasks.extend(asyncio.create_task(controller.work()) for _ in range(controller.workers))
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
