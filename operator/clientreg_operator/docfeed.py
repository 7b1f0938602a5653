"""Fill the :class:`~.documents.DocumentIndex` of EVERY replica from the record Secrets.

The Service in front of the operator balances over all replicas, leader and standbys alike, so each must
serve the same documents; only the leader reconciles. The record Secrets, in the records namespace (the
operator's own), are what every replica can read: each ``clientreg.dev/role=record`` Secret holds one
OAuthClient's record (``record.json``), and :func:`clientreg.publish.documents` of it is that client's
public documents. The records are watched (informer.py: one list, then a watch from its resourceVersion,
bookmarks, a relist only on 410), so a replica pays per record that changes, not per record every few
seconds: a list of every record Secret every 5 s on every replica was 15 % of the operator's CPU at 1,000
clients (docs/performance.md). The index is handed the view at most once per ``interval`` and only when
an event changed it, so a burst of record writes costs one resolution, not one per write.

A watch lags the API server by the time an event takes to arrive, and the leader puts its own reconciles'
documents into the index directly (reconciler.py): a view handed over keeps every direct put made during
the last ``interval`` (:meth:`DocumentIndex.replace_all`), so an event still on its way cannot undo a put;
the event, once it arrives, makes the next hand-over agree with the put. A put older than that is
replaced by the view, which then holds its record's write.

It starts before leader election and runs until the process stops; while the API server is away the
watch retries with backoff and no event arrives, so the replica goes on serving what it knew.

Only the records namespace is read, and it is the operator's: tenants cannot write a record there, so the
annotations that say which OAuthClient a record belongs to (and how old it is) are trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from clientreg import publish
from clientreg.errors import ClientregError
from clientreg.names import path_segment
from clientreg_kube.cluster import Body, Cluster
from clientreg_kube.conventions import (
    CLIENT_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OAUTHCLIENT_CREATED_ANNOTATION,
    OAUTHCLIENT_UID_ANNOTATION,
    RECORD_PREFIX,
    ROLE_LABEL,
    ROLE_RECORD,
)
from clientreg_kube.secrets import read_record

from .documents import Claim, DocumentIndex, claim, parse_timestamp
from .informer import Informer, Key, key_of
from .kubeapi import AsyncKube

log = logging.getLogger(__name__)

#: Every record Secret, and nothing else (the same labels the operator's Secret watch selects on).
RECORD_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY},{ROLE_LABEL}={ROLE_RECORD}"
DEFAULT_INTERVAL = 5.0


def _owner(secret: Body) -> tuple[str, str, str] | None:
    """(namespace, name, uid) of the OAuthClient a record Secret belongs to; None when it does not say."""
    meta = secret.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    namespace, _, name = str(annotations.get(CLIENT_ANNOTATION) or "").partition("/")
    controller = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    if not (namespace and name) and controller is not None:
        # A record written before the annotation existed, next to its OAuthClient.
        namespace, name = str(meta.get("namespace") or ""), str(controller.get("name") or "")
    if not (namespace and name):
        return None
    secret_name = str(meta.get("name") or "")
    uid = str(annotations.get(OAUTHCLIENT_UID_ANNOTATION)
              or (secret_name[len(RECORD_PREFIX):] if secret_name.startswith(RECORD_PREFIX) else "")
              or (controller or {}).get("uid") or meta.get("uid") or "")
    return namespace, name, uid


def claim_of(secret: Body) -> Claim | None:
    """The documents one record Secret publishes, ordered by its OAuthClient's age; None: nothing to serve."""
    meta = secret.get("metadata") or {}
    if (meta.get("labels") or {}).get(ROLE_LABEL) != ROLE_RECORD:
        return None  # the list selects on it; checked again so that nothing else is ever read as a record
    owner = _owner(secret)
    if owner is None or meta.get("deletionTimestamp"):
        return None  # a record on its way out: its client is being deleted
    namespace, name, uid = owner
    try:
        record = read_record(secret)
    except ClientregError as exc:
        log.warning("record Secret %s: not read (%s); its documents are not served", meta.get("name"), exc.reason)
        return None
    documents = publish.documents(record)
    if record is None or not documents:
        return None
    created = parse_timestamp((meta.get("annotations") or {}).get(OAUTHCLIENT_CREATED_ANNOTATION)
                              or meta.get("creationTimestamp"))
    return claim(namespace, name, documents, created=created, uid=uid, claimed=record.registered_at)


def _version_only(secret: Body) -> Body:
    """What the informer keeps of a record Secret: what a relist compares (the view holds the parsed claim)."""
    meta = secret.get("metadata") or {}
    return {"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                         "resourceVersion": meta.get("resourceVersion")}}


class RecordFeed:
    """Watch the record Secrets (``api``) and hand the index the documents they hold. Without ``api``,
    :meth:`sync` lists them instead (one full view at once: what the tests drive)."""

    def __init__(self, cluster: Cluster, index: DocumentIndex, *, namespace: str,
                 interval: float = DEFAULT_INTERVAL, api: AsyncKube | None = None) -> None:
        self.cluster = cluster
        self.index = index
        self.namespace = namespace
        self.interval = interval
        self.api = api
        #: Secret (namespace, name) → (resourceVersion, claim): an unchanged record is not parsed again.
        self._view: dict[Key, tuple[str, Claim | None]] = {}
        self._changed = False
        self._failing = False
        #: Views handed to the index (tests wait on it instead of on time), and set after the first one.
        self.syncs = 0
        self.listed = asyncio.Event()

    def _see(self, secret: Body) -> None:
        key, version = key_of(secret), str((secret.get("metadata") or {}).get("resourceVersion") or "")
        cached = self._view.get(key)
        self._view[key] = (version, cached[1] if cached is not None and cached[0] == version and version
                           else claim_of(secret))

    def on_record(self, kind: str, secret: Body, old: Body | None) -> None:
        """The informer's handler (on the event loop): the view follows the event; the index, later."""
        if kind == "DELETED":
            self._view.pop(key_of(secret), None)
        else:
            self._see(secret)
        self._changed = True

    def _hand_over(self, listed_since: float) -> int:
        claims = [found for _, found in self._view.values() if found is not None]
        self.index.replace_all(claims, listed_since=listed_since)
        self._changed = False
        self.syncs += 1
        return len(claims)

    def sync(self) -> int:
        """One list; returns how many clients have documents. Raises what the API call raised."""
        started = time.monotonic()
        previous, self._view = self._view, {}
        try:
            for secret in self.cluster.list_secrets(self.namespace, RECORD_SELECTOR):
                key = key_of(secret)
                if key in previous:
                    self._view[key] = previous[key]
                self._see(secret)
        except Exception:
            self._view = previous  # keep serving the last view
            raise
        return self._hand_over(started)

    async def run(self, stop: asyncio.Event) -> None:
        if self.api is None:
            await self._poll(stop)
            return
        path = f"/api/v1/namespaces/{path_segment(self.namespace, kind='namespace')}/secrets"
        informer = Informer(self.api, path, self.on_record, label_selector=RECORD_SELECTOR, keep=_version_only)
        watching = asyncio.create_task(informer.run())
        try:
            await _until(stop, informer.synced.wait())
            while not stop.is_set():
                if self._changed or not self.listed.is_set():  # the first view, even of no records at all
                    # Direct puts of the last interval are newer than what the watch may have brought yet.
                    self._hand_over(time.monotonic() - self.interval)
                    self.listed.set()
                await _until(stop, asyncio.sleep(self.interval))
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching

    async def _poll(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                count = await asyncio.to_thread(self.sync)
                self.listed.set()
                if self._failing:
                    log.info("record Secrets in %s listed again (%d clients with documents)", self.namespace, count)
                self._failing = False
            except Exception as exc:  # keep serving the last view; say so once per outage
                if not self._failing:
                    log.warning("cannot list record Secrets in %s (%s); serving the documents last listed, retrying "
                                "every %.0fs", self.namespace, type(exc).__name__, self.interval)
                self._failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)


async def _until(stop: asyncio.Event, awaitable: Any) -> None:
    """Wait for ``awaitable`` or ``stop``, whichever comes first."""
    waiting = asyncio.ensure_future(awaitable)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiting, stopping):
            task.cancel()
